"""Per-modality expert heads: a standardised linear classifier (multinomial logistic regression) over a
frozen embedding, plus an optional linear valence/arousal regressor, and what an expert says
(:class:`ExpertOutput`).

A head is one self-describing file (format ``emofuse-head/1``, :mod:`emofuse.checkpoints`): the arrays,
the label set, the :class:`~emofuse.checkpoints.FeatureSpec` of the extractor it expects, the training
record and the measured metrics (the model card's numbers). Inference is plain NumPy so that loading a
head costs milliseconds and needs no scikit-learn. Heads are trained by ``emofuse train`` (configs/ship_*).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .taxonomy import EMOTIONS, VA_COORDS, canonical_label

if TYPE_CHECKING:
    from .checkpoints import FeatureSpec

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


def canonical_probs(p: np.ndarray, labels: tuple[str, ...] | list[str]) -> np.ndarray:
    """``[n, len(labels)]`` probabilities over a model's own classes -> ``[n, 7]`` over the canonical
    EMOTIONS: classes that count as one canonical class add up (RAVDESS calm -> neutral), classes without
    one are dropped and the rest renormalised; canonical classes the model lacks get 0."""
    p = np.atleast_2d(np.asarray(p, dtype=np.float64))
    out = np.zeros((p.shape[0], len(EMOTIONS)), dtype=np.float64)
    for j, lab in enumerate(labels):
        c = canonical_label(lab)
        if c is not None:
            out[:, EMOTIONS.index(c)] += p[:, j]
    total = out.sum(axis=1, keepdims=True)
    return np.divide(out, total, out=np.full_like(out, 1.0 / len(EMOTIONS)), where=total > 0)


def to_output(p: np.ndarray, va: tuple[float, float] | None = None, **extra: Any) -> ExpertOutput:
    p = np.asarray(p, dtype=np.float64)
    p = p / p.sum()
    if va is None:
        v, a, src = *project_va(p), "projected"
    else:
        v, a, src = float(np.clip(va[0], -1, 1)), float(np.clip(va[1], -1, 1)), "regressed"
    return ExpertOutput({e: float(x) for e, x in zip(EMOTIONS, p)}, v, a, float(p.max()), src, dict(extra))



def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (max subtracted first)."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)

@dataclass
class LinearHead:
    """softmax(((x - mean) / scale) @ W + b) over ``labels``, optional VA = z @ R + c.

    ``labels`` may be canonical emotions or a corpus's own classes (e.g. RAVDESS's 8);
    :meth:`predict_proba` maps them onto the canonical :data:`~emofuse.taxonomy.EMOTIONS` (calm counts as
    neutral), :meth:`scores` keeps them."""

    mean: np.ndarray
    scale: np.ndarray
    W: np.ndarray  # [dim, n_labels]
    b: np.ndarray  # [n_labels]
    labels: tuple[str, ...]
    feature: "FeatureSpec"  # the extractor whose features it reads (source = registered name, identity = hash)
    meta: dict[str, Any]  # kind, training, metrics, licence (see emofuse.checkpoints)
    R: np.ndarray | None = None  # [dim, 2] valence, arousal
    c: np.ndarray | None = None  # [2]

    def _z(self, x: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(x).astype(np.float32) - self.mean) / self.scale

    def scores(self, x: np.ndarray) -> np.ndarray:
        """[n, dim] -> [n, n_labels] probabilities over the head's own labels."""
        return softmax(self._z(x) @ self.W + self.b)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """[n, dim] -> [n, 7] probabilities over the canonical EMOTIONS (:func:`canonical_probs`)."""
        return canonical_probs(self.scores(x), self.labels)

    def predict_labels(self, x: np.ndarray) -> list[str]:
        """The most probable of the head's own labels, per row."""
        return [self.labels[i] for i in self.scores(x).argmax(axis=1)] if len(x) else []

    def predict_va(self, x: np.ndarray) -> np.ndarray | None:
        if self.R is None or self.c is None:
            return None
        return np.clip(self._z(x) @ self.R + self.c, -1.0, 1.0)

    def predict(self, x: np.ndarray, **extra: Any) -> list[ExpertOutput]:
        p = self.predict_proba(x)
        va = self.predict_va(x)
        return [to_output(p[i], None if va is None else (va[i, 0], va[i, 1]), **extra) for i in range(len(p))]


def shipped_head(name: str) -> LinearHead:
    """A head shipped inside the package, e.g. ``voice-whisper-base`` or ``text-minilm-l6``."""
    from .checkpoints import load_head

    return load_head(WEIGHTS_DIR / f"{name}.safetensors")
