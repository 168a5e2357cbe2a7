"""Hand-computed checks for emofuse.training.metrics."""

from __future__ import annotations

import math
import warnings

import pytest

from emofuse.training.metrics import (
    classification_metrics,
    format_mean_std,
    mean_std,
    regression_metrics,
)

LABELS = ["ang", "hap", "neu"]


# --------------------------------------------------------------------------- classification


def test_wa_ua_differ_and_never_predicted_class() -> None:
    # 6 ang, 2 hap, 2 neu; "neu" is never predicted.
    y_true = ["ang"] * 6 + ["hap"] * 2 + ["neu"] * 2
    y_pred = ["ang"] * 6 + ["ang", "hap"] + ["ang", "ang"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zero_division=0 must keep sklearn quiet
        m = classification_metrics(y_true, y_pred, LABELS)
    # WA = correct / N = (6 + 1) / 10
    assert m["WA"] == pytest.approx(0.7)
    # recalls: ang 6/6 = 1, hap 1/2, neu 0/2 -> UA = (1 + 0.5 + 0) / 3 = 0.5
    assert m["per_class_recall"] == pytest.approx({"ang": 1.0, "hap": 0.5, "neu": 0.0})
    assert m["UA"] == pytest.approx(0.5)
    # F1: ang P=6/9 R=1 -> 0.8; hap P=1 R=0.5 -> 2/3; neu 0
    # macro = (0.8 + 2/3 + 0) / 3 = 22/45; weighted = (6*0.8 + 2*2/3 + 2*0) / 10 = 46/75
    assert m["macro_f1"] == pytest.approx(22 / 45)
    assert m["weighted_f1"] == pytest.approx(46 / 75)
    assert m["weighted_f1"] > m["macro_f1"]  # the majority class dominates the weighted score
    # rows = true, columns = predicted
    assert m["confusion_matrix"] == [[6, 0, 0], [1, 1, 0], [2, 0, 0]]


def test_confusion_matrix_orientation_and_label_order() -> None:
    m = classification_metrics(["ang", "ang"], ["hap", "hap"], LABELS)
    assert m["confusion_matrix"] == [[0, 2, 0], [0, 0, 0], [0, 0, 0]]
    m = classification_metrics(["ang", "ang"], ["hap", "hap"], ["neu", "hap", "ang"])
    assert m["confusion_matrix"] == [[0, 0, 0], [0, 0, 0], [0, 2, 0]]
    assert all(isinstance(v, int) for row in m["confusion_matrix"] for v in row)


def test_ua_skips_classes_absent_from_truth() -> None:
    # "neu" absent from y_true (only predicted once): UA = mean(ang 1/2, hap 1/1) = 0.75, not 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics(["ang", "ang", "hap"], ["ang", "neu", "hap"], LABELS)
    assert m["UA"] == pytest.approx(0.75)
    assert m["WA"] == pytest.approx(2 / 3)
    # macro F1 over classes seen in truth or predictions: ang 2/3 (P=1,R=.5), hap 1, neu 0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_macro_f1_ignores_labels_absent_everywhere() -> None:
    m = classification_metrics(["ang", "hap"], ["ang", "hap"], LABELS)
    assert m["macro_f1"] == pytest.approx(1.0)
    assert m["UA"] == pytest.approx(1.0)


def test_unknown_label_rejected() -> None:
    with pytest.raises(ValueError):
        classification_metrics(["ang"], ["sad"], LABELS)


# --------------------------------------------------------------------------- regression (MOSI)


def test_mae_and_pearson_hand_checked() -> None:
    # MAE = (1 + 0 + 2) / 3 = 1
    # r: dt = [-1, 0, 1], dp = [-1, -1, 2]; cov = 3, |dt|^2 = 2, |dp|^2 = 6 -> 3/sqrt(12) = sqrt(3)/2
    m = regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 5.0])
    assert m["MAE"] == pytest.approx(1.0)
    assert m["Corr"] == pytest.approx(math.sqrt(3) / 2)


def test_acc2_has0_vs_non0() -> None:
    y_true = [-1.0, 0.0, 0.0, 2.0]
    y_pred = [-0.5, -0.2, 0.3, 1.0]
    m = regression_metrics(y_true, y_pred, scale="mosi")
    # has0: truth>=0 [F,T,T,T], pred>=0 [F,F,T,T] -> 3/4
    assert m["Acc2_has0"] == pytest.approx(0.75)
    # weighted F1: neg P=1/2 R=1 -> 2/3 (support 1); nonneg P=1 R=2/3 -> 0.8 (support 3)
    # -> (2/3 + 3*0.8) / 4 = 23/30
    assert m["F1_has0"] == pytest.approx(23 / 30)
    # non0 keeps items 0 and 3 only: [neg, pos] vs [neg, pos] -> 1.0
    assert m["Acc2_non0"] == pytest.approx(1.0)
    assert m["F1_non0"] == pytest.approx(1.0)


def test_non0_counts_zero_prediction_as_negative() -> None:
    # has0: 0.0 >= 0 is "non-negative" -> both right; non0: 0.0 > 0 is False -> one wrong
    m = regression_metrics([1.0, 2.0], [0.0, 0.5])
    assert m["Acc2_has0"] == pytest.approx(1.0)
    assert m["Acc2_non0"] == pytest.approx(0.5)


def test_acc7_acc5_acc3_round_and_clip() -> None:
    # after clip to [-3,3] + np.round (half to even):
    #   3.4->3 vs 3; -3.6->-3 (clipped) vs -3; 2.5->2 vs 2; 0.5->0 vs 0; -0.5->-0 vs 0;
    #   1.5->2 vs 2; 2.6->3 vs 2 (miss)  => Acc7 = 6/7
    # clip to [-2,2]: 2.6->2 vs 2 now matches, everything else too  => Acc5 = 1
    y_true = [3.4, -3.6, 2.5, 0.5, -0.5, 1.5, 2.6]
    y_pred = [3.0, -3.0, 2.0, 0.0, 0.0, 2.0, 2.0]
    m = regression_metrics(y_true, y_pred)
    assert m["Acc7"] == pytest.approx(6 / 7)
    assert m["Acc5"] == pytest.approx(1.0)
    assert m["Acc3"] == pytest.approx(1.0)
    # MAE is on unclipped values: (0.4 + 0.6 + 0.5 + 0.5 + 0.5 + 0.5 + 0.6) / 7
    assert m["MAE"] == pytest.approx(3.6 / 7)


def test_acc3_mosi_sign_like_classes() -> None:
    # clip to [-1,1] then round: 0.6->1 vs 0.4->0 (miss); -0.4->0 vs 0.4->0; -2->-1 vs -0.7->-1
    m = regression_metrics([0.6, -0.4, -2.0], [0.4, 0.4, -0.7])
    assert m["Acc3"] == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- regression (SIMS)


def test_sims_acc2_zero_is_negative_side() -> None:
    # [-1, 0] vs (0, 1]: truth 0.0 groups with -1.0; 0.01 is positive
    m = regression_metrics([0.0, 0.01], [-1.0, 0.0], scale="sims")
    assert m["Acc2"] == pytest.approx(0.5)


def test_sims_acc3_edges() -> None:
    # classes [-1,-0.1], (-0.1,0.1], (0.1,1]
    y_true = [-0.1, 0.1, -1.0, 1.0, 0.0]
    same = [-0.5, 0.0, -0.2, 0.2, 0.1]  # same bin as the truth each time
    assert regression_metrics(y_true, same, scale="sims")["Acc3"] == pytest.approx(1.0)
    other = [-0.09, 0.11, -0.1 + 1e-9, 0.1, -0.1]  # just across each edge
    assert regression_metrics(y_true, other, scale="sims")["Acc3"] == pytest.approx(0.0)


def test_sims_acc5_edges() -> None:
    # classes [-1,-0.7], (-0.7,-0.1], (-0.1,0.1], (0.1,0.7], (0.7,1]
    y_true = [-0.7, -0.1, 0.1, 0.7]
    assert regression_metrics(y_true, [-1.0, -0.5, 0.0, 0.5], scale="sims")["Acc5"] == 1.0
    assert regression_metrics(y_true, [-0.69, -0.09, 0.11, 0.71], scale="sims")["Acc5"] == 0.0


def test_sims_clips_before_mae() -> None:
    m = regression_metrics([1.5, -1.0], [1.0, -2.0], scale="sims")
    assert m["MAE"] == pytest.approx(0.0)
    assert m["Acc5"] == pytest.approx(1.0)


def test_bad_scale() -> None:
    with pytest.raises(ValueError):
        regression_metrics([0.0], [0.0], scale="mosei")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- folds


def test_mean_std_sample() -> None:
    assert mean_std([1, 2, 3]) == pytest.approx((2.0, 1.0))  # ddof=1: sqrt((1+0+1)/2)
    assert mean_std([0.5]) == (0.5, 0.0)


def test_format_mean_std() -> None:
    assert format_mean_std([0.7, 0.8, 0.9]) == "80.0 ± 10.0"
    assert format_mean_std([1, 2, 3], scale=1, digits=2) == "2.00 ± 1.00"
