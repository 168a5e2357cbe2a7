"""Fusion networks behind one interface, in one registry (:data:`NETWORKS`), and their losses.

Import-light: torch loads only when a name below is first accessed, which imports every network module
(``late``, ``concat``, ``pairwise``, ``gated`` in :mod:`.vector`; ``transformer_gate``, ``talking_heads``,
``mult`` in :mod:`.sequence`; ``self_mm`` in :mod:`.self_mm`).

>>> from emofuse.networks import FusionConfig, build
>>> net = build("gated", FusionConfig(dims={"voice": 1024, "face": 7, "text": 384}))

Training: :mod:`emofuse.training.networks`; checkpoints: :mod:`emofuse.checkpoints`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["NETWORKS", "FusionConfig", "FusionModel", "build", "focal_loss", "modality_dropout", "register",
           "supcon_loss"]
_LOSSES = {"focal_loss", "supcon_loss"}

if TYPE_CHECKING:
    from .base import NETWORKS, FusionConfig, FusionModel, build, modality_dropout, register
    from .losses import focal_loss, supcon_loss


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import base, losses  # base imports every network module (registration)

        return getattr(losses if name in _LOSSES else base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

