"""Fusion networks behind one interface (see :mod:`emofuse.models.fusion`) and their losses.

Import-light: torch loads only when a name below is first accessed. Accessing any model name
imports :mod:`emofuse.models.fusion`, which registers every model (``late``, ``concat``,
``pairwise``, ``gated``, ``transformer_gate``, ``talking_heads``, ``mult``, ``self_mm``).

>>> from emofuse.models import FusionConfig, build
>>> net = build("gated", FusionConfig(dims={"voice": 1024, "face": 7, "text": 384}))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["FUSION_MODELS", "FusionConfig", "FusionModel", "UnknownFusionModelError", "build",
           "focal_loss", "modality_dropout", "register", "supcon_loss"]
_LOSSES = {"focal_loss", "supcon_loss"}

if TYPE_CHECKING:
    from .fusion import (
        FUSION_MODELS,
        FusionConfig,
        FusionModel,
        UnknownFusionModelError,
        build,
        modality_dropout,
        register,
    )
    from .losses import focal_loss, supcon_loss


def __getattr__(name: str) -> Any:
    if name in __all__:
        # .fusion registers every model on import (also when only a loss is asked for)
        from . import fusion, losses

        return getattr(losses if name in _LOSSES else fusion, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
