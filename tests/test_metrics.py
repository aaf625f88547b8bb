"""Metrics: agreement with scikit-learn/scipy, a hand-computed case, and compute_metrics shapes."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from smart_tune.metrics import (
    accuracy,
    compute_metrics,
    f1,
    macro_f1,
    make_compute_metrics,
    matthews_correlation,
    pearson,
    spearman,
)
from smart_tune.tasks import get_task

RNG = np.random.default_rng(0)
Y2 = RNG.integers(0, 2, 200)
P2 = np.where(RNG.random(200) < 0.7, Y2, 1 - Y2)
Y3 = RNG.integers(0, 3, 200)
P3 = np.where(RNG.random(200) < 0.6, Y3, RNG.integers(0, 3, 200))
SCORES = RNG.uniform(0, 5, 100)
PRED_SCORES = SCORES + RNG.normal(0, 1, 100)


def test_against_sklearn_and_scipy():
    assert accuracy(P2, Y2) == pytest.approx(skm.accuracy_score(Y2, P2))
    assert f1(P2, Y2) == pytest.approx(skm.f1_score(Y2, P2))
    assert macro_f1(P3, Y3) == pytest.approx(skm.f1_score(Y3, P3, average="macro"))
    assert matthews_correlation(P2, Y2) == pytest.approx(skm.matthews_corrcoef(Y2, P2))
    assert matthews_correlation(P3, Y3) == pytest.approx(skm.matthews_corrcoef(Y3, P3))
    assert pearson(PRED_SCORES, SCORES) == pytest.approx(stats.pearsonr(PRED_SCORES, SCORES)[0])
    assert spearman(PRED_SCORES, SCORES) == pytest.approx(stats.spearmanr(PRED_SCORES, SCORES)[0])


def test_hand_computed_binary_case():
    predictions = np.array([1, 1, 0, 0, 1])
    labels = np.array([1, 0, 0, 1, 1])
    # TP = 2 (rows 0, 4), FP = 1 (row 1), TN = 1 (row 2), FN = 1 (row 3).
    assert accuracy(predictions, labels) == pytest.approx(3 / 5)
    assert f1(predictions, labels) == pytest.approx(2 / 3)  # precision = recall = 2/3
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2 - 1) / sqrt(3*3*2*2)
    assert matthews_correlation(predictions, labels) == pytest.approx(1 / 6)
    # Per-class F1: class 1 is 2/3; class 0 has TP 1, FP 1, FN 1, so 1/2.
    assert macro_f1(predictions, labels) == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_hand_computed_correlations():
    x, y = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0])
    # Deviations (-1, 0, 1) and (-7/3, -1/3, 8/3): r = 5 / (sqrt(2) * sqrt(114) / 3).
    assert pearson(x, y) == pytest.approx(15 / math.sqrt(228))
    assert spearman(x, y) == pytest.approx(1.0)
    assert spearman(x, -y) == pytest.approx(-1.0)


def test_degenerate_inputs_give_zero_without_warnings():
    labels = np.array([0.5, 1.0, 2.0, 4.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pearson(np.full(4, 2.5), labels) == 0.0
        assert spearman(np.full(4, 2.5), labels) == 0.0
        assert pearson(labels, np.ones(4)) == 0.0
        assert matthews_correlation(np.ones(4, dtype=int), np.array([0, 1, 1, 0])) == 0.0
        assert f1(np.zeros(4, dtype=int), np.zeros(4, dtype=int)) == 0.0


def test_values_are_plain_floats():
    for value in (accuracy(P2, Y2), f1(P2, Y2), pearson(PRED_SCORES, SCORES), spearman(PRED_SCORES, SCORES)):
        assert type(value) is float


def _logits(classes, k):
    logits = np.zeros((len(classes), k), dtype=np.float32)
    logits[np.arange(len(classes)), classes] = 3.0
    return logits


def test_compute_metrics_classification_from_logits():
    result = compute_metrics(get_task("mrpc"), _logits(P2, 2), Y2)
    assert list(result) == ["accuracy", "f1"]
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(Y2, P2))
    assert result["f1"] == pytest.approx(skm.f1_score(Y2, P2))
    assert all(type(v) is float for v in result.values())
    assert list(compute_metrics(get_task("cola"), _logits(P2, 2), Y2)) == ["matthews_correlation"]
    assert compute_metrics(get_task("mnli"), _logits(P3, 3), Y3) == {"accuracy": accuracy(P3, Y3)}


def test_compute_metrics_regression_shapes():
    task = get_task("stsb")
    flat = compute_metrics(task, PRED_SCORES, SCORES)
    column = compute_metrics(task, PRED_SCORES.reshape(-1, 1).astype(np.float32), SCORES)
    assert list(flat) == ["pearson", "spearman"]
    assert flat["pearson"] == pytest.approx(stats.pearsonr(PRED_SCORES, SCORES)[0])
    assert column["pearson"] == pytest.approx(flat["pearson"], abs=1e-6)
    assert column["spearman"] == pytest.approx(flat["spearman"], abs=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compute_metrics(task, np.full((100, 1), 3.0), SCORES) == {"pearson": 0.0, "spearman": 0.0}


def test_compute_metrics_ignores_unlabeled_rows_and_extra_outputs():
    task = get_task("rte")
    logits = _logits(np.array([0, 1, 1, 0]), 2)
    labels = np.array([0, 1, -1, -100])
    assert compute_metrics(task, (logits, np.zeros((4, 7))), labels) == {"accuracy": 1.0}
    assert compute_metrics(task, logits, np.full(4, -1)) == {}
    with pytest.raises(ValueError):
        compute_metrics(task, logits, np.array([0, 1]))


def test_make_compute_metrics_accepts_eval_prediction():
    from transformers import EvalPrediction

    callback = make_compute_metrics(get_task("mrpc"))
    result = callback(EvalPrediction(predictions=_logits(P2, 2), label_ids=Y2))
    assert result == compute_metrics(get_task("mrpc"), _logits(P2, 2), Y2)
    assert callback((_logits(P2, 2), Y2)) == result
