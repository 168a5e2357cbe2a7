"""emofuse: offline multimodal emotion recognition from voice, face and words.

>>> import emofuse
>>> result = emofuse.analyze("clip.mp4")          # one call
>>> analyzer = emofuse.Analyzer(emofuse.AnalyzerOptions(asr_model="whisper-tiny.en"))
>>> results = [analyzer.analyze(p) for p in paths]  # models loaded once

Heavy modules load lazily so that ``import emofuse`` stays fast.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# ONNX Runtime (the text encoder, faster-whisper's VAD) otherwise writes a device id and an event database
# under ~/.cache/Microsoft and a .ses file in $TMPDIR on every import; emofuse runs offline. A user who
# wants its telemetry sets the variable to 0 before importing emofuse.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

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
