"""emofuse: offline multimodal emotion recognition from voice, face and words.

>>> import emofuse
>>> result = emofuse.analyze("clip.mp4")          # one call
>>> analyzer = emofuse.Analyzer(emofuse.AnalyzerOptions(asr_model="whisper-tiny.en"))
>>> results = [analyzer.analyze(p) for p in paths]  # models loaded once

Heavy modules load lazily so that ``import emofuse`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import EmofuseError, InputError, MissingComponentError
from .taxonomy import EMOTIONS

__version__ = "0.1.0"
__all__ = ["EMOTIONS", "Analyzer", "AnalyzerOptions", "AnalysisResult", "analyze", "EmofuseError",
           "InputError", "MissingComponentError", "__version__"]

if TYPE_CHECKING:
    from .pipeline import Analyzer, AnalyzerOptions, analyze
    from .result import AnalysisResult


def __getattr__(name: str) -> Any:
    if name in ("Analyzer", "AnalyzerOptions", "analyze"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "AnalysisResult":
        from .result import AnalysisResult

        return AnalysisResult
    raise AttributeError(name)
