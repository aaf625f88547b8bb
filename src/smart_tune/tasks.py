"""The task registry: what each benchmark task looks like to the rest of smart-tune.

A :class:`TaskSpec` says which text columns a loaded dataset has, what the labels are and in which
order, how the task is scored, which splits exist, and where the task lives on the Hugging Face hub.
It holds no file-layout details (those belong to :mod:`smart_tune.data`) and no training code.

Label order is the GLUE / Hugging Face ``ClassLabel`` order wherever one exists, so that label index
``i`` means the same thing whether a split was read from the original files or from the hub, and a
model fine-tuned here has the same ``id2label`` as one fine-tuned with the usual HF scripts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from smart_tune.errors import ConfigError

# The output types, by their transformers names (``config.problem_type``): defined here, not beside the
# divergences that use them, because option parsing reads tasks without importing torch.
SINGLE_LABEL = "single_label_classification"
REGRESSION = "regression"
MULTI_LABEL = "multi_label_classification"  # no registered task has it; the divergences take it


@dataclass(frozen=True)
class HubSource:
    """Where a task lives on the Hugging Face hub.

    ``splits`` maps each local split name ("train", "dev", "test", "dev_matched", ...) to the hub
    split names that make it up; more than one hub split means they are concatenated (``anli``).
    It is a tuple of pairs rather than a dict so that :class:`TaskSpec` stays hashable.
    """

    path: str
    config: str | None
    splits: tuple[tuple[str, tuple[str, ...]], ...]

    def hub_splits(self, split: str) -> tuple[str, ...]:
        """Return the hub split names for the local split ``split`` (KeyError if there are none)."""
        for local, remote in self.splits:
            if local == split:
                return remote
        raise KeyError(split)


@dataclass(frozen=True)
class TaskSpec:
    """One fine-tuning task.

    Attributes:
        name: canonical name, as the HF GLUE configurations spell it ("cola", "sst2", "stsb", ...,
            "snli", "scitail", "anli_r1", "anli_r2", "anli_r3", "anli", or "custom").
        text_columns: the 1 or 2 string columns of a loaded dataset that form the model input, in
            input order (first segment, second segment).
        label_list: the labels as they are written in the original files, in label-index order
            (index ``i`` of the loaded ``label`` column is ``label_list[i]``). These are also the
            strings a GLUE submission file expects. Empty for regression.
        problem_type: "single_label_classification" or "regression" (the transformers names).
        metrics: names of functions in :mod:`smart_tune.metrics` that score the task.
        main_metric: the metric the best checkpoint is selected on (higher is better), computed on
            ``eval_splits[0]``. MRPC and QQP use accuracy, the first number of the "Acc/F1" pair the
            SMART paper reports; F1 is still reported.
        eval_splits: dev split names, in reporting order (MNLI: matched then mismatched).
        test_splits: test split names (GLUE test labels are withheld: their ``label`` is -1, NaN for regression).
        hub: where :func:`smart_tune.data.load_split` finds the task online, or None.
        display_name: the name papers and the GLUE leaderboard use ("CoLA", "SST-2", "STS-B").
        label_names: human-readable names for ``label_list`` (the HF ``ClassLabel`` names, e.g.
            "unacceptable"/"acceptable" for CoLA's "0"/"1"); defaults to ``label_list``.
    """

    name: str
    text_columns: tuple[str, ...]
    label_list: tuple[str, ...]
    problem_type: str
    metrics: tuple[str, ...]
    main_metric: str
    eval_splits: tuple[str, ...] = ("dev",)
    test_splits: tuple[str, ...] = ("test",)
    hub: HubSource | None = None
    display_name: str = ""
    label_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        # Catch registry mistakes at import time rather than deep inside a training run.
        if len(self.text_columns) not in (1, 2):
            raise ConfigError(f"task {self.name}: text_columns must name 1 or 2 columns")
        if self.problem_type not in (SINGLE_LABEL, REGRESSION):
            raise ConfigError(f"task {self.name}: unknown problem_type {self.problem_type!r}")
        if (self.problem_type == REGRESSION) != (len(self.label_list) == 0):
            raise ConfigError(f"task {self.name}: regression tasks, and only they, have no label_list")
        if self.main_metric not in self.metrics:
            raise ConfigError(f"task {self.name}: main_metric {self.main_metric!r} is not in its metrics")
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)
        if not self.label_names:
            object.__setattr__(self, "label_names", self.label_list)
        elif len(self.label_names) != len(self.label_list):
            raise ConfigError(f"task {self.name}: label_names and label_list differ in length")

    @property
    def is_regression(self) -> bool:
        """True for regression tasks (STS-B, custom regression)."""
        return self.problem_type == REGRESSION

    @property
    def num_labels(self) -> int:
        """The model's output size: the number of classes, or 1 for regression."""
        return 1 if self.is_regression else len(self.label_list)

    @property
    def splits(self) -> tuple[str, ...]:
        """All split names of the task: "train", then the eval splits, then the test splits."""
        return ("train", *self.eval_splits, *self.test_splits)

    @property
    def id2label(self) -> dict[int, str]:
        """Index → readable label name, for a transformers model config ({} for regression)."""
        return dict(enumerate(self.label_names))

    @property
    def label2id(self) -> dict[str, int]:
        """Readable label name → index, for a transformers model config ({} for regression)."""
        return {name: i for i, name in enumerate(self.label_names)}


_NLI3 = ("entailment", "neutral", "contradiction")
_NLI2 = ("entailment", "not_entailment")
_BINARY = ("0", "1")


def _glue_hub(config: str) -> HubSource:
    return HubSource(
        "nyu-mll/glue", config, (("train", ("train",)), ("dev", ("validation",)), ("test", ("test",)))
    )


def _anli_hub(rounds: tuple[str, ...]) -> HubSource:
    return HubSource(
        "facebook/anli",
        None,
        tuple((split, tuple(f"{split}_r{r}" for r in rounds)) for split in ("train", "dev", "test")),
    )


def _classification(
    name: str, display: str, text: tuple[str, ...], labels: tuple[str, ...], **kw
) -> TaskSpec:
    kw.setdefault("metrics", ("accuracy",))
    kw.setdefault("main_metric", "accuracy")
    return TaskSpec(name, text, labels, SINGLE_LABEL, display_name=display, **kw)


_TASKS: tuple[TaskSpec, ...] = (
    _classification(
        "cola",
        "CoLA",
        ("sentence",),
        _BINARY,
        metrics=("matthews_correlation",),
        main_metric="matthews_correlation",
        hub=_glue_hub("cola"),
        label_names=("unacceptable", "acceptable"),
    ),
    _classification(
        "sst2", "SST-2", ("sentence",), _BINARY, hub=_glue_hub("sst2"), label_names=("negative", "positive")
    ),
    _classification(
        "mrpc",
        "MRPC",
        ("sentence1", "sentence2"),
        _BINARY,
        metrics=("accuracy", "f1"),
        hub=_glue_hub("mrpc"),
        label_names=("not_equivalent", "equivalent"),
    ),
    TaskSpec(
        "stsb",
        ("sentence1", "sentence2"),
        (),
        REGRESSION,
        metrics=("pearson", "spearman"),
        main_metric="pearson",
        hub=_glue_hub("stsb"),
        display_name="STS-B",
    ),
    _classification(
        "qqp",
        "QQP",
        ("question1", "question2"),
        _BINARY,
        metrics=("accuracy", "f1"),
        hub=_glue_hub("qqp"),
        label_names=("not_duplicate", "duplicate"),
    ),
    _classification(
        "mnli",
        "MNLI",
        ("premise", "hypothesis"),
        _NLI3,
        eval_splits=("dev_matched", "dev_mismatched"),
        test_splits=("test_matched", "test_mismatched"),
        hub=HubSource(
            "nyu-mll/glue",
            "mnli",
            (
                ("train", ("train",)),
                ("dev_matched", ("validation_matched",)),
                ("dev_mismatched", ("validation_mismatched",)),
                ("test_matched", ("test_matched",)),
                ("test_mismatched", ("test_mismatched",)),
            ),
        ),
    ),
    _classification("qnli", "QNLI", ("question", "sentence"), _NLI2, hub=_glue_hub("qnli")),
    _classification("rte", "RTE", ("sentence1", "sentence2"), _NLI2, hub=_glue_hub("rte")),
    _classification(
        "wnli",
        "WNLI",
        ("sentence1", "sentence2"),
        _BINARY,
        hub=_glue_hub("wnli"),
        label_names=("not_entailment", "entailment"),
    ),
    _classification(
        "snli",
        "SNLI",
        ("premise", "hypothesis"),
        _NLI3,
        hub=HubSource(
            "stanfordnlp/snli",
            None,
            (("train", ("train",)), ("dev", ("validation",)), ("test", ("test",))),
        ),
    ),
    _classification(
        "scitail",
        "SciTail",
        ("premise", "hypothesis"),
        ("entails", "neutral"),
        hub=HubSource(
            "allenai/scitail",
            "tsv_format",
            (("train", ("train",)), ("dev", ("validation",)), ("test", ("test",))),
        ),
    ),
    *(
        _classification(
            f"anli_r{r}", f"ANLI-R{r}", ("premise", "hypothesis"), _NLI3, hub=_anli_hub((str(r),))
        )
        for r in (1, 2, 3)
    ),
    _classification("anli", "ANLI", ("premise", "hypothesis"), _NLI3, hub=_anli_hub(("1", "2", "3"))),
)

_BY_NAME: dict[str, TaskSpec] = {task.name: task for task in _TASKS}

# Every spelling is reduced to lower-case letters and digits, so "STS-B", "sts_b", "StsB" and
# "anli-r1" / "ANLI_R1" all meet the canonical names here.
_ALIASES: dict[str, str] = {re.sub(r"[^a-z0-9]", "", name): name for name in _BY_NAME}
_ALIASES.update({"multinli": "mnli", "stsbenchmark": "stsb"})


def list_tasks() -> list[str]:
    """Return the canonical names of all registered tasks, GLUE first, in registry order."""
    return [task.name for task in _TASKS]


def get_task(name: str) -> TaskSpec:
    """Return the :class:`TaskSpec` for ``name``, accepting the usual spellings case-insensitively.

    ``"STS-B"``, ``"sts-b"``, ``"SST-2"``, ``"CoLA"``, ``"MNLI"``, ``"anli-r1"`` and ``"ANLI_R1"`` all
    work. Raises :class:`~smart_tune.errors.ConfigError` (a ``SmartTuneError``) naming the known
    tasks when the name matches none.
    """
    key = re.sub(r"[^a-z0-9]", "", str(name).lower())
    if key not in _ALIASES:
        raise ConfigError(f"unknown task '{name}'; known tasks: {', '.join(list_tasks())}")
    return _BY_NAME[_ALIASES[key]]
