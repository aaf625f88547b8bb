"""A run's record of how it started, written in its folder at its start and read back on resume: a run
cut short is resumed only with the settings it started with, and results.json says when it resumed
under other code.

- ``run_config.json``: the options the run was given (a compare run's, or a ``train`` command's config
  file and flags), keyed by field name; ``smart-tune train --config run_config.json`` repeats the run.
- ``run_config.resolved.json``: every option it got once the defaults were stacked under those,
  under ``_source`` the source revision of smart_tune that started it
  (:func:`~smart_tune.environment.source_revision`: ``{"commit", "dirty"}``, or null outside a git
  checkout), and under ``_paths`` the absolute path each option naming a file or folder led to then
  (:func:`resolved_paths`): ``data/x.csv``, ``./data/x.csv`` and ``/work/data/x.csv`` are one file,
  and ``data/x.csv`` typed again from another working directory is another.

``compare`` writes the record before it starts a run, and ``train`` (which compare's runs are, and
benchmarks/gpu_study.py's) and ``multitask`` when they start one: one writer, :func:`write_run_record`, one check,
:func:`settings_changed`. Importing this module costs no torch or transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import environment
from .results import write_json_atomic

RUN_CONFIG = "run_config.json"
# Beside it: every option the run got once the defaults were stacked under run_config.json's, when it
# started (a resumed run is refused if they changed since), and the code's revision then (SOURCE).
RESOLVED = "run_config.resolved.json"
SOURCE = "_source"  # no option's name: options are identifiers without a leading underscore
PATHS = "_paths"  # beside it: where the options that name files or folders led (resolved_paths)
# Options whose value is a file or folder (read relative to the working directory, ``~`` expanded):
# compared on resume by the absolute path they lead to, not as typed.
PATH_OPTIONS = frozenset({"data_dir", "train_file", "validation_file", "test_file"})
# Options whose value is a file or folder when one is there, else something else: a model's name on the
# hub (--model), a JSON object given inline (TrainingArguments' deepspeed, fsdp_config,
# accelerator_config). Compared by path only when they named one.
PATH_OR_NAME_OPTIONS = frozenset({"model", "deepspeed", "fsdp_config", "accelerator_config"})
# How one command treats the run's folder, not what the run is: left out of run_config.json.
INVOCATION = frozenset({"config", "resume", "overwrite_output_dir"})
# Not compared on resume either: where the folder is (the folder read is the run's, however its path
# is spelled: relative, absolute, moved), and what a run shows or keeps without changing what it trains:
# its name in results.json, progress bars and logging, whether the model and checkpoints are kept at
# its end. None of these draws from a random generator or touches a weight.
NOT_TRAINING = INVOCATION | {
    "output_dir",
    "label",
    "keep_checkpoints",
    "save_model",
    "disable_tqdm",
    "logging_dir",
    "logging_steps",
    "logging_first_step",
    "logging_nan_inf_filter",
    "report_to",
    "log_level",
    "log_level_replica",
    "log_on_each_node",
}


def recorded_options(chosen: dict[str, Any], output_dir: str | Path) -> dict[str, Any]:
    """What ``run_config.json`` records of a ``train`` command's options (``chosen``: its config file
    under its flags, keyed by field name, :attr:`~smart_tune.options.TrainOptions.chosen`): those, less
    :data:`INVOCATION`, with the output folder. A compare run's (``train --config run_config.json``)
    comes out as compare wrote it."""
    options = {k: v for k, v in chosen.items() if k not in INVOCATION}
    options.setdefault("output_dir", str(output_dir))
    return options


def resolved_options(options: dict[str, Any]) -> dict[str, Any]:
    """Every option a run's ``run_config.json`` gives it once the defaults are stacked under it (the
    dataclasses', the recipe's, the preset's), as JSON reads it back: what a resumed run must train
    with again. The machine's own defaults (progress bars, pinned memory) are left at one value."""
    import dataclasses

    from .config import SmartTrainingArguments
    from .options import MultiTaskOptions, RunOptions, field_names, layered

    chosen = field_names(options)
    # A multi-task run's options name its tasks (``--tasks``), which only MultiTaskOptions holds.
    options_class = MultiTaskOptions if chosen.get("tasks") else RunOptions
    run_defaults = {f.name: f.default for f in dataclasses.fields(options_class)}
    defaults = {
        f.name: f.default
        for f in dataclasses.fields(SmartTrainingArguments)
        if f.init and f.default is not dataclasses.MISSING
    }
    return _as_json({**run_defaults, **defaults, **layered(chosen, options_class=options_class)})


def resolved_paths(resolved: dict[str, Any]) -> dict[str, str]:
    """The absolute path (symbolic links followed) that each option of ``resolved`` (keyed by field
    name) naming a file or folder leads to from this process's working directory: those of
    :data:`PATH_OPTIONS` given, and those of :data:`PATH_OR_NAME_OPTIONS` that name one that is there."""
    paths = {}
    for key, value in resolved.items():
        if not isinstance(value, str) or not value:
            continue
        path = Path(value).expanduser()
        if key in PATH_OPTIONS or (key in PATH_OR_NAME_OPTIONS and _is_there(path)):
            paths[key] = str(path.resolve())
    return paths


def _is_there(path: Path) -> bool:
    """Whether ``path`` names a file or folder. A value no path can be (a JSON object given inline, longer
    than a file name may be: ``Path.exists`` raises for it before Python 3.13) names none."""
    try:
        return path.exists()
    except OSError:
        return False


def write_run_record(run_dir: Path, options: dict[str, Any]) -> None:
    """A run's start: ``run_config.json`` (``options``) and ``run_config.resolved.json`` (the options
    resolved, the source revision of this process's code, and where its paths led)."""
    write_json_atomic(run_dir / RUN_CONFIG, options)
    resolved = resolved_options(options)
    record = {**resolved, SOURCE: environment.running_source(), PATHS: resolved_paths(resolved)}
    write_json_atomic(run_dir / RESOLVED, record)


def _as_json(data: Any) -> Any:
    """``data`` as it reads back from its JSON file."""
    return json.loads(json.dumps(data, default=str))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _canonical(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with task names as the registry spells them (``STS-B``, ``sts_b``: ``stsb``), so that
    a name typed another way is the same setting. A name the registry does not know is left as it is."""
    from .errors import ConfigError
    from .tasks import get_task

    def name(task: Any) -> Any:
        try:
            return get_task(task).name if isinstance(task, str) else task
        except ConfigError:
            return task

    out = dict(options)
    if "task" in out:
        out["task"] = name(out["task"])
    if isinstance(out.get("tasks"), str):
        out["tasks"] = ",".join(str(name(t.strip())) for t in out["tasks"].split(","))
    return out


def _as_paths(
    started: dict[str, Any], now: dict[str, Any], before: dict[str, Any], after: dict[str, Any]
) -> tuple[dict[str, Any], ...]:
    """The four sides of :func:`settings_changed` with each option naming a file or folder replaced by
    the absolute path it led to (``before``'s :data:`PATHS`, for the run's start) or leads to now (from
    this working directory). A record written before the paths were (no :data:`PATHS`): as typed."""
    then_paths = before.get(PATHS)
    if not isinstance(then_paths, dict):
        return started, now, before, after
    now_paths = resolved_paths(after)

    def replaced(options: dict[str, Any], paths: dict[str, Any], typed: bool) -> dict[str, Any]:
        # In the options typed (run_config.json, those given now), only where the option was given.
        return {**options, **{k: v for k, v in paths.items() if k in options or not typed}}

    return (
        replaced(started, then_paths, True),
        replaced(now, now_paths, True),
        replaced(before, then_paths, False),
        replaced(after, now_paths, False),
    )


def _differences(before: dict[str, Any], now: dict[str, Any], keys) -> str:
    return "; ".join(f"{k}: {before.get(k, '(unset)')!r} then, {now.get(k, '(unset)')!r} now" for k in keys)


def settings_changed(run_dir: Path, options: dict[str, Any]) -> str | None:
    """Why a run cut short may not resume with ``options``: they differ from those it started with (its
    ``run_config.json``) in a way that changes what it trains, or the defaults stacked under them do
    (``run_config.resolved.json``): a resumed run would finish with other settings than it started with.
    None when they are the same. Where the run is kept, and what it shows or keeps (progress bars,
    logging, its label, its saved model), are not compared (:data:`NOT_TRAINING`), nor a task's name
    spelled another way (``STS-B``: ``stsb``), nor an option given now and not then (or the reverse)
    whose value comes out the same (a default spelled out), nor a file or folder spelled another way
    (relative, ``./``, absolute: compared by the absolute path it led to then and leads to now, so the
    same relative path typed from another working directory differs); a run started before the resolved
    file was written is compared on its options alone. Options are compared by field name, however spelled
    (``smart-epsilon``, ``epochs``: a compare variant's keys as its config file gives them, which
    ``train`` reads and records as fields)."""
    from .options import field_names

    started = _read_json(run_dir / RUN_CONFIG)
    now = _canonical(field_names(_as_json(options)))
    if not isinstance(started, dict):
        return f"its {RUN_CONFIG} cannot be read back, so the settings it started with are unknown"
    started = _canonical(field_names(started))
    before = _read_json(run_dir / RESOLVED)
    if isinstance(before, dict):
        before, after = _canonical(before), _canonical(resolved_options(options))
        # Files and folders compared by the absolute path they led to then and lead to from here now.
        started, now, before, after = _as_paths(started, now, before, after)
        # Only settings known then and now: a field a newer transformers adds changes nothing that ran.
        both = (set(before) & set(after)) - NOT_TRAINING - {SOURCE, PATHS}
    else:  # a run started before the file was written: compared on its options alone
        before, after, both = {}, {}, set()
    unset = object()
    given = sorted(
        k
        for k in set(started) | set(now)
        if k not in NOT_TRAINING and started.get(k, unset) != now.get(k, unset)
    )
    changed = [k for k in given if k not in both or before[k] != after[k]]
    if changed:  # shown as they resolved: a value given then or now, else the default it had
        then_values = {**started, **{k: before[k] for k in both}}
        now_values = {**now, **{k: after[k] for k in both}}
        return f"its options changed since it started ({_differences(then_values, now_values, changed)})"
    changed = sorted(k for k in both if before[k] != after[k])
    if changed:
        shown = _differences(before, after, changed)
        return f"the defaults under its options changed since it started ({shown})"
    return None


def started_by(run_dir: Path) -> str:
    """The smart-tune command whose options the run's ``run_config.json`` holds (``--config`` gives them
    again): ``multitask`` when they name its tasks, else ``train``."""
    started = _read_json(run_dir / RUN_CONFIG)
    return "multitask" if isinstance(started, dict) and started.get("tasks") else "train"


def started_at_commit(run_dir: Path) -> str | None:
    """The commit a run cut short started at, when this process runs another one: both known (a git
    checkout then and now) and different. Only commits are compared: uncommitted changes are not
    recorded beyond ``dirty``."""
    before = _read_json(run_dir / RESOLVED)
    source = before.get(SOURCE) if isinstance(before, dict) else None
    then = source.get("commit") if isinstance(source, dict) else None
    now = (environment.running_source() or {}).get("commit")
    return then if then and now and then != now else None


def revision_warning(run_dir: Path, commit_then: str) -> str:
    """The one line a run resumed under other code prints (on stderr)."""
    now = (environment.running_source() or {}).get("commit")
    return (
        f"warning: {run_dir} started at commit {commit_then} and resumes at commit {now}; its results.json "
        "records both (environment.source.started_at_commit)"
    )
