"""Readers that turn benchmark files (or the Hugging Face hub) into ``datasets.Dataset`` splits.

Every loaded split has the same columns, whatever its source:

* the task's ``text_columns`` (strings), e.g. ``sentence`` or ``sentence1``/``sentence2``,
  ``premise``/``hypothesis``, ``question``/``sentence``, ``question1``/``question2``;
* ``label``: ``int64`` index into ``task.label_list`` for classification, ``float32`` for
  regression, and -1 for unlabeled (GLUE test) rows;
* ``idx``: ``int64``, the GLUE ``index`` (QQP: ``id``) column where the file has one, else the
  0-based row number among the rows returned, so that test predictions can be written in the GLUE
  submission format (``index<TAB>prediction``).

SNLI splits read from the original files have one more column, ``annotator_labels``: each pair's
annotators' labels as the file writes them (a list of label names, five for almost every dev/test
pair, one for train), for the error analysis by agreement (:mod:`smart_tune.agreement`). Only
evaluation reads it; tokenisation drops it like the text columns. The hub's SNLI has no such column.

``dataset.info.description`` records where a split came from and how many rows were dropped
(``"smart_tune task=snli split=dev rows=9842 dropped=158 source=/path"``); :func:`dropped_rows`
reads the count back. Only SNLI drops rows (those whose ``gold_label`` is ``-``).

Every problem with the input raises :class:`~smart_tune.errors.DataError` (or ``ConfigError`` for a
bad option) with a one-line message naming the file and, where there is one, the 1-based line.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import math
import os
import re
import socket
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
from datasets.table import InMemoryTable

from smart_tune.errors import ConfigError, DataError
from smart_tune.tasks import REGRESSION, SINGLE_LABEL, TaskSpec, get_task

logger = logging.getLogger("smart_tune.data")

# Which environment variable points at the files of each task family.
_ENV_VARS = {"glue": "GLUE_DIR", "snli": "SNLI_DIR", "anli": "ANLI_DIR", "scitail": "SCITAIL_DIR"}

# ANLI's files write labels as e/n/c; the task's label_list uses the full names.
_LABEL_ALIASES = {"e": "entailment", "n": "neutral", "c": "contradiction"}

# Split names that other tools use for ours.
_SPLIT_ALIASES = {
    "validation": "dev",
    "validation_matched": "dev_matched",
    "validation_mismatched": "dev_mismatched",
}

# SNLI's column of each pair's annotator labels (kept for smart_tune.agreement; see the module docstring).
ANNOTATOR_LABELS = "annotator_labels"

# Errors that reading a file can raise and that mean "this file is unusable", not a bug here.
_READ_ERRORS = (OSError, UnicodeDecodeError, EOFError, csv.Error, zlib.error)


@dataclass(frozen=True)
class _GlueLayout:
    """Column names of one GLUE task's TSV files (header names, matched exactly)."""

    folder: str  # the folder name download_glue_data.py writes
    text: tuple[str, ...]  # file columns, in the order of task.text_columns
    label: str
    index: tuple[str, ...] = ("index",)  # first one present is used


_GLUE: dict[str, _GlueLayout] = {
    # CoLA's train/dev have no header and are read by position; its test.tsv has "index, sentence".
    "cola": _GlueLayout("CoLA", ("sentence",), "label"),
    "sst2": _GlueLayout("SST-2", ("sentence",), "label"),
    "mrpc": _GlueLayout("MRPC", ("#1 String", "#2 String"), "Quality"),
    "stsb": _GlueLayout("STS-B", ("sentence1", "sentence2"), "score"),
    "qqp": _GlueLayout("QQP", ("question1", "question2"), "is_duplicate", ("id",)),
    "mnli": _GlueLayout("MNLI", ("sentence1", "sentence2"), "gold_label"),
    "qnli": _GlueLayout("QNLI", ("question", "sentence"), "label"),
    "rte": _GlueLayout("RTE", ("sentence1", "sentence2"), "label"),
    "wnli": _GlueLayout("WNLI", ("sentence1", "sentence2"), "label"),
}

# CoLA train/dev columns: source, label, original annotation, sentence.
_COLA_FIELDS, _COLA_LABEL, _COLA_SENTENCE = 4, 1, 3


def _family(task: TaskSpec) -> str:
    if task.name in _GLUE:
        return "glue"
    if task.name.startswith("anli"):
        return "anli"
    if task.name in ("snli", "scitail"):
        return task.name
    raise ConfigError(f"task '{task.name}' has no files to load; custom data is read with load_custom")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


# --------------------------------------------------------------------------------------------------
# Building the returned dataset


@dataclass
class _Columns:
    """Rows collected by a reader, column by column, before they become a Dataset."""

    texts: list[list[str]]
    labels: list[int | float]
    idx: list[int]
    annotators: list[list[str]] | None = None  # SNLI's annotator_labels, one list per row

    @classmethod
    def empty(cls, n_text: int, annotators: bool = False) -> _Columns:
        return cls([[] for _ in range(n_text)], [], [], [] if annotators else None)

    def add(self, texts: Sequence[str], label: int | float, idx: int | None) -> None:
        for column, text in zip(self.texts, texts):
            column.append(text)
        self.labels.append(label)
        self.idx.append(len(self.labels) - 1 if idx is None else idx)

    def __len__(self) -> int:
        return len(self.labels)


def _features(task: TaskSpec, annotators: bool = False) -> datasets.Features:
    features = {column: datasets.Value("string") for column in task.text_columns}
    features["label"] = datasets.Value("float32" if task.is_regression else "int64")
    features["idx"] = datasets.Value("int64")
    if annotators:
        features[ANNOTATOR_LABELS] = datasets.Sequence(datasets.Value("string"))
    return datasets.Features(features)


def _to_dataset(
    task: TaskSpec, split: str, rows: _Columns, source: str, dropped: int = 0
) -> datasets.Dataset:
    if len(rows) == 0:
        raise DataError(f"{source}: no examples in the {task.name} {split} split")
    data: dict[str, list] = dict(zip(task.text_columns, rows.texts))
    data["label"] = rows.labels
    data["idx"] = rows.idx
    if rows.annotators is not None:
        data[ANNOTATOR_LABELS] = rows.annotators
    description = (
        f"smart_tune task={task.name} split={split} rows={len(rows)} dropped={dropped} source={source}"
    )
    features = _features(task, rows.annotators is not None)
    info = datasets.DatasetInfo(description=description, features=features)
    logger.debug("loaded %s", description)
    # Building the Arrow table directly skips Dataset.from_dict's per-value encoding (the columns are
    # plain strings and numbers already), which is most of the load time of a large split.
    table = InMemoryTable(pa.Table.from_pydict(data, schema=features.arrow_schema))
    return datasets.Dataset(table, info=info, split=datasets.NamedSplit(split))


def dropped_rows(dataset: datasets.Dataset) -> int:
    """Return how many rows the loader dropped from this split (SNLI rows without a gold label).

    Read from ``dataset.info.description``; 0 for datasets this module did not load.
    """
    match = re.search(r"\bdropped=(\d+)\b", dataset.info.description or "")
    return int(match.group(1)) if match else 0


def _label_index(task: TaskSpec) -> dict[str, int]:
    index = {label: i for i, label in enumerate(task.label_list)}
    for short, full in _LABEL_ALIASES.items():
        if full in index:
            index.setdefault(short, index[full])
    return index


def _parse_label(task: TaskSpec, raw: Any, where: str, index: dict[str, int]) -> int | float:
    """Return the label value of ``raw``: its class index, or its float value for regression."""
    text = str(raw).strip()
    if task.is_regression:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise DataError(f"{where}: label '{text}' is not a number")
        return value
    if text not in index:
        raise DataError(
            f"{where}: unknown label '{text}' for task {task.name} (expected one of: {', '.join(task.label_list)})"
        )
    return index[text]


# --------------------------------------------------------------------------------------------------
# Low-level file readers


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    # utf-8-sig: MRPC's train/dev files start with a byte-order mark.
    return open(path, encoding="utf-8-sig", newline="")


def _tsv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (1-based line number, fields) for each non-blank line of a GLUE-style TSV file.

    QUOTE_NONE because GLUE fields may begin with a double quote (QNLI, MRPC) that a CSV reader
    would take as an opening quote, swallowing tabs and newlines up to the next quote.
    """
    try:
        with _open_text(path) as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            for fields in reader:
                if fields:  # a blank line, e.g. a trailing one
                    yield reader.line_num, fields
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from exc


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (1-based line number, object) for each non-blank line of a JSON-lines file (maybe .gz)."""
    try:
        with _open_text(path) as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}, line {number}: invalid JSON ({exc.msg})") from exc
                if not isinstance(obj, dict):
                    raise DataError(f"{path}, line {number}: expected a JSON object")
                yield number, obj
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: BaseException) -> DataError:
    """The error for a file that cannot be read at all (see ``_READ_ERRORS``)."""
    return DataError(f"{path}: cannot read the file ({_one_line(exc)})")


def _no_column(where: Path | str, name: str, columns: Sequence[str]) -> DataError:
    """The error for a file or hub split without a column it needs."""
    return DataError(f"{where}: no column '{name}' (columns: {', '.join(columns)})")


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_fields(where: str, fields: list[str], expected: int, kind: str = "tab-separated") -> None:
    """``where``: the file and line(s) of the row, as messages name them ("f.tsv, line 3")."""
    if len(fields) != expected:
        raise DataError(f"{where}: expected {expected} {kind} fields, found {len(fields)}")


def _column(path: Path, header: Sequence[str], name: str) -> int:
    try:
        return list(header).index(name)
    except ValueError:
        raise _no_column(path, name, header) from None


def _parse_index(path: Path, line: int, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise DataError(f"{path}, line {line}: index '{raw}' is not an integer") from None


# --------------------------------------------------------------------------------------------------
# Locating files


def _find_file(candidates: Sequence[Path], what: str) -> Path:
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(f"{what} not found: looked for {', '.join(str(p) for p in candidates)}")


def _subdirs_named(root: Path, name: str) -> list[Path]:
    """Return root's subfolders named ``name``, ignoring case, '-', '_' and '.' (SST-2, sst2, sst_2)."""
    if not root.is_dir():
        return []
    wanted = _norm(name)
    return [child for child in sorted(root.iterdir()) if child.is_dir() and _norm(child.name) == wanted]


def _glue_file(task: TaskSpec, split: str, root: Path) -> Path:
    layout = _GLUE[task.name]
    filename = f"{split}.tsv"  # train.tsv, dev.tsv, test.tsv, dev_matched.tsv, test_mismatched.tsv
    # <dir>/<Task>, then <dir>/glue/<Task>, then <dir> itself (data_dir is the task folder).
    dirs = _subdirs_named(root, layout.folder) or [root / layout.folder]
    dirs += _subdirs_named(root / "glue", layout.folder) or [root / "glue" / layout.folder]
    dirs.append(root)
    return _find_file([d / filename for d in dirs], f"{layout.folder} {split} file")


# --------------------------------------------------------------------------------------------------
# Task-family readers


def _read_glue(task: TaskSpec, split: str, path: Path) -> _Columns:
    layout = _GLUE[task.name]
    labeled = not split.startswith("test")
    index = _label_index(task)
    rows = _Columns.empty(len(task.text_columns))
    lines = _tsv_rows(path)

    if task.name == "cola" and labeled:
        # No header: every line, the first included, is an example.
        for line, fields in lines:
            _check_fields(f"{path}, line {line}", fields, _COLA_FIELDS)
            label = _parse_label(task, fields[_COLA_LABEL], f"{path}, line {line}", index)
            rows.add([fields[_COLA_SENTENCE]], label, None)
        return rows

    header_line = next(lines, None)
    if header_line is None:
        raise DataError(f"{path}: no examples in the {task.name} {split} split (the file is empty)")
    _, header = header_line
    header = [name.strip() for name in header]
    text_at = [_column(path, header, name) for name in layout.text]
    label_at = _column(path, header, layout.label) if labeled or layout.label in header else None
    index_at = next((header.index(name) for name in layout.index if name in header), None)
    for line, fields in lines:
        _check_fields(f"{path}, line {line}", fields, len(header))
        if label_at is None or (not labeled and not fields[label_at].strip()):
            label: int | float = math.nan if task.is_regression else -1  # STS-B's test: no target
        else:
            label = _parse_label(task, fields[label_at], f"{path}, line {line}", index)
        idx = _parse_index(path, line, fields[index_at]) if index_at is not None else None
        rows.add([fields[i] for i in text_at], label, idx)
    return rows


def _read_jsonl(
    task: TaskSpec, path: Path, keys: tuple[str, str], label_key: str, rows: _Columns, skip_label: str | None
) -> int:
    """Append the examples of one JSON-lines file to ``rows``; return how many were skipped."""
    index = _label_index(task)
    skipped = 0
    for line, obj in _jsonl_rows(path):
        for key in (*keys, label_key):
            if obj.get(key) is None:
                raise DataError(f"{path}, line {line}: missing key '{key}'")
        if skip_label is not None and str(obj[label_key]).strip() == skip_label:
            skipped += 1
            continue
        label = _parse_label(task, obj[label_key], f"{path}, line {line}", index)
        rows.add([str(obj[key]) for key in keys], label, None)
        if rows.annotators is not None:
            rows.annotators.append(_annotator_labels(obj.get(ANNOTATOR_LABELS), f"{path}, line {line}"))
    return skipped


def _annotator_labels(raw: Any, where: str) -> list[str]:
    """One pair's annotator labels as strings ([] when the file has none for it)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise DataError(f"{where}: '{ANNOTATOR_LABELS}' is not a list")
    return [str(label).strip() for label in raw]


def _load_snli(task: TaskSpec, split: str, root: Path) -> datasets.Dataset:
    dirs = [root, root / "snli", root / "snli_1.0"]
    names = [f"snli_1.0_{split}.jsonl", f"snli_1.0_{split}.jsonl.gz"]
    path = _find_file([d / n for d in dirs for n in names], f"SNLI {split} file")
    rows = _Columns.empty(2, annotators=True)
    # gold_label "-": the annotators reached no majority; standard practice drops these rows.
    dropped = _read_jsonl(task, path, ("sentence1", "sentence2"), "gold_label", rows, skip_label="-")
    if dropped:
        logger.info("dropped %d SNLI %s rows without a gold label ('-') from %s", dropped, split, path)
    return _to_dataset(task, split, rows, str(path), dropped)


def _anli_rounds(task: TaskSpec) -> tuple[str, ...]:
    return ("1", "2", "3") if task.name == "anli" else (task.name[-1],)


def _load_anli(task: TaskSpec, split: str, root: Path) -> datasets.Dataset:
    rows = _Columns.empty(2)
    paths = []
    for r in _anli_rounds(task):
        dirs = [root, root / "anli", root / "anli_v1.0"]
        path = _find_file([d / f"R{r}" / f"{split}.jsonl" for d in dirs], f"ANLI R{r} {split} file")
        _read_jsonl(task, path, ("context", "hypothesis"), "label", rows, skip_label=None)
        paths.append(str(path))
    return _to_dataset(task, split, rows, ",".join(paths))


def _load_scitail(task: TaskSpec, split: str, root: Path) -> datasets.Dataset:
    filename = f"scitail_1.0_{split}.tsv"
    dirs = [
        root / "SciTailV1.1" / "tsv_format",
        root / "scitail" / "SciTailV1.1" / "tsv_format",
        root / "tsv_format",
        root,
    ]
    path = _find_file([d / filename for d in dirs], f"SciTail {split} file")
    index = _label_index(task)
    rows = _Columns.empty(2)
    for line, fields in _tsv_rows(path):  # no header: premise, hypothesis, label
        _check_fields(f"{path}, line {line}", fields, 3)
        rows.add(fields[:2], _parse_label(task, fields[2], f"{path}, line {line}", index), None)
    return _to_dataset(task, split, rows, str(path))


def _load_local(task: TaskSpec, split: str, root: Path) -> datasets.Dataset:
    if not root.is_dir():
        raise DataError(
            f"data directory {root} does not exist" if not root.exists() else f"{root} is not a directory"
        )
    family = _family(task)
    if family == "glue":
        path = _glue_file(task, split, root)
        return _to_dataset(task, split, _read_glue(task, split, path), str(path))
    if family == "snli":
        return _load_snli(task, split, root)
    if family == "anli":
        return _load_anli(task, split, root)
    return _load_scitail(task, split, root)


# --------------------------------------------------------------------------------------------------
# The Hugging Face hub


def _column_values(ds: datasets.Dataset, name: str) -> np.ndarray:
    """Return one column as a numpy array (``ds[name]`` reads element by element, far slower)."""
    return np.asarray(ds.with_format("numpy", columns=[name])[:][name])


def _hub_labels(task: TaskSpec, ds: datasets.Dataset, where: str) -> np.ndarray:
    """Return the hub split's labels as indices into task.label_list (-1 kept for unlabeled rows)."""
    feature = ds.features["label"]
    values = _column_values(ds, "label")
    if task.is_regression:
        return np.asarray(values, dtype=np.float32)
    index = _label_index(task)
    if isinstance(feature, datasets.ClassLabel):
        # Map by name, in case a hub dataset orders its classes differently from the task.
        by_name = dict(index)
        by_name.update({name: i for i, name in enumerate(task.label_names)})
        missing = [name for name in feature.names if name not in by_name]
        if missing:
            raise DataError(f"{where}: unknown label '{missing[0]}' for task {task.name}")
        remap = np.array([by_name[name] for name in feature.names] + [-1], dtype=np.int64)
        values = np.asarray(values, dtype=np.int64)
        return remap[np.where(values < 0, len(feature.names), values)]
    if np.asarray(values).dtype.kind in "iu":
        values = np.asarray(values, dtype=np.int64)
        if values.size and (values.max() >= task.num_labels or values.min() < -1):
            raise DataError(f"{where}: label {values.max()} is out of range for task {task.name}")
        return values
    return np.array([_parse_label(task, v, where, index) for v in values], dtype=np.int64)


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the Hugging Face hub cannot be reached ("Name or service not known"), or None when it can or
    when a proxy decides. One short connection attempt, so that a machine without network fails in
    seconds instead of after the hub client's retries (about 25 s per file)."""
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return None  # offline mode: datasets fails at once, or reads its cache
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlsplit(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError as exc:
        return f"{url.hostname}: {exc.strerror or exc or type(exc).__name__}"
    return None


def _load_hub(task: TaskSpec, split: str) -> datasets.Dataset:
    hub = task.hub
    env = _ENV_VARS[_family(task)]
    if hub is None:
        raise DataError(f"task {task.name} has no hub source; pass --data-dir or set {env}")
    unreachable = _hub_unreachable()
    if unreachable:
        raise DataError(
            f"cannot load {task.name} {split} from the Hugging Face hub: cannot reach it ({unreachable}); "
            f"pass --data-dir or set {env} (or HF_HUB_OFFLINE=1 to use a copy already cached)"
        )
    rows = _Columns.empty(len(task.text_columns))
    dropped = 0
    for hub_split in hub.hub_splits(split):
        where = f"{hub.path}" + (f" ({hub.config})" if hub.config else "") + f" split {hub_split}"
        try:
            if hub.config:
                ds = datasets.load_dataset(hub.path, hub.config, split=hub_split)
            else:
                ds = datasets.load_dataset(hub.path, split=hub_split)
        except Exception as exc:  # offline, gated, renamed...: all mean "use local files instead"
            raise DataError(
                f"cannot load {task.name} {split} from the Hugging Face hub ({where}): "
                f"{type(exc).__name__}: {_one_line(exc)}; pass --data-dir or set {env}"
            ) from exc
        for column in (*task.text_columns, "label"):
            if column not in ds.column_names:
                raise _no_column(where, column, ds.column_names)
        labels = _hub_labels(task, ds, where)
        keep = np.ones(len(labels), dtype=bool)
        if task.name == "snli":  # -1 there means "no gold label", not "unlabeled test row"
            keep = labels >= 0
            dropped += int((~keep).sum())
        table = ds.with_format("arrow")[:]
        texts = [np.asarray(table.column(c).to_pylist(), dtype=object)[keep] for c in task.text_columns]
        offset = len(rows)
        ids = (
            _column_values(ds, "idx").astype(np.int64)[keep]
            if "idx" in ds.column_names
            else np.arange(int(keep.sum()), dtype=np.int64) + offset  # row number over all parts
        )
        for column, part in zip(rows.texts, texts):
            column.extend(part.tolist())
        rows.labels.extend(labels[keep].tolist())
        rows.idx.extend(ids.tolist())
    if dropped:
        logger.info("dropped %d SNLI %s rows without a gold label (-1) from the hub", dropped, split)
    return _to_dataset(task, split, rows, f"hf://{hub.path}", dropped)


# --------------------------------------------------------------------------------------------------
# Public API


def _check_split(task: TaskSpec, split: str) -> str:
    split = _SPLIT_ALIASES.get(split, split)
    if split not in task.splits:
        raise ConfigError(
            f"task {task.name} has no split '{split}'; its splits are: {', '.join(task.splits)}"
        )
    return split


def load_split(task: TaskSpec | str, split: str, data_dir: str | Path | None = None) -> datasets.Dataset:
    """Load one split of a registered task and return it as a ``datasets.Dataset``.

    Args:
        task: a :class:`TaskSpec` or a task name (any spelling :func:`get_task` accepts).
        split: "train", "dev" or "test"; for MNLI "train", "dev_matched", "dev_mismatched",
            "test_matched", "test_mismatched" ("validation*" is accepted for "dev*").
        data_dir: folder holding the original files. When None, the environment decides:
            ``$GLUE_DIR`` for the GLUE tasks, ``$SNLI_DIR`` for SNLI, ``$ANLI_DIR`` for ANLI and
            ``$SCITAIL_DIR`` for SciTail; when that is unset too, the Hugging Face hub.

    Layouts accepted under the folder:

    * GLUE: ``<dir>/<Task>/<split>.tsv`` (folder names as download_glue_data.py writes them,
      CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI; case, '-' and '_' ignored),
      ``<dir>/glue/<Task>/<split>.tsv``, or ``<dir>/<split>.tsv`` (the task folder itself).
      MNLI's dev/test files are ``dev_matched.tsv``, ``test_mismatched.tsv`` etc.
    * SNLI: ``snli_1.0_<split>.jsonl`` or ``.jsonl.gz`` in ``<dir>``, ``<dir>/snli`` or
      ``<dir>/snli_1.0``. Rows whose gold_label is "-" are dropped (logged on logger
      "smart_tune.data"; see :func:`dropped_rows`).
    * ANLI: ``R1/<split>.jsonl`` etc. in ``<dir>``, ``<dir>/anli`` or ``<dir>/anli_v1.0``;
      task "anli" concatenates R1, R2, R3 in that order.
    * SciTail: ``SciTailV1.1/tsv_format/scitail_1.0_<split>.tsv`` (no header: premise,
      hypothesis, label) under ``<dir>`` or ``<dir>/scitail``, or directly in ``<dir>``.

    So ``data_dir`` may be the folder that holds ``glue/``, ``snli/`` and ``anli/`` for every task.

    Returns:
        A Dataset with the task's ``text_columns``, ``label`` and ``idx`` (see the module docstring).

    Raises:
        DataError: a missing folder or file, a malformed row, an unknown label, an empty split, or
            a hub download that failed (with advice to pass --data-dir or set the variable).
        ConfigError: an unknown task or split.
    """
    if isinstance(task, str):
        task = get_task(task)
    split = _check_split(task, split)
    family = _family(task)
    if data_dir is None:
        env_dir = os.environ.get(_ENV_VARS[family])
        data_dir = env_dir if env_dir else None
    if data_dir is not None:
        return _load_local(task, split, Path(data_dir).expanduser())
    return _load_hub(task, split)


# A user file: (column names, [(position for messages, row dict)]).
_Table = tuple[list[str], list[tuple[str, dict[str, Any]]]]


def _read_table(path: Path) -> _Table:
    """Return (column names, [(position for messages, row dict)]) of a CSV, TSV or JSON(L) file."""
    if path.is_dir():
        raise DataError(f"{path} is a directory; give a data file (.csv, .tsv, .jsonl or .json)")
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        rows = []
        try:
            with open(path, encoding="utf-8-sig", newline="") as f, _long_fields():
                # .tsv follows GLUE (no quoting: a leading '"' is text); .csv is ordinary quoted CSV.
                if suffix == ".tsv":
                    reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
                else:
                    reader = csv.reader(f)
                header = next(reader, None)
                if header is None:
                    raise DataError(f"{path}: the file is empty")
                header = [name.strip() for name in header]
                twice = sorted({name for name in header if header.count(name) > 1})
                if twice:  # a row dict would keep the last one silently
                    raise DataError(
                        f"{path}, line 1: column name(s) {', '.join(repr(n) for n in twice)} appear more "
                        "than once in the header; rename them"
                    )
                end = reader.line_num
                for fields in reader:
                    # A quoted field may hold newlines: name the line the record starts on (and the
                    # last one), not only where the reader stopped, which may be far below.
                    start, end = end + 1, reader.line_num
                    if not fields:
                        continue
                    where = f"{path}, line {start}" if start == end else f"{path}, lines {start}-{end}"
                    kind = "tab-separated" if suffix == ".tsv" else "comma-separated"
                    _check_fields(where, fields, len(header), kind)
                    rows.append((where, dict(zip(header, fields))))
        except _READ_ERRORS as exc:
            raise _unreadable(path, exc) from exc
        return header, rows
    if suffix in (".jsonl", ".json"):
        try:
            text_start = path.read_text(encoding="utf-8-sig").lstrip()[:1]
        except _READ_ERRORS as exc:
            raise _unreadable(path, exc) from exc
        if text_start == "[":  # a .json file holding one array of objects
            try:
                items = json.loads(path.read_text(encoding="utf-8-sig"))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}, line {exc.lineno}: invalid JSON ({exc.msg})") from exc
            if not all(isinstance(item, dict) for item in items):
                raise DataError(f"{path}: expected an array of JSON objects")
            rows = [(f"{path}, item {i + 1}", item) for i, item in enumerate(items)]
        else:
            rows = [(f"{path}, line {line}", obj) for line, obj in _jsonl_rows(path)]
        # JSON's true/false keep their JSON spelling (str() would give Python's True/False, which a CSV
        # file of the same labels does not match).
        rows = [(where, {k: _json_bool(v) for k, v in obj.items()}) for where, obj in rows]
        return (list(rows[0][1]) if rows else []), rows
    raise ConfigError(f"{path}: unsupported file type '{path.suffix}'; use .csv, .tsv, .jsonl or .json")


def _json_bool(value: Any) -> Any:
    return ("true" if value else "false") if isinstance(value, bool) else value


# The csv module's field limit while a user's file is read: its default, 131072 characters, refuses a
# long document (and says neither which line nor why); an int that fits a C long everywhere.
_FIELD_LIMIT = 2**31 - 1


@contextmanager
def _long_fields() -> Iterator[None]:
    """Raise the csv module's field limit (a process-wide setting) while a user's file is read."""
    previous = csv.field_size_limit(_FIELD_LIMIT)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _sorted_labels(values: set[str]) -> tuple[str, ...]:
    # Integer labels sort by value, so "2" < "10" and labels 0..K-1 keep their own index.
    if all(re.fullmatch(r"[+-]?\d+", v) for v in values):
        return tuple(sorted(values, key=int))
    return tuple(sorted(values))


def load_custom(
    train_file: str | Path | None = None,
    validation_file: str | Path | None = None,
    test_file: str | Path | None = None,
    text_columns: Sequence[str] | str = ("sentence",),
    label_column: str = "label",
    regression: bool = False,
    label_list: Sequence[str] | None = None,
) -> tuple[TaskSpec, dict[str, datasets.Dataset]]:
    """Load user-supplied data files and describe them as a task.

    Files are read by extension: ``.csv`` (quoted CSV with a header), ``.tsv`` (tab-separated with a
    header, no quoting, like GLUE), ``.jsonl`` (one object per line) or ``.json`` (JSON lines, or
    one array of objects). Text and label values are read as strings (JSON numbers and booleans
    become strings; a JSON list or object is an error). A field may be of any length.

    Classification labels are the sorted unique values of the label column of the training file
    (numerically sorted when they are all integers); with no training file, of the validation file
    (a test file alone is not enough for classification). One number spelled two ways ("1" and
    "1.0") is an error, as is a row without a label (but in the test file).
    ``label_list`` gives the labels instead (a trained model's, in its order, when it scores a file):
    then any file alone will do. A validation or test label not among them is an error. With
    ``regression=True`` labels must parse as floats. The test file may lack the label column, or some
    labels: those rows' labels are then -1 (NaN for regression).

    Returns:
        ``(task, splits)``: a :class:`TaskSpec` named "custom" whose ``text_columns`` are the given
        column names (metrics accuracy and f1, or accuracy and macro_f1 with more than two classes,
        or pearson and spearman for regression), and a dict with the keys "train", "dev", "test" for
        the files given. Each Dataset has the text columns, ``label`` and ``idx`` (the row number).
    """
    text_columns = _custom_text_columns(text_columns, label_column)
    files = {
        split: Path(path).expanduser()
        for split, path in (("train", train_file), ("dev", validation_file), ("test", test_file))
        if path is not None
    }
    if not files:
        raise ConfigError("no data files given: pass a train, validation or test file")
    tables = {split: _read_table(path) for split, path in files.items()}
    _check_custom_tables(tables, files, text_columns, label_column)
    if regression:
        label_list = ()
    elif label_list is not None:
        label_list = tuple(str(label) for label in label_list)
    else:
        label_list = _custom_labels(tables, files, label_column)
    task = _custom_task(text_columns, label_list, regression, files)
    index = {label: i for i, label in enumerate(label_list)}
    splits = {}
    for split, (_, rows) in tables.items():
        columns = _custom_columns(task, split, rows, text_columns, label_column, index)
        splits[split] = _to_dataset(task, split, columns, str(files[split]))
    return task, splits


def _custom_columns(
    task: TaskSpec,
    split: str,
    rows: list[tuple[str, dict[str, Any]]],
    text_columns: tuple[str, ...],
    label_column: str,
    index: dict[str, int],
) -> _Columns:
    """One file's rows (``(where, row)``) as columns: its texts and each row's label."""
    columns = _Columns.empty(len(text_columns))
    for where, row in rows:
        texts = []
        for name in text_columns:
            if row.get(name) is None:
                raise DataError(f"{where}: missing value for column '{name}'")
            texts.append(str(row[name]))
        columns.add(
            texts, _custom_label(task, split, row.get(label_column), where, index, label_column), None
        )
    return columns


def _custom_text_columns(text_columns: Sequence[str] | str, label_column: str) -> tuple[str, ...]:
    """The text columns as a tuple: one or two, clashing neither with the label column nor with the
    ``label`` and ``idx`` columns every loaded dataset has."""
    if isinstance(text_columns, str):
        text_columns = (text_columns,)
    text_columns = tuple(text_columns)
    if len(text_columns) not in (1, 2):
        raise ConfigError(f"give one or two text columns, not {len(text_columns)}")
    for name in text_columns:
        if name in ("label", "idx") and name != label_column:
            raise ConfigError(f"text column '{name}' clashes with the '{name}' column of a loaded dataset")
    if label_column in text_columns:
        raise ConfigError(f"column '{label_column}' cannot be both a text column and the label column")
    return text_columns


def _check_custom_tables(
    tables: dict[str, _Table], files: dict[str, Path], text_columns: tuple[str, ...], label_column: str
) -> None:
    """Every user file has examples and the text columns (and, but for the test file, the label), and
    no JSON list or object where a text or a label goes (``str`` would train on "['a', 'b']", or make a
    class of it)."""
    for split, (header, rows) in tables.items():
        if not rows:
            raise DataError(f"{files[split]}: no examples in the {split} file")
        needed = text_columns + ((label_column,) if split != "test" else ())
        for name in needed:
            if name not in header:
                raise _no_column(files[split], name, header)
        for where, row in rows:
            for name in (*text_columns, label_column):
                if isinstance(row.get(name), (list, dict)):
                    kind = "a list" if isinstance(row[name], list) else "an object"
                    raise DataError(f"{where}: column '{name}' holds {kind}, not a text, number or boolean")


def _custom_labels(tables: dict[str, _Table], files: dict[str, Path], label_column: str) -> tuple[str, ...]:
    """A classifier's labels: the sorted distinct values of the training file's label column (of the
    validation file's without one); at least two."""
    if "train" not in tables and "dev" not in tables:
        raise ConfigError("a classification task needs a train or validation file to read its labels from")
    source = "train" if "train" in tables else "dev"
    _, rows = tables[source]
    values: set[str] = set()
    spelled: dict[float, str] = {}  # each number's first spelling
    for where, row in rows:
        value = "" if row.get(label_column) is None else str(row[label_column]).strip()
        if not value:
            continue  # a row without a label is refused with its line when it is read
        number = _as_number(value)
        if number is not None and spelled.setdefault(number, value) != value:
            # "1" and "1.0" (a JSON float beside an int, pandas' floats) would be two classes.
            both = ", ".join(repr(v) for v in sorted((spelled[number], value)))
            raise DataError(
                f"{where}: column '{label_column}' writes one number two ways ({both}); write each label one way"
            )
        values.add(value)
    label_list = _sorted_labels(values)
    if len(label_list) < 2:
        raise DataError(
            f"{files[source]}: a classifier needs at least two labels in column '{label_column}', "
            f"found {len(label_list)}"
        )
    return label_list


def _as_number(text: str) -> float | None:
    """The finite number a label spells ("1", "01", "1.0", "1e0"), else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _custom_task(
    text_columns: tuple[str, ...], label_list: tuple[str, ...], regression: bool, files: dict[str, Path]
) -> TaskSpec:
    """The task "custom": its metrics follow the problem (pearson and spearman for regression; accuracy
    and f1, or macro_f1 with more than two classes), its splits the files given."""
    if regression:
        metrics = ("pearson", "spearman")
    else:
        metrics = ("accuracy", "f1") if len(label_list) <= 2 else ("accuracy", "macro_f1")
    return TaskSpec(
        name="custom",
        text_columns=text_columns,
        label_list=label_list,
        problem_type=REGRESSION if regression else SINGLE_LABEL,
        metrics=metrics,
        main_metric="pearson" if regression else "accuracy",
        eval_splits=("dev",) if "dev" in files else (),
        test_splits=("test",) if "test" in files else (),
        display_name="custom",
    )


def _custom_label(
    task: TaskSpec, split: str, raw: Any, where: str, index: dict[str, int], label_column: str
) -> int | float:
    """One row's label: for a test row without one, -1 (NaN for regression, whose labels may be
    negative: "no label" must not be a value); a float for regression, else the index of a training
    label (any other value is an error)."""
    if split == "test" and (raw is None or str(raw).strip() == ""):
        return math.nan if task.is_regression else -1
    if raw is None or str(raw).strip() == "":
        raise DataError(f"{where}: missing value for column '{label_column}'")
    if task.is_regression:
        return _parse_label(task, raw, where, index)
    if str(raw).strip() not in index:
        raise DataError(
            f"{where}: label '{str(raw).strip()}' is not one of the training labels ({', '.join(task.label_list)})"
        )
    return index[str(raw).strip()]


def class_balanced_subset(dataset: datasets.Dataset, fraction: float, seed: int) -> datasets.Dataset:
    """Return a fixed subset holding ``fraction`` of every class (for the low-resource study).

    Each class contributes ``round(fraction * its count)`` rows (at least one), chosen at random with
    ``numpy.random.default_rng(seed)``; rows keep their original order. The draw depends only on the
    labels and the seed, so the same seed gives the same subset, and a smaller fraction's subset is
    contained in a larger one's. A regression dataset (float labels) is sampled as one group.
    """
    if not 0.0 < float(fraction) <= 1.0:
        raise ConfigError(f"the subset fraction must be in (0, 1], got {fraction}")
    groups = _label_groups(dataset)
    rng = np.random.default_rng(seed)
    chosen = []
    for members in groups:
        # The full permutation is drawn whatever the fraction, which makes subsets nested.
        order = rng.permutation(members)
        chosen.append(order[: max(1, int(round(fraction * len(members))))])
    indices = np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)
    return dataset.select(indices.tolist())


def stratified_sample(dataset: datasets.Dataset, n: int, seed: int) -> datasets.Dataset:
    """Return ``n`` rows drawn at random, each class in its share of the split (``--sample-seed``).

    Class c of ``n_c`` rows (of N) gets ``n * n_c / N`` rows rounded by largest remainder (ties to the
    smaller label), so the counts add up to ``n`` exactly; the rows are the first of a permutation
    drawn with ``numpy.random.default_rng(seed)``. The draw depends only on the labels, ``n`` and the
    seed, so every run with one seed trains on the same rows. A regression dataset (float labels) is
    one group; ``n`` at or above the split's size keeps every row. Rows keep their original order.
    """
    if n >= len(dataset):
        return dataset
    groups = _label_groups(dataset)
    shares = np.array([n * len(g) / len(dataset) for g in groups])
    counts = np.floor(shares).astype(int)
    # Largest remainder; a stable sort on the negated remainders breaks ties towards the smaller label.
    for i in np.argsort(-(shares - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(g)[:k] for g, k in zip(groups, counts)]
    return dataset.select(np.sort(np.concatenate(chosen)).tolist())


def _label_groups(dataset: datasets.Dataset) -> list[np.ndarray]:
    """Row indices per class (one group for a regression dataset's float labels): what stratified draws
    sample from."""
    labels = _column_values(dataset, "label")
    if labels.dtype.kind == "f":
        return [np.arange(len(labels))]
    return [np.flatnonzero(labels == c) for c in np.unique(labels)]


def holdout_split(
    dataset: datasets.Dataset, fraction: float, seed: int
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(train, held out): a seeded, class-stratified ``fraction`` of ``dataset`` set aside for selection.

    Selection (the best epoch, a grid's setting) on the held-out part keeps the dev split for
    reporting only. Each class gives ``round(fraction * its count)`` rows (at least one, and at least
    one is left to train on); a regression dataset (float labels) is drawn as one group. The draw
    depends only on the labels and the seed, so every method run with one seed holds out the same
    rows. Both parts keep the original order.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise ConfigError(f"--validation-from-train must lie in (0, 1); got {fraction}")
    groups = _label_groups(dataset)
    # Its own stream, apart from class_balanced_subset's draw with the same seed.
    rng = np.random.default_rng((int(seed), 0x401D))
    held = []
    for members in groups:
        if len(members) < 2:
            continue  # a class with one row trains on it
        count = min(len(members) - 1, max(1, int(round(fraction * len(members)))))
        held.append(rng.permutation(members)[:count])
    held_out = np.sort(np.concatenate(held)) if held else np.array([], dtype=np.int64)
    if len(held_out) == 0:
        raise DataError(
            f"--validation-from-train {fraction}: {len(dataset)} training rows are too few to hold any out"
        )
    keep = np.setdiff1d(np.arange(len(dataset)), held_out)
    return dataset.select(keep.tolist()), dataset.select(held_out.tolist())


def is_labelled(ds, task) -> bool:
    """Whether every row of ``ds`` has a label: -1 marks a missing class, NaN a missing regression
    target (STS-B's test split, a test file of your own), which may be negative."""
    labels = np.asarray(ds[:]["label"])  # ds[:] reads the column at once
    if task.is_regression:
        return not np.isnan(labels).any()
    return bool(len(labels)) and labels.min() >= 0


def check_split(ds, task, split: str, labelled: bool = True) -> None:
    """A split to train on, score (``labelled``) or predict: not empty, and, unless only predicted,
    every row labelled."""
    if len(ds) == 0:
        raise DataError(f"split '{split}' of {task.name} is empty")
    if labelled and not is_labelled(ds, task):
        raise DataError(
            f"split '{split}' of {task.name} has unlabeled rows (GLUE withholds its test labels): it can be "
            "neither trained on nor scored"
        )
