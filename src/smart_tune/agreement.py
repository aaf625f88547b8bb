"""Error analysis by annotator agreement, as §5.2 of the SMART paper: accuracy per agreement bucket.

SNLI's dev and test pairs carry the labels of five annotators (``annotator_labels``: the author's
label and four validators'); the loader keeps them as a column of SNLI splits read from the original
files (the hub copy has none). A pair's *pattern* is its label counts, largest first, over the three
classes: ``5/0/0`` (all five agree), ``4/1/0``, ``3/2/0``, ``3/1/1``. These four are the paper's
buckets. Everything else goes to the bucket ``other``: pairs with fewer (or more) than five labels
(SNLI test has 9 pairs with four: 6 ``4/0/0``, 3 ``3/1/0``) and any other pattern. Pairs without a
majority (``2/2/1``, gold label ``-``) never reach this module: the loader drops them, as everyone does.

Accuracy is against the gold label (the dataset's ``label``), as in the rest of smart-tune.

Standard library and numpy only: ``smart-tune evaluate`` imports it lazily.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .errors import DataError

# The column of an SNLI split that holds each pair's annotator labels (a list of label names).
COLUMN = "annotator_labels"
# The paper's buckets, most agreement first; then the bucket for every other pair.
BUCKETS = ("5/0/0", "4/1/0", "3/2/0", "3/1/1")
OTHER = "other"
NUM_CLASSES = 3  # entailment, neutral, contradiction


def agreement_pattern(labels: Iterable[str], num_classes: int = NUM_CLASSES) -> str:
    """The label counts of one pair, largest first, padded with zeros to ``num_classes``:
    ``["neutral", "neutral", "contradiction", "neutral", "neutral"]`` → ``"4/1/0"``."""
    counts = sorted(Counter(str(label).strip() for label in labels).values(), reverse=True)
    counts += [0] * (num_classes - len(counts))
    return "/".join(str(c) for c in counts)


def agreement_bucket(labels: Sequence[str]) -> str:
    """The bucket of one pair: its pattern when that is one of :data:`BUCKETS` (five labels), else
    :data:`OTHER`."""
    pattern = agreement_pattern(labels)
    return pattern if len(labels) == 5 and pattern in BUCKETS else OTHER


def has_annotator_labels(dataset) -> bool:
    """Whether a loaded split carries annotator labels (a non-empty list for at least one row)."""
    if COLUMN not in dataset.column_names:
        return False
    return any(len(labels) for labels in dataset[:][COLUMN])


def agreement_buckets(dataset, what: str = "this split") -> list[str]:
    """The bucket of every row of a loaded split (see :func:`smart_tune.data.load_split`), in order.

    Raises:
        DataError: the split has no annotator labels (a GLUE task, SNLI from the hub, a file without them).
    """
    if not has_annotator_labels(dataset):
        raise DataError(
            f"{what} has no annotator labels ('{COLUMN}'): only SNLI's original files carry them "
            "(smart-tune evaluate --task snli --data-dir DIR with snli_1.0_<split>.jsonl[.gz])"
        )
    return [agreement_bucket(labels) for labels in dataset[:][COLUMN]]


def bucket_counts(buckets: Sequence[str]) -> dict[str, int]:
    """How many pairs each bucket holds, in the order of :data:`BUCKETS` then ``other`` (empty ones left out)."""
    counts = Counter(buckets)
    return {name: counts[name] for name in (*BUCKETS, OTHER) if counts[name]}


def accuracy_by_bucket(
    buckets: Sequence[str], predictions: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> dict[str, dict[str, Any]]:
    """``{bucket: {"accuracy": x, "num_examples": n}}`` from predicted and gold class indices, for every
    non-empty bucket, in the order of :data:`BUCKETS` then ``other``. ``predictions`` may be logits
    (2-D: their argmax is taken)."""
    predictions = np.asarray(predictions)
    if predictions.ndim == 2:
        predictions = predictions.argmax(-1)
    labels = np.asarray(labels)
    names = np.asarray(list(buckets), dtype=object)
    if not len(names) == len(predictions) == len(labels):
        raise ValueError(
            f"{len(names)} buckets, {len(predictions)} predictions and {len(labels)} labels: one each per pair"
        )
    out = {}
    for name in bucket_counts(list(names)):
        chosen = names == name
        out[name] = {
            "accuracy": float((predictions[chosen] == labels[chosen]).mean()),
            "num_examples": int(chosen.sum()),
        }
    return out
