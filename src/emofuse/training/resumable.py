"""What the resumable training runs (``[finetune]``, ``[face_cnn]``) share: their position, the checkpoint
checks made before anything heavy loads, and an atomic checkpoint write (a run stopped mid-write keeps the
previous checkpoint)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["RunState", "checkpoint_path", "write_checkpoint"]


@dataclass
class RunState:
    epoch: int = 0  # the epoch in progress
    step: int = 0  # batches of that epoch done
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float = -1.0
    best_epoch: int = -1
    seconds: float = 0.0


def checkpoint_path(out: str | Path, resume: bool) -> Path:
    """``out/checkpoint.pt``, refused when it exists without ``resume`` (never overwritten silently) or is
    missing with it."""
    ckpt = Path(out) / "checkpoint.pt"
    if ckpt.exists() and not resume:
        raise InputError(f"{ckpt} exists: continue that run with `emofuse train ... --resume`, or delete the folder "
                         f"{out} to start again")
    if resume and not ckpt.exists():
        raise InputError(f"--resume: no checkpoint at {ckpt}; run without --resume to start")
    return ckpt


def write_checkpoint(torch: Any, blob: dict[str, Any], ckpt: Path) -> None:
    tmp = ckpt.with_suffix(".tmp")
    torch.save(blob, tmp)
    tmp.replace(ckpt)
