"""Speech -> text with faster-whisper (CTranslate2, int8 on CPU), sharing the encoder states.

The Whisper encoder output of every 30 s window that ASR computes is kept (see ``_CapturingWhisper``)
so that the voice expert pools its embedding from it for free instead of running a second encoder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import MissingComponentError
from .store import COMPONENTS, resolve

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

ASR_MODELS = ("whisper-base", "whisper-tiny.en")


def model_dir(name_or_path: str) -> Path:
    """A registered component name (``whisper-base``, ``whisper-tiny.en``) or a user's CTranslate2
    model directory (must hold model.bin, config.json, tokenizer.json)."""
    if name_or_path in COMPONENTS:
        return resolve(name_or_path)
    p = Path(name_or_path).expanduser()
    if p.is_dir() and (p / "model.bin").exists():
        return p
    raise MissingComponentError(
        f"ASR model {name_or_path!r} is neither one of {', '.join(ASR_MODELS)} nor a CTranslate2 Whisper "
        "directory containing model.bin (convert one with `ct2-transformers-converter`)")


def load_whisper(name_or_path: str = "whisper-base", threads: int | None = None) -> "WhisperModel":
    """Load a Whisper model for CPU int8 inference (never contacts a hub: always a local directory)."""
    from faster_whisper import WhisperModel

    threads = threads or min(2, os.cpu_count() or 1)
    return WhisperModel(str(model_dir(name_or_path)), device="cpu", compute_type="int8", cpu_threads=threads)
