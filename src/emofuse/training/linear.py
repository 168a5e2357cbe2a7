"""Fitting a :class:`~emofuse.experts.LinearHead` with scikit-learn, model selection on validation data."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..experts import LinearHead


def fit_head(
    X: np.ndarray,
    y: Sequence[str],
    labels: Sequence[str],
    C: float,
    meta: dict[str, Any],
    va: np.ndarray | None = None,
    va_X: np.ndarray | None = None,
    alpha: float = 10.0,
    class_weight: str | None = "balanced",
    seed: int = 0,
) -> LinearHead:
    """Standardise, fit multinomial logistic regression (and optionally ridge for valence/arousal on
    ``va_X``/``va``, standardised with the classifier's statistics) and pack the result as a head."""
    from sklearn.linear_model import LogisticRegression, Ridge

    mean = X.mean(axis=0).astype(np.float32)
    scale = (X.std(axis=0) + 1e-6).astype(np.float32)
    clf = LogisticRegression(C=C, max_iter=2000, class_weight=class_weight, random_state=seed)
    clf.fit((X - mean) / scale, np.asarray(y))
    order = [list(clf.classes_).index(lab) for lab in labels]
    W = clf.coef_[order].T.astype(np.float32)
    b = clf.intercept_[order].astype(np.float32)
    R = c = None
    if va is not None and va_X is not None:
        reg = Ridge(alpha=alpha).fit((va_X - mean) / scale, va)
        R, c = reg.coef_.T.astype(np.float32), reg.intercept_.astype(np.float32)
    return LinearHead(mean, scale, W, b, tuple(labels), meta, R, c)
