"""A finished run's ``results.json``: its typed record, its reader, and the atomic writers.

``train`` writes one ``results.json`` per run; ``report``, ``compare`` and the benchmark scripts read
them back. :class:`RunResults` names every field once, with what it means; :func:`read_results` reads
a file into it, older files included (a field added since defaults to what the readers assumed before
it existed). Importing this module costs no torch or transformers: the report and the sweep use it.
"""

from __future__ import annotations

import json
import os
import types
import typing
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

RESULTS = "results.json"
# ``selected_on`` of a run whose kept epoch was chosen on a part held out of train.
TRAIN_HOLDOUT = "train-holdout"


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON so that a crash mid-write leaves the previous file intact (temp file, then rename)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str))


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write text so that a crash mid-write leaves the previous file intact (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


@contextmanager
def atomic_path(path: str | Path):
    """A temp path beside ``path`` to write to; renamed onto ``path`` when the block ends without error,
    removed otherwise, so a reader sees the old file or the new one, never half of one. The temp name is
    one per process (two `compare` jobs on one folder, benchmarks/lanes.py, may rebuild its report at
    once) and keeps the suffix, which some writers (matplotlib's savefig) read the format from."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # no temp file left beside the intact original


@dataclass(kw_only=True)
class RunResults:
    """One run's ``results.json``, field for field, in the file's order.

    ``task``, ``method``, ``seed`` and ``metrics`` are in every results file ever written; the other
    fields default to what a reader assumed of a file written before the field existed (None: unknown).
    """

    task: str
    """The task's name (``rte``, ``snli``, ...), or ``custom`` for a run on the user's own files."""
    method: str
    """The method's name in reports: the ``--label`` (a sweep's variant name), else the method."""
    model: str | None = None
    """The model trained: its path or hub name, or the default MiniLM-L6's description."""
    seed: int
    """The run's random seed."""
    metrics: dict[str, float]
    """The kept model's scores on the evaluation split (and ``*_holdout`` on the held-out part of
    train, when the run selected on one); empty without a labelled evaluation split."""
    main_metric: str | None = None
    """The task's main metric: the key of ``metrics`` that reports compare."""
    num_examples: int = 0
    """Examples in the scored evaluation split (0 without one)."""
    num_examples_by_split: dict[str, int] | None = None
    """Examples per evaluation split scored, by split name."""
    num_train_examples: int | None = None
    """Examples trained on (after any fraction, sampling or hold-out)."""
    train_runtime_s: float | None = None
    """Seconds this process trained: after ``resumed_at_step`` when the run resumed."""
    resumed_at_step: int | None = None
    """The step a resumed run continued from (0: not resumed; None: not recorded, files from before)."""
    eval_runtime_s: float | None = None
    """Seconds the final evaluation took."""
    global_steps: int | None = None
    """Optimizer steps at the end of training, resumed steps included."""
    train_loss: float | None = None
    """The Trainer's mean training loss over the run."""
    baseline: dict[str, Any] | None = None
    """The majority-label baseline on the evaluation split, ``{"label", "metrics"}``; None for
    regression or without an evaluation split."""
    best_checkpoint: str | None = None
    """The kept model's checkpoint folder, when checkpoints were kept."""
    best_step: int | None = None
    """The step of the kept model's evaluation."""
    best_epoch: float | None = None
    """The epoch of the kept model's evaluation."""
    selected_on: str = "dev"
    """What chose the kept epoch: ``train-holdout`` (:data:`TRAIN_HOLDOUT`), ``dev`` (which then also scores it) or ``none``
    (nothing: no evaluation split, or ``load_best_model_at_end`` off, which keeps the last epoch).
    Files from before the field selected on dev."""
    holdout_examples: int = 0
    """Examples held out of train for selection (``--validation-from-train``; 0 without)."""
    dev_split: str | None = None
    """The name of the scored evaluation split."""
    smart_nonfinite: int | None = None
    """SMART steps whose regulariser came out NaN or infinite, over all processes."""
    smart_skipped_steps: int = 0
    """Optimizer steps skipped for a non-finite loss."""
    arguments: dict[str, Any] | None = None
    """The options trained with: ``{"run": {...}, "training": {...}}``."""
    environment: dict[str, Any] | None = None
    """Versions, processor and accelerator the run trained on (run times compare only on the same), and
    ``source``: the git commit of smart_tune's code and whether it had uncommitted changes
    (``{"commit", "dirty"}``; null outside a git checkout, or before the field), with
    ``started_at_commit`` when the run was resumed under another commit than it started at."""
    log_history: list[dict[str, Any]] = field(default_factory=list)
    """The Trainer's log: training losses, evaluations, SMART's terms."""
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    """Keys of the file that no field names (a newer writer's), kept so that a file round-trips."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResults:
        """The record of a results file's JSON object; :class:`KeyError` when it lacks a field every
        results file has (one without a default)."""
        names = [f.name for f in fields(cls) if f.name != "extra"]
        known = {k: data[k] for k in names if k in data}
        missing = [
            f.name
            for f in fields(cls)
            if f.default is MISSING and f.default_factory is MISSING and f.name not in known
        ]
        if missing:
            raise KeyError(missing[0])
        hints = typing.get_type_hints(cls)
        for name, value in known.items():
            if not _fits(value, hints[name]):
                raise TypeError(f"{name} is {value!r}, not {_shown(hints[name])}")
        # The options the report reads a run's schedule from, and its group (a fraction's) name.
        arguments = known.get("arguments") or {}
        for part in ("run", "training"):
            if not isinstance(arguments.get(part) or {}, dict):
                raise TypeError(f"arguments.{part} is {arguments[part]!r}, not a mapping")
        fraction = (arguments.get("run") or {}).get("train_fraction")
        if not _fits(fraction, float | None):
            raise TypeError(f"arguments.run.train_fraction is {fraction!r}, not a number")
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``train`` writes: every field in order, then any ``extra`` keys."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        data.update(self.extra)
        return data


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value is of a field's type (``int | None``, ``dict[str, float]``, ...): a damaged
    file (a seed "one", metrics null, a score "0.5") is refused when read, not met as a TypeError deep
    in a report's arithmetic. An int is a float; a bool is no number."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint in (int, float):
        return isinstance(value, (int, float) if hint is float else int) and not isinstance(value, bool)
    if origin in (dict, list):
        if not isinstance(value, origin):
            return False
        return all(_fits(v, args[-1]) for v in (value.values() if origin is dict else value))
    return isinstance(value, hint)


def _shown(hint: Any) -> str:
    """A field's type as an error message names it: ``int``, ``dict[str, float] | None``."""
    return getattr(hint, "__name__", None) if isinstance(hint, type) else str(hint).replace("typing.", "")


def read_results(path: str | Path) -> RunResults:
    """A ``results.json`` as a :class:`RunResults`; :class:`ConfigError` when the file cannot be read,
    is not JSON, lacks a field every results file has, or holds a field of another type than its own
    (see :func:`_fits`)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return RunResults.from_dict(data)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"unreadable results file {path}: {exc}") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"unreadable results file {path}: not a run's results ({exc!r})") from None
