"""Fitting :class:`~emofuse.experts.LinearHead` s with scikit-learn: the standardised multinomial logistic
regression (:func:`fit_head`), its regularisation path along a C grid warm-started from the previous C
(:func:`c_path`: the same optimum as cold fits, a fraction of the time), and ridge valence/arousal
regressors on the head's standardised features (:func:`fit_ridge`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..experts import LinearHead

if TYPE_CHECKING:
    from ..checkpoints import FeatureSpec


def standardiser(X: np.ndarray, weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale (std + 1e-6) of the rows of ``X``, weighted by ``weight`` when given (a row of
    weight k counts as k copies of it)."""
    mean = np.average(X, axis=0, weights=weight)
    var = np.average((X - mean) ** 2, axis=0, weights=weight)
    return mean.astype(np.float32), (np.sqrt(var) + 1e-6).astype(np.float32)


def _classifier(C: float, class_weight: str | None, seed: int, warm_start: bool = False) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=2000, class_weight=class_weight, random_state=seed, warm_start=warm_start)


def c_path(X: np.ndarray, y: Sequence[str], Cs: Sequence[float], class_weight: str | None = None, seed: int = 0,
           weight: np.ndarray | None = None) -> Iterator[tuple[float, Any, np.ndarray, np.ndarray]]:
    """``(C, fitted classifier, mean, scale)`` along the ascending ``Cs``, each fit warm-started from the
    previous one; the classifier sees ``(X - mean) / scale``. The classifier is reused: read it before
    advancing the iterator."""
    mean, scale = standardiser(X, weight)
    Z = (X - mean) / scale
    clf = _classifier(min(Cs), class_weight, seed, warm_start=True)
    for C in sorted(Cs):
        clf.set_params(C=C)
        clf.fit(Z, np.asarray(y), sample_weight=weight)
        yield C, clf, mean, scale


def to_head(clf: Any, mean: np.ndarray, scale: np.ndarray, labels: Sequence[str], feature: "FeatureSpec",
            meta: dict[str, Any]) -> LinearHead:
    """A fitted classifier as a head over ``labels`` (in that order)."""
    classes = [str(c) for c in clf.classes_]
    missing = [lab for lab in labels if lab not in classes]
    if missing:
        raise InputError(f"the training rows lack the classes {missing} (a split's training part must hold every "
                         "class); use fewer validation speakers / a smaller val_fraction, or more data")
    coef, icpt = clf.coef_, clf.intercept_
    if len(classes) == 2:  # scikit-learn keeps one row (class 1 vs 0); softmax([-z/2, z/2]) = sigmoid(z)
        coef, icpt = np.vstack([-coef / 2, coef / 2]), np.concatenate([-icpt / 2, icpt / 2])
    order = [classes.index(lab) for lab in labels]
    return LinearHead(mean, scale, coef[order].T.astype(np.float32), icpt[order].astype(np.float32),
                      tuple(labels), feature, meta)


def fit_head(X: np.ndarray, y: Sequence[str], labels: Sequence[str], C: float, feature: "FeatureSpec",
             meta: dict[str, Any] | None = None, class_weight: str | None = "balanced", seed: int = 0,
             weight: np.ndarray | None = None) -> LinearHead:
    """Standardise, fit multinomial logistic regression with ``C`` and pack the result as a head."""
    mean, scale = standardiser(X, weight)
    clf = _classifier(C, class_weight, seed).fit((X - mean) / scale, np.asarray(y), sample_weight=weight)
    return to_head(clf, mean, scale, labels, feature, dict(meta or {}))


def fit_temperature(log_probs: np.ndarray, y: np.ndarray) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 that minimises the negative log-likelihood of the
    class indices ``y`` under softmax(log_probs / T). ``log_probs``: a head's log-probabilities (or
    logits) of held-out rows. One parameter, so it changes confidence, never the predicted class."""
    from scipy.optimize import minimize_scalar

    z = np.asarray(log_probs, dtype=np.float64)
    y = np.asarray(y)

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        s = s - s.max(axis=1, keepdims=True)
        return float(-(s[np.arange(len(y)), y] - np.log(np.exp(s).sum(axis=1))).mean())

    r = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(r.x))


def calibrated(head: LinearHead, temperature: float) -> LinearHead:
    """``head`` with its logits divided by ``temperature`` (the same classes, calibrated confidence)."""
    import dataclasses

    return dataclasses.replace(head, W=(head.W / temperature).astype(np.float32),
                               b=(head.b / temperature).astype(np.float32))


def fit_ridge(Z: np.ndarray, t: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge regression of ``t`` on standardised features ``Z``: (weights [d], intercept)."""
    from sklearn.linear_model import Ridge

    r = Ridge(alpha=alpha).fit(Z, t)
    return r.coef_.astype(np.float32), float(r.intercept_)
