"""The task registry: names, spellings, label order, metrics and hub sources."""

import dataclasses

import pytest

from smart_tune.errors import ConfigError, SmartTuneError
from smart_tune.metrics import METRICS
from smart_tune.tasks import TaskSpec, get_task, list_tasks

ALL = [
    "cola",
    "sst2",
    "mrpc",
    "stsb",
    "qqp",
    "mnli",
    "qnli",
    "rte",
    "wnli",
    "snli",
    "scitail",
    "anli_r1",
    "anli_r2",
    "anli_r3",
    "anli",
]


def test_list_tasks_gives_canonical_names_glue_first():
    assert list_tasks() == ALL


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("STS-B", "stsb"),
        ("sts-b", "stsb"),
        ("sts_b", "stsb"),
        ("stsb", "stsb"),
        ("SST-2", "sst2"),
        ("sst-2", "sst2"),
        ("CoLA", "cola"),
        ("COLA", "cola"),
        ("MNLI", "mnli"),
        ("MultiNLI", "mnli"),
        ("anli-r1", "anli_r1"),
        ("ANLI_R1", "anli_r1"),
        ("anli_r3", "anli_r3"),
        ("ANLI", "anli"),
        ("SciTail", "scitail"),
        ("QQP", "qqp"),
        (" rte ", "rte"),
    ],
)
def test_spellings(spelling, name):
    assert get_task(spelling).name == name


def test_unknown_task_message_lists_known_tasks():
    with pytest.raises(SmartTuneError) as info:
        get_task("xyz")
    message = str(info.value)
    assert message == f"unknown task 'xyz'; known tasks: {', '.join(ALL)}"
    assert "\n" not in message
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize("name", ALL)
def test_every_task_is_consistent(name):
    task = get_task(name)
    assert 1 <= len(task.text_columns) <= 2
    assert set(task.metrics) <= set(METRICS)
    assert task.main_metric in task.metrics
    assert task.eval_splits and task.test_splits
    assert task.splits[0] == "train"
    assert task.hub is not None
    for split in task.splits:
        assert task.hub.hub_splits(split)
    if task.is_regression:
        assert task.label_list == () and task.num_labels == 1 and task.problem_type == "regression"
        assert task.id2label == {}
    else:
        assert task.num_labels == len(task.label_list) >= 2
        assert task.problem_type == "single_label_classification"
        assert len(task.id2label) == task.num_labels
        assert task.label2id == {v: k for k, v in task.id2label.items()}


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("cola", ("0", "1")),
        ("sst2", ("0", "1")),
        ("mrpc", ("0", "1")),
        ("qqp", ("0", "1")),
        ("wnli", ("0", "1")),
        ("rte", ("entailment", "not_entailment")),
        ("qnli", ("entailment", "not_entailment")),
        ("mnli", ("entailment", "neutral", "contradiction")),
        ("snli", ("entailment", "neutral", "contradiction")),
        ("anli_r2", ("entailment", "neutral", "contradiction")),
        ("anli", ("entailment", "neutral", "contradiction")),
        ("scitail", ("entails", "neutral")),
        ("stsb", ()),
    ],
)
def test_label_order_is_the_glue_hf_order(name, labels):
    assert get_task(name).label_list == labels


def test_readable_label_names_follow_hf_class_labels():
    assert get_task("cola").id2label == {0: "unacceptable", 1: "acceptable"}
    assert get_task("wnli").label_names == ("not_entailment", "entailment")
    assert get_task("rte").label_names == get_task("rte").label_list


@pytest.mark.parametrize(
    ("name", "metrics", "main"),
    [
        ("cola", ("matthews_correlation",), "matthews_correlation"),
        ("mrpc", ("accuracy", "f1"), "accuracy"),
        ("qqp", ("accuracy", "f1"), "accuracy"),
        ("stsb", ("pearson", "spearman"), "pearson"),
        ("rte", ("accuracy",), "accuracy"),
    ],
)
def test_metrics(name, metrics, main):
    task = get_task(name)
    assert task.metrics == metrics
    assert task.main_metric == main


def test_splits():
    mnli = get_task("mnli")
    assert mnli.eval_splits == ("dev_matched", "dev_mismatched")
    assert mnli.test_splits == ("test_matched", "test_mismatched")
    assert mnli.hub.hub_splits("dev_mismatched") == ("validation_mismatched",)
    assert get_task("anli").eval_splits == ("dev",)
    assert get_task("rte").splits == ("train", "dev", "test")


def test_hub_sources():
    assert (get_task("rte").hub.path, get_task("rte").hub.config) == ("nyu-mll/glue", "rte")
    assert get_task("rte").hub.hub_splits("dev") == ("validation",)
    assert get_task("snli").hub.path == "stanfordnlp/snli"
    scitail = get_task("scitail").hub
    assert (scitail.path, scitail.config) == ("allenai/scitail", "tsv_format")
    assert get_task("anli_r2").hub.path == "facebook/anli"
    assert get_task("anli_r2").hub.hub_splits("train") == ("train_r2",)
    assert get_task("anli").hub.hub_splits("dev") == ("dev_r1", "dev_r2", "dev_r3")
    with pytest.raises(KeyError):
        get_task("rte").hub.hub_splits("dev_matched")


def test_task_spec_is_frozen_and_hashable():
    task = get_task("rte")
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.name = "other"
    assert len({task, get_task("RTE")}) == 1
    assert task.display_name == "RTE" and get_task("stsb").display_name == "STS-B"


def test_task_spec_validates_itself():
    with pytest.raises(ConfigError, match="main_metric"):
        TaskSpec("t", ("a",), ("x", "y"), "single_label_classification", ("accuracy",), "f1")
    with pytest.raises(ConfigError, match="1 or 2"):
        TaskSpec("t", ("a", "b", "c"), ("x", "y"), "single_label_classification", ("accuracy",), "accuracy")
    with pytest.raises(ConfigError, match="regression"):
        TaskSpec("t", ("a",), ("x",), "regression", ("pearson",), "pearson")
