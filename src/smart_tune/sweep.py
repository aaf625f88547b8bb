"""``smart-tune compare``: every (task, method, seed) run, side by side, resumable.

Each run lives in ``OUTPUT_DIR/<task>/<method>/seed-<seed>/`` with its own ``run_config.json`` (the
exact options), ``train.log`` and, once finished, ``results.json``. A run with a results file is done
and skipped; a run with checkpoints is resumed; so a killed sweep picks up where it stopped. A run is
resumed only with the options it started with, and over the same defaults (``run_config.resolved.json``,
see :mod:`smart_tune.run_record`): else it is refused (a failed run), never finished with other
settings; resumed under another commit of smart_tune, it is warned about. While a sweep runs a run, it
holds the run folder's lock, so that another sweep naming the same run leaves it alone. Each run
is a child process (``python -m smart_tune train --config run_config.json``): a crash or leak in one
run cannot take the sweep down, and every run can be repeated by hand from its folder.
"""

from __future__ import annotations

import fcntl
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .checkpoints import checkpoints_in, holds_training_state, last_complete_checkpoint, model_only_message
from .errors import ConfigError, Interrupted
from .presets import PRESETS
from .results import RESULTS, read_results, write_json_atomic
from .run_record import (  # noqa: F401  (the run's record: importable from here too)
    RESOLVED,
    RUN_CONFIG,
    resolved_options,
    revision_warning,
    settings_changed,
    started_at_commit,
    write_run_record,
)

# Held by the sweep running the run: two compare jobs naming the same run (overlapping --seeds or --grid
# lists, on lanes side by side) never train it at once in one folder.
RUN_LOCK = ".run.lock"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to kill the child when the sweep dies, so a killed sweep leaves no orphan training."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def wait_passing_sigterm(child: subprocess.Popen) -> tuple[int, bool]:
    """Wait for a run; a SIGTERM to the sweep is passed on to it, so that it saves a checkpoint at the
    end of its step and stops (benchmarks/lanes.py and schedulers signal only the sweep's process, and
    the sweep's death would SIGKILL the run, see _die_with_parent). (exit code, whether SIGTERM came)."""
    received: list[int] = []

    def forward(signum, _frame):
        received.append(signum)
        child.send_signal(signum)  # a second one stops the run at once, as it would the run itself

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        code = child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code, bool(received)


def plan_runs(
    output_dir: Path,
    tasks: list[str],
    methods: list[str],
    seeds: list[int],
    shared: dict[str, Any],
    variants: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """One entry per run: where it lives and the options it trains with."""
    from .tasks import get_task

    runs = []
    for task_name in tasks:
        task = get_task(task_name).name
        for method in methods:
            if method in variants:
                method_options = {"method": "smart", **variants[method], "label": method}
            elif method in PRESETS:
                method_options = {"method": method}
            else:
                raise ConfigError(f"unknown method '{method}'; known: {', '.join([*PRESETS, *variants])}")
            for seed in seeds:
                run_dir = output_dir / task / method / f"seed-{seed}"
                options = {**shared, **method_options, "task": task, "seed": seed, "output_dir": str(run_dir)}
                runs.append(
                    {"task": task, "method": method, "seed": seed, "dir": run_dir, "options": options}
                )
    return runs


def run_sweep(
    output_dir: str | Path,
    tasks: list[str],
    methods: list[str],
    seeds: list[int],
    shared: dict[str, Any],
    variants: dict[str, dict[str, Any]] | None = None,
    echo=print,
) -> list[dict[str, Any]]:
    """Run what is not done yet, in order; returns the failed runs (empty when all finished)."""
    output_dir = Path(output_dir)
    runs = plan_runs(output_dir, tasks, methods, seeds, shared, variants or {})
    failures = []
    for n, r in enumerate(runs, 1):
        label = f"[{n}/{len(runs)}] {r['task']} {r['method']} seed {r['seed']}"
        run_dir: Path = r["dir"]
        if (run_dir / RESULTS).exists():
            echo(f"{label}: done already")
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / RUN_LOCK, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                echo(f"{label}: running in another process (its {RUN_LOCK} is held); left to it")
                continue
            if (run_dir / RESULTS).exists():  # finished by that process just now
                echo(f"{label}: done already")
                continue
            if not _run_one(r, label, echo):
                failures.append(r)
    return failures


def _run_one(r: dict[str, Any], label: str, echo) -> bool:
    """Train (or resume) one run in a child process, its folder locked; whether it finished."""
    run_dir: Path = r["dir"]
    checkpoint = last_complete_checkpoint(run_dir)
    resume = checkpoint is not None and holds_training_state(checkpoint)
    if checkpoint is not None and not resume:  # a GPU study's cut run: exactly, or not at all
        echo(f"{label}: {model_only_message(checkpoint)}; training it again from the start")
    if resume:
        why = settings_changed(run_dir, r["options"])
        if why is not None:
            why = (
                f"not resumed: {why}; restore the settings it started with, or remove its checkpoint-* "
                "folders to train it again from the start"
            )
            with open(run_dir / "train.log", "a", encoding="utf-8") as log:
                log.write(f"smart-tune compare: {why}\n")
            echo(f"{label}: FAILED: {why} ({run_dir})")
            return False
        if not (run_dir / RESOLVED).exists():  # started before it was written: its revision unknown
            write_json_atomic(run_dir / RESOLVED, resolved_options(r["options"]))
        commit_then = started_at_commit(run_dir)
        if commit_then is not None:  # a fix between sessions is legitimate; the run records it
            print(f"{label}: {revision_warning(run_dir, commit_then)}", file=sys.stderr, flush=True)
    else:
        write_run_record(run_dir, r["options"])
    cmd = [sys.executable, "-m", "smart_tune", "train", "--config", str(run_dir / RUN_CONFIG)]
    if resume:
        cmd.append("--resume")
    elif checkpoints_in(run_dir):  # only saves cut short (a kill mid-save): nothing to resume
        cmd.append("--overwrite-output-dir")
    echo(f"{label}: {'resuming' if resume else 'training'} in {run_dir}")
    started = time.time()
    with open(run_dir / "train.log", "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        try:
            code, terminated = wait_passing_sigterm(child)
        except KeyboardInterrupt:
            # Ctrl-C reached the run too (same process group): let it finish its checkpoint, so
            # that the next compare resumes it, then stop the sweep.
            child.wait()
            raise
    if terminated:
        raise Interrupted(
            f"{label}: stopped by SIGTERM (exit {code}); run compare again to resume it", signal.SIGTERM
        )
    minutes = (time.time() - started) / 60
    if code == 0 and (run_dir / RESULTS).exists():
        metrics = read_results(run_dir / RESULTS).metrics
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        echo(f"{label}: finished in {minutes:.1f} min: {shown}")
        return True
    echo(f"{label}: FAILED (exit {code}); see {run_dir / 'train.log'}")
    return False
