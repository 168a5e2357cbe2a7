"""Fusion networks behind one interface (see :mod:`emofuse.models.fusion`).

Import-light: torch loads only when a name below is first accessed.

>>> from emofuse.models import FusionConfig, build
>>> net = build("gated", FusionConfig(dims={"voice": 1024, "face": 7, "text": 384}))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["FUSION_MODELS", "FusionConfig", "FusionModel", "UnknownFusionModelError", "build",
           "modality_dropout", "register"]

if TYPE_CHECKING:
    from .fusion import (FUSION_MODELS, FusionConfig, FusionModel, UnknownFusionModelError, build,
                         modality_dropout, register)


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import fusion

        return getattr(fusion, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
