"""Checkpoint folders that are complete or not: a crash or a full disk mid-save never leaves a
``checkpoint-N`` that looks resumable.

``SmartTrainer._save_checkpoint`` writes the marker file :data:`CHECKPOINT_COMPLETE` last (prepared under a
temporary name first, renamed into place after every file is flushed); resuming picks the newest folder
that has it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

CHECKPOINT_COMPLETE = "smart_tune_complete"  # written last into a checkpoint folder: the save finished


def is_complete_checkpoint(folder: str | os.PathLike) -> bool:
    """Whether a checkpoint folder's save finished (it holds the marker :data:`CHECKPOINT_COMPLETE`)."""
    return os.path.isfile(os.path.join(folder, CHECKPOINT_COMPLETE))


def checkpoint_step(name: str) -> int | None:
    prefix, _, step = name.rpartition("-")
    return int(step) if prefix == "checkpoint" and step.isdigit() else None


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The complete ``checkpoint-N`` folder of ``output_dir`` with the highest N, or None."""
    if not os.path.isdir(output_dir):
        return None
    found = [
        (step, os.path.join(output_dir, name))
        for name in os.listdir(output_dir)
        if (step := checkpoint_step(name)) is not None
    ]
    complete = [(step, path) for step, path in found if is_complete_checkpoint(path)]
    return str(max(complete)[1]) if complete else None


def no_complete_checkpoint_message(output_dir: str | os.PathLike) -> str:
    partial = sorted(
        name
        for name in (os.listdir(output_dir) if os.path.isdir(output_dir) else [])
        if checkpoint_step(name) is not None
        and os.path.isdir(os.path.join(output_dir, name))
        and not is_complete_checkpoint(os.path.join(output_dir, name))
    )
    cut = f" ({', '.join(partial)}: saving was cut short)" if partial else ""
    return f"no complete checkpoint to resume in {output_dir}{cut}; start over with --overwrite-output-dir"


def _fsync(path: str) -> None:
    if os.name != "posix":
        return  # Windows fsyncs neither read-only handles nor directories
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prepare_marker(folder: str, step: int) -> str:
    """Write the marker's content under a temporary name before the checkpoint's files; return it."""
    os.makedirs(folder, exist_ok=True)
    marker = os.path.join(folder, CHECKPOINT_COMPLETE)
    if os.path.exists(marker):
        os.unlink(marker)  # an older save of this step: no longer complete from now on
    pending = os.path.join(folder, f".{CHECKPOINT_COMPLETE}.tmp")
    with open(pending, "w", encoding="utf-8") as f:
        json.dump({"global_step": step}, f)
        f.flush()
        os.fsync(f.fileno())
    return pending


def commit_marker(folder: str, pending: str) -> None:
    """Flush every file of the checkpoint to disk, then rename the marker into place (atomic)."""
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync(os.path.join(root, name))
    os.replace(pending, os.path.join(folder, CHECKPOINT_COMPLETE))
    _fsync(folder)


def checkpoints_in(output_dir: str | os.PathLike) -> list[Path]:
    """Every ``checkpoint-N`` folder of ``output_dir``, complete or not, by increasing N."""
    found = [
        (step, p)
        for p in Path(output_dir).glob("checkpoint-*")
        if (step := checkpoint_step(p.name)) is not None
    ]
    return [p for _, p in sorted(found)]
