"""Evaluation metrics, as GLUE defines them, on numpy arrays.

Each metric is a thin wrapper over scikit-learn or scipy that returns a plain Python ``float``
(JSON-serialisable, no numpy scalars leaking into logs and result files). Every metric is
"higher is better", so checkpoint selection needs no per-metric direction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats
from sklearn import metrics as skm

if TYPE_CHECKING:  # tasks.py does not import this module; the hint alone needs it.
    from smart_tune.tasks import TaskSpec


def _as_1d(values: Any) -> np.ndarray:
    return np.asarray(values).reshape(-1)


def accuracy(predictions: Any, labels: Any) -> float:
    """Return the fraction of ``predictions`` (class ids) equal to ``labels``."""
    return float(skm.accuracy_score(_as_1d(labels), _as_1d(predictions)))


def f1(predictions: Any, labels: Any) -> float:
    """Return binary F1 with class 1 as the positive class (GLUE's MRPC/QQP F1).

    0.0 when there are no predicted and no true positives, instead of a warning.
    """
    return float(
        skm.f1_score(_as_1d(labels), _as_1d(predictions), pos_label=1, average="binary", zero_division=0)
    )


def macro_f1(predictions: Any, labels: Any) -> float:
    """Return the unweighted mean of the per-class F1 scores (classes absent from both count 0)."""
    return float(skm.f1_score(_as_1d(labels), _as_1d(predictions), average="macro", zero_division=0))


def matthews_correlation(predictions: Any, labels: Any) -> float:
    """Return the Matthews correlation coefficient (CoLA's metric); 0.0 when it is undefined."""
    y_true, y_pred = _as_1d(labels), _as_1d(predictions)
    # sklearn already returns 0.0 for a constant prediction, but some versions warn first.
    if np.unique(y_true).size < 2 or np.unique(y_pred).size < 2:
        return 0.0
    return float(skm.matthews_corrcoef(y_true, y_pred))


def _constant(x: np.ndarray) -> bool:
    return x.size < 2 or bool(np.all(x == x[0]))


def pearson(predictions: Any, labels: Any) -> float:
    """Return Pearson's r between predicted and true scores.

    A constant input (common early in regression training) makes r undefined; it returns 0.0
    rather than NaN, and without scipy's ConstantInputWarning on every evaluation.
    """
    return _correlation(stats.pearsonr, predictions, labels)


def spearman(predictions: Any, labels: Any) -> float:
    """Return Spearman's rank correlation; 0.0 when either input is constant (see :func:`pearson`)."""
    return _correlation(stats.spearmanr, predictions, labels)


def _correlation(statistic: Callable, predictions: Any, labels: Any) -> float:
    """``statistic``'s coefficient (scipy's pearsonr or spearmanr) in float64; 0.0 for a constant input."""
    x, y = _as_1d(predictions).astype(np.float64), _as_1d(labels).astype(np.float64)
    if _constant(x) or _constant(y):
        return 0.0
    return float(statistic(x, y)[0])


METRICS: dict[str, Callable[[Any, Any], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "macro_f1": macro_f1,
    "matthews_correlation": matthews_correlation,
    "pearson": pearson,
    "spearman": spearman,
}


def compute_metrics(task: TaskSpec, predictions: Any, labels: Any) -> dict[str, float]:
    """Score ``predictions`` against ``labels`` with each of ``task.metrics``.

    ``predictions`` are logits of shape (N, K) for classification (the class is their argmax; an
    (N,) array is taken as class ids already) or values of shape (N,) or (N, 1) for regression. A
    tuple (a model returning extra outputs) is reduced to its first element. For classification,
    rows whose label is negative (-1 for unlabeled test rows, -100 for ignored ones) are left out.

    Returns ``{metric name: float}`` in the order of ``task.metrics``; empty when no row is labeled.
    """
    # transformers passes a tuple of arrays when the model returns more than logits.
    if isinstance(predictions, tuple) and predictions and isinstance(predictions[0], np.ndarray):
        predictions = predictions[0]
    preds = np.asarray(predictions)
    y = np.asarray(labels)
    if task.is_regression:
        preds = preds.reshape(-1).astype(np.float64)
        y = y.reshape(-1).astype(np.float64)
    else:
        if preds.ndim == 2:
            preds = preds.argmax(axis=-1)
        preds = preds.reshape(-1)
        y = y.reshape(-1)
    if preds.shape != y.shape:
        raise ValueError(f"{preds.shape[0]} predictions for {y.shape[0]} labels")
    if not task.is_regression:
        keep = y >= 0
        preds, y = preds[keep], y[keep]
    if y.size == 0:
        return {}
    return {name: METRICS[name](preds, y) for name in task.metrics}


def make_compute_metrics(task: TaskSpec) -> Callable[[Any], dict[str, float]]:
    """Return a ``compute_metrics`` callback for ``transformers.Trainer``.

    The callback takes an ``EvalPrediction`` (``.predictions``, ``.label_ids``), or a plain
    ``(predictions, labels)`` pair, and returns :func:`compute_metrics` of it.
    """

    def _compute(eval_prediction: Any) -> dict[str, float]:
        if hasattr(eval_prediction, "predictions"):
            predictions, labels = eval_prediction.predictions, eval_prediction.label_ids
        else:
            predictions, labels = eval_prediction
        return compute_metrics(task, predictions, labels)

    return _compute
