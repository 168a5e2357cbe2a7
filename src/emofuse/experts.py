"""Per-modality expert heads: a standardised linear classifier (multinomial logistic regression) over a
frozen embedding, plus an optional linear valence/arousal regressor.

A head is one self-describing safetensors file: the arrays, and in its metadata the label set, the
feature spec it expects, the training data and the measured metrics (the model card's numbers).
Inference is plain NumPy so that loading a head costs milliseconds and needs no scikit-learn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MissingComponentError
from .taxonomy import EMOTIONS, VA_COORDS

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class ExpertOutput:
    """What one expert says about one segment."""

    probs: dict[str, float]  # canonical label -> probability (sums to 1)
    valence: float  # [-1, 1]
    arousal: float  # [-1, 1]
    confidence: float  # max probability
    va_source: str = "projected"  # "regressed" (trained regressor) or "projected" (from class probs)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. face: frames used, detection mode


def project_va(p: np.ndarray) -> tuple[float, float]:
    """Expected (valence, arousal) of a class distribution under the circumplex coordinates."""
    coords = np.array([VA_COORDS[e] for e in EMOTIONS], dtype=np.float64)
    v, a = p @ coords
    return float(v), float(a)


def to_output(p: np.ndarray, va: tuple[float, float] | None = None, **extra: Any) -> ExpertOutput:
    p = np.asarray(p, dtype=np.float64)
    p = p / p.sum()
    if va is None:
        v, a, src = *project_va(p), "projected"
    else:
        v, a, src = float(np.clip(va[0], -1, 1)), float(np.clip(va[1], -1, 1)), "regressed"
    return ExpertOutput({e: float(x) for e, x in zip(EMOTIONS, p)}, v, a, float(p.max()), src, dict(extra))


@dataclass
class LinearHead:
    """softmax(((x - mean) / scale) @ W + b) over the canonical labels, optional VA = z @ R + c."""

    mean: np.ndarray
    scale: np.ndarray
    W: np.ndarray  # [dim, n_labels]
    b: np.ndarray  # [n_labels]
    labels: tuple[str, ...]
    meta: dict[str, Any]
    R: np.ndarray | None = None  # [dim, 2] valence, arousal
    c: np.ndarray | None = None  # [2]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """[n, dim] -> [n, 7] probabilities over the canonical EMOTIONS (labels the head lacks get 0)."""
        z = (np.atleast_2d(x).astype(np.float32) - self.mean) / self.scale
        logits = z @ self.W + self.b
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        p = e / e.sum(axis=1, keepdims=True)
        out = np.zeros((p.shape[0], len(EMOTIONS)), dtype=np.float64)
        for j, lab in enumerate(self.labels):
            out[:, EMOTIONS.index(lab)] = p[:, j]
        return out

    def predict_va(self, x: np.ndarray) -> np.ndarray | None:
        if self.R is None or self.c is None:
            return None
        z = (np.atleast_2d(x).astype(np.float32) - self.mean) / self.scale
        return np.clip(z @ self.R + self.c, -1.0, 1.0)

    def predict(self, x: np.ndarray, **extra: Any) -> list[ExpertOutput]:
        p = self.predict_proba(x)
        va = self.predict_va(x)
        return [to_output(p[i], None if va is None else (va[i, 0], va[i, 1]), **extra) for i in range(len(p))]

    @property
    def feature(self) -> dict[str, Any]:
        return dict(self.meta.get("feature", {}))

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        tensors = {"mean": self.mean, "scale": self.scale, "W": self.W, "b": self.b}
        if self.R is not None and self.c is not None:
            tensors |= {"R": self.R, "c": self.c}
        meta = dict(self.meta, labels=list(self.labels))
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(path),
                  metadata={"emofuse": json.dumps(meta, sort_keys=True)})

    @classmethod
    def load(cls, path: str | Path) -> "LinearHead":
        from safetensors import safe_open

        path = Path(path)
        if not path.exists():
            raise MissingComponentError(f"expert head {path} is missing; train it with `emofuse train-heads` "
                                        "or reinstall emofuse")
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads(f.metadata()["emofuse"])
            t = {k: f.get_tensor(k) for k in f.keys()}
        return cls(t["mean"], t["scale"], t["W"], t["b"], tuple(meta.pop("labels")), meta, t.get("R"), t.get("c"))


def shipped_head(name: str) -> LinearHead:
    """A head shipped inside the package, e.g. ``voice-whisper-base`` or ``text-minilm-l6``."""
    return LinearHead.load(WEIGHTS_DIR / f"{name}.safetensors")
