"""Evaluation metrics following the conventions of the emotion-recognition literature.

Classification (IEMOCAP-style speech emotion recognition):
    WA ("weighted accuracy") is plain accuracy; UA ("unweighted accuracy") is the
    mean per-class recall over the classes present in ``y_true`` (= sklearn's
    balanced accuracy).

Regression (CMU-MOSI / MOSEI / CH-SIMS sentiment), reproducing MMSA's
``MetricsTop.__eval_mosei_regression`` (used for MOSI too) and
``MetricsTop.__eval_sims_regression``; see :func:`regression_metrics`.

Fold aggregation: :func:`mean_std` / :func:`format_mean_std` / :func:`summarize_folds` (sample std, ddof=1).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Literal

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

__all__ = [
    "classification_metrics",
    "expected_calibration_error",
    "regression_metrics",
    "mean_std",
    "format_mean_std",
    "pearson",
    "summarize_folds",
    "SIMS_EDGES_2",
    "SIMS_EDGES_3",
    "SIMS_EDGES_5",
]

# Inner bin edges for CH-SIMS (labels in [-1, 1]); bins are left-open, right-closed
# except the first, which includes -1: [-1,-0.1], (-0.1,0.1], (0.1,1] and
# [-1,-0.7], (-0.7,-0.1], (-0.1,0.1], (0.1,0.7], (0.7,1].
SIMS_EDGES_2: tuple[float, ...] = (0.0,)
SIMS_EDGES_3: tuple[float, ...] = (-0.1, 0.1)
SIMS_EDGES_5: tuple[float, ...] = (-0.7, -0.1, 0.1, 0.7)


# --------------------------------------------------------------------------- classification


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """ECE (Guo et al. 2017): the gap between confidence and accuracy, over ``bins`` equal-width confidence
    bins weighted by their share of rows. ``probs`` [n, k]; ``y`` the true class indices [n]."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y)
    conf, hit = p.max(axis=1), p.argmax(axis=1) == y
    which = np.minimum((conf * bins).astype(int), bins - 1)
    return float(sum(abs(hit[which == b].mean() - conf[which == b].mean()) * (which == b).mean()
                     for b in range(bins) if (which == b).any()))


def classification_metrics(
    y_true: Sequence[Hashable] | np.ndarray,
    y_pred: Sequence[Hashable] | np.ndarray,
    labels: Sequence[Hashable],
) -> dict[str, Any]:
    """Speech-emotion classification metrics.

    Returns a dict with
      * ``WA``: accuracy (fraction of correct items; "weighted" because large classes weigh more);
      * ``UA``: mean recall over the classes of ``labels`` that occur in ``y_true``
        (balanced accuracy; a class never predicted contributes recall 0, a class
        absent from ``y_true`` is left out rather than counted as 0);
      * ``macro_f1``: unweighted mean of per-class F1 over the classes of ``labels``
        that occur in ``y_true`` or ``y_pred`` (classes absent from both are skipped);
      * ``weighted_f1``: per-class F1 weighted by the class support in ``y_true``;
      * ``per_class_recall``: ``{label: recall}`` for every label (0.0 if absent from ``y_true``);
      * ``confusion_matrix``: nested lists, rows = true class, columns = predicted
        class, both in ``labels`` order.
    Undefined precision/recall (0/0) is counted as 0 (``zero_division=0``), silently.
    """
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    if yt.shape != yp.shape or yt.ndim != 1 or yt.size == 0:
        raise ValueError("y_true and y_pred must be non-empty 1-D sequences of equal length")
    labels = list(labels)
    known = set(labels)
    unknown = {v for v in np.concatenate([yt, yp]).tolist() if v not in known}
    if unknown:
        raise ValueError(f"values not in labels: {sorted(map(str, unknown))}")

    seen_true = set(yt.tolist())
    present = [lab for lab in labels if lab in seen_true]
    seen_any = seen_true | set(yp.tolist())
    present_any = [lab for lab in labels if lab in seen_any]

    recalls = recall_score(yt, yp, labels=labels, average=None, zero_division=0)
    return {
        "WA": float(accuracy_score(yt, yp)),
        "UA": float(recall_score(yt, yp, labels=present, average="macro", zero_division=0)),
        "macro_f1": float(f1_score(yt, yp, labels=present_any, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(yt, yp, labels=labels, average="weighted", zero_division=0)),
        "per_class_recall": {lab: float(r) for lab, r in zip(labels, recalls)},
        "confusion_matrix": confusion_matrix(yt, yp, labels=labels).tolist(),
    }


# --------------------------------------------------------------------------- regression


def _multiclass_acc(pred: np.ndarray, true: np.ndarray) -> float:
    # MMSA's __multiclass_acc: exact match after np.round. NB np.round rounds half
    # to even (2.5 -> 2, -0.5 -> -0.0 == 0), which we keep for comparability.
    return float(np.mean(np.round(pred) == np.round(true)))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    # np.corrcoef as in MMSA, but return NaN quietly for constant inputs.
    if a.size < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _sims_bins(x: np.ndarray, inner_edges: Sequence[float]) -> np.ndarray:
    # right=True: bin i is (edge[i-1], edge[i]]; x is already clipped to [-1, 1],
    # so the first bin is [-1, edge[0]] -- identical to MMSA's ms_k loops with
    # outer edges -1.01 / 1.01.
    return np.digitize(x, np.asarray(inner_edges, dtype=np.float64), right=True)


def regression_metrics(
    y_true: Sequence[float] | np.ndarray,
    y_pred: Sequence[float] | np.ndarray,
    scale: Literal["mosi", "sims"] = "mosi",
) -> dict[str, float]:
    """Sentiment-regression metrics, following MMSA's ``MetricsTop`` exactly.

    ``scale="mosi"`` (CMU-MOSI / MOSEI, labels in [-3, 3]; MMSA ``__eval_mosei_regression``):
      * ``MAE`` = mean |pred - true| and ``Corr`` = Pearson r, on the *unclipped* values;
      * ``Acc7`` / ``Acc5`` / ``Acc3``: both pred and true are clipped to [-3,3] / [-2,2] /
        [-1,1], then rounded with ``np.round`` (half to even); accuracy = exact match
        (e.g. 3.4 -> 3, -3.6 -> -3 after clipping, 0.5 -> 0, 1.5 -> 2);
      * ``Acc2_has0`` / ``F1_has0``: negative (y < 0) vs non-negative (y >= 0) on all items;
      * ``Acc2_non0`` / ``F1_non0``: only items with ``y_true != 0``; positive (y > 0) vs
        not positive (so a prediction of exactly 0 counts as negative);
      * F1 scores are support-weighted F1 (``average="weighted"``), as MMSA reports.
      (MMSA computes Acc-3 but does not report it for MOSI; it is included here.)

    ``scale="sims"`` (CH-SIMS, labels in [-1, 1]; MMSA ``__eval_sims_regression``):
      pred and true are first clipped to [-1, 1] (MAE and Corr use the clipped values), then
      * ``Acc2``: [-1, 0] vs (0, 1];
      * ``Acc3``: [-1, -0.1], (-0.1, 0.1], (0.1, 1];
      * ``Acc5``: [-1, -0.7], (-0.7, -0.1], (-0.1, 0.1], (0.1, 0.7], (0.7, 1];
      * ``F1``: weighted F1 of the Acc2 classes.

    Inputs are cast to float64 (so a bin edge such as 0.1 is compared as the float64 0.1).
    Values are not rounded to 4 decimals (MMSA rounds for display only).
    """
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if t.shape != p.shape or t.size == 0:
        raise ValueError("y_true and y_pred must be non-empty and of equal length")

    if scale == "mosi":
        out: dict[str, float] = {
            "MAE": float(np.mean(np.abs(p - t))),
            "Corr": pearson(p, t),
        }
        for k, bound in ((7, 3.0), (5, 2.0), (3, 1.0)):
            out[f"Acc{k}"] = _multiclass_acc(np.clip(p, -bound, bound), np.clip(t, -bound, bound))

        bt, bp = t >= 0, p >= 0
        out["Acc2_has0"] = float(accuracy_score(bt, bp))
        out["F1_has0"] = float(f1_score(bt, bp, average="weighted", zero_division=0))

        nz = t != 0
        if nz.any():
            nt, np_ = t[nz] > 0, p[nz] > 0
            out["Acc2_non0"] = float(accuracy_score(nt, np_))
            out["F1_non0"] = float(f1_score(nt, np_, average="weighted", zero_division=0))
        else:  # every label is neutral: the non0 protocol is undefined
            out["Acc2_non0"] = out["F1_non0"] = float("nan")
        return out

    if scale == "sims":
        t, p = np.clip(t, -1.0, 1.0), np.clip(p, -1.0, 1.0)
        t2, p2 = _sims_bins(t, SIMS_EDGES_2), _sims_bins(p, SIMS_EDGES_2)
        return {
            "MAE": float(np.mean(np.abs(p - t))),
            "Corr": pearson(p, t),
            "Acc2": float(np.mean(t2 == p2)),
            "Acc3": float(np.mean(_sims_bins(t, SIMS_EDGES_3) == _sims_bins(p, SIMS_EDGES_3))),
            "Acc5": float(np.mean(_sims_bins(t, SIMS_EDGES_5) == _sims_bins(p, SIMS_EDGES_5))),
            "F1": float(f1_score(t2, p2, average="weighted", zero_division=0)),
        }

    raise ValueError(f"scale must be 'mosi' or 'sims', got {scale!r}")


# --------------------------------------------------------------------------- fold aggregation


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and *sample* standard deviation (ddof=1) over folds; one fold gives std 0."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        raise ValueError("mean_std needs at least one value")
    std = float(np.std(v, ddof=1)) if v.size > 1 else 0.0
    return float(np.mean(v)), std


def format_mean_std(values: Iterable[float], scale: float = 100, digits: int = 1) -> str:
    """``"72.8 ± 4.2"``: mean ± sample std of ``values * scale`` to ``digits`` decimals."""
    m, s = mean_std(values)
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


SUMMARY_KEYS = ("UA", "WA", "macro_f1", "weighted_f1")


def summarize_folds(folds: Sequence[dict[str, Any]], keys: Sequence[str] = SUMMARY_KEYS) -> dict[str, dict[str, Any]]:
    """``{metric: {"mean", "std", "text"}}`` over the splits' ``f["metrics"][metric]`` (the run reports)."""
    out = {}
    for k in keys:
        vals = [f["metrics"][k] for f in folds]
        mu, sd = mean_std(vals)
        out[k] = {"mean": mu, "std": sd, "text": format_mean_std(vals)}
    return out
