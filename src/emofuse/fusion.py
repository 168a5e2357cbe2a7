"""Fusion of the experts present on a segment.

``late`` is confidence-weighted late fusion: each expert's distribution is weighted by its certainty,
1 - H(p)/log(K) (normalised negative entropy: a flat distribution adds nothing, a peaked one counts
fully), times an optional per-modality prior. Learned fusion networks register here too (issue 4).
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from .experts import ExpertOutput
from .result import Fused
from .taxonomy import EMOTIONS

FusionFn = Callable[[Mapping[str, ExpertOutput]], "Fused | None"]
FUSIONS: dict[str, Callable[..., FusionFn]] = {}


def register(name: str) -> Callable[[Callable[..., FusionFn]], Callable[..., FusionFn]]:
    def deco(builder: Callable[..., FusionFn]) -> Callable[..., FusionFn]:
        FUSIONS[name] = builder
        return builder

    return deco


def certainty(p: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1.0)
    return float(1.0 - (-(p * np.log(p)).sum()) / np.log(len(p)))


@register("late")
def late_fusion(priors: Mapping[str, float] | None = None, floor: float = 0.05) -> FusionFn:
    """``priors``: modality -> weight multiplier (default 1 each); ``floor`` keeps a lone flat expert usable."""
    pri = dict(priors or {})

    def fuse(outputs: Mapping[str, ExpertOutput]) -> Fused | None:
        if not outputs:
            return None
        names = list(outputs)
        P = np.array([[outputs[m].probs[e] for e in EMOTIONS] for m in names])
        w = np.array([pri.get(m, 1.0) * (floor + certainty(P[i])) for i, m in enumerate(names)])
        w = w / w.sum()
        p = w @ P
        k = int(p.argmax())
        v = float(w @ [outputs[m].valence for m in names])
        a = float(w @ [outputs[m].arousal for m in names])
        return Fused({e: float(x) for e, x in zip(EMOTIONS, p)}, EMOTIONS[k], float(p[k]), v, a,
                     {m: float(x) for m, x in zip(names, w)}, "late")

    return fuse


def build(name: str = "late", **kwargs: object) -> FusionFn:
    from .errors import EmofuseError

    if name not in FUSIONS:
        raise EmofuseError(f"unknown fusion {name!r}; available: {', '.join(FUSIONS)}")
    return FUSIONS[name](**kwargs)
