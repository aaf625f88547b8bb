"""Checkpoint folders that are complete or not: a crash or a full disk mid-save never leaves a
``checkpoint-N`` that looks resumable.

``SmartTrainer._save_checkpoint`` writes the marker file :data:`CHECKPOINT_COMPLETE` last (prepared under a
temporary name first, renamed into place after every file is flushed); resuming picks the newest folder
that has it.
"""

from __future__ import annotations

import json
import os
import zipfile
from contextlib import contextmanager
from pathlib import Path

from .errors import first_line

CHECKPOINT_COMPLETE = "smart_tune_complete"  # written last into a checkpoint folder: the save finished
TEACHER_WEIGHTS = "smart_teacher.safetensors"  # the mean teacher's weights in a checkpoint folder
TEACHER_STATE = "smart_teacher_state.json"  # and its clock (optimizer steps, updates)
RESUME_STATE = "smart_resume_state_{}.json"  # per process: what the Trainer's own state lacks to log on


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


def holds_training_state(folder: str | os.PathLike) -> bool:
    """Whether a checkpoint holds what training continues from, beside the model: the optimizer's and
    the learning-rate schedule's state. ``--save-only-model`` (as ``benchmarks/gpu_study.py`` saves)
    keeps the model only; resuming from that would restart AdamW's moments and the warm-up silently.
    The Trainer's files (``optimizer.pt``, under FSDP ``optimizer.bin`` or ``optimizer_0/``, and
    ``scheduler.pt``), or DeepSpeed's: its engine saves both in a ``global_stepN`` folder (no
    ``scheduler.pt`` beside it with a DeepSpeed scheduler), which the Trainer resumes from."""
    names = os.listdir(folder) if os.path.isdir(folder) else []
    if any(n.startswith("global_step") and os.path.isdir(os.path.join(folder, n)) for n in names):
        return True
    return any(n.startswith("optimizer") for n in names) and any(n.startswith("scheduler") for n in names)


def model_only_message(checkpoint: str | os.PathLike) -> str:
    return (
        f"{checkpoint} holds the model only (saved with --save-only-model): no optimizer or schedule "
        "state to continue training from"
    )


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


def save_teacher(folder: str | os.PathLike, teacher) -> None:
    """Write the mean teacher (weights and clock) into a checkpoint folder."""
    from safetensors.torch import save_file

    os.makedirs(folder, exist_ok=True)
    state = teacher.state_dict()
    # safetensors refuses tensors that share memory (tied weights): save contiguous copies.
    tensors = {k: v.detach().contiguous().clone() for k, v in state.pop("model").items()}
    save_file(tensors, os.path.join(folder, TEACHER_WEIGHTS))
    with open(os.path.join(folder, TEACHER_STATE), "w") as f:
        json.dump(state, f)


def load_teacher(folder: str | os.PathLike, teacher, device) -> bool:
    """Restore the mean teacher from a checkpoint folder; False when the folder holds none."""
    from safetensors.torch import load_file

    weights = os.path.join(folder, TEACHER_WEIGHTS)
    if not os.path.isfile(weights):
        return False
    with open(os.path.join(folder, TEACHER_STATE)) as f:
        clock = json.load(f)
    teacher.load_state_dict({"model": load_file(weights, device=str(device)), **clock})
    return True


def save_resume_state(folder: str | os.PathLike, process_index: int, state: dict) -> None:
    """Write one process's resume state (:data:`RESUME_STATE`: plain numbers) into a checkpoint folder."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, RESUME_STATE.format(process_index)), "w") as f:
        json.dump(state, f)


def load_resume_state(folder: str | os.PathLike, process_index: int) -> dict | None:
    """One process's resume state from a checkpoint folder; None when it holds none (an older one)."""
    path = os.path.join(folder, RESUME_STATE.format(process_index))
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def remove_cut_short_after(output_dir: str | os.PathLike, checkpoint: str) -> None:
    """Remove the unfinished ``checkpoint-N`` folders of ``output_dir`` later than ``checkpoint``.

    They cannot be resumed, the resumed run writes those steps again, and they would mislead the
    Trainer's rotation (``save_total_limit``), which keeps the highest N and may delete the new
    checkpoints instead.
    """
    import shutil
    import warnings

    start = checkpoint_step(os.path.basename(os.path.normpath(checkpoint))) or 0
    for name in sorted(os.listdir(output_dir)):
        step = checkpoint_step(name)
        path = os.path.join(output_dir, name)
        if step is not None and step > start and os.path.isdir(path) and not is_complete_checkpoint(path):
            warnings.warn(
                f"smart-tune: removing {path}: its save was cut short", RuntimeWarning, stacklevel=3
            )
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def complete_or_absent(folder: str, step: int, writes: bool, wait_for_everyone=lambda: None):
    """Around the writing of ``checkpoint-N``: the folder ends complete (marked) or absent.

    The Trainer writes the folder in place, file by file. Here the completion marker is prepared first
    (an older folder of that name loses its marker), then the body writes the files, every process
    waits for the others' shards, and the marker is renamed into place last (a rename needs no free
    space). If a write fails, the partial folder is removed and a :class:`CheckpointError` says so;
    older checkpoints stay as they were. The marker is prepared before the Trainer's save because that
    save ends by rotating old checkpoints (``save_total_limit``). ``writes``: this process writes the
    model and the marker (rank 0).
    """
    import shutil

    from .errors import CheckpointError, SmartTuneError, first_line

    try:
        pending = prepare_marker(folder, step) if writes else None
        yield
        wait_for_everyone()  # every process's shards are written
        if pending is not None:
            commit_marker(folder, pending)
    except BaseException as exc:
        if writes:
            shutil.rmtree(folder, ignore_errors=True)
        if not isinstance(exc, Exception) or isinstance(exc, SmartTuneError):
            raise  # Ctrl-C, a second signal: stop as asked, the folder gone
        previous = last_complete_checkpoint(os.path.dirname(folder))
        kept = f"the newest complete checkpoint is {previous}" if previous else "none is complete yet"
        raise CheckpointError(
            f"could not save {folder}: {first_line(exc)}; the partial folder was removed and {kept}"
        ) from exc


def newest_resumable(output_dir: str | os.PathLike, tidy: bool = True) -> str:
    """The newest *complete* checkpoint of ``output_dir`` (the Trainer's own choice, the highest N, may be
    a folder whose save was cut short), with the cut-short folders after it removed when ``tidy``
    (the writing process only). :class:`ConfigError` when none is complete."""
    from .errors import ConfigError

    checkpoint = last_complete_checkpoint(output_dir)
    if checkpoint is None:
        raise ConfigError(no_complete_checkpoint_message(output_dir))
    if tidy:
        remove_cut_short_after(output_dir, checkpoint)
    return checkpoint


def resumed_step(resume_from_checkpoint) -> int:
    """The optimizer step a ``train(resume_from_checkpoint=...)`` call starts from (0: from scratch)."""
    if not isinstance(resume_from_checkpoint, str):
        return 0
    return checkpoint_step(os.path.basename(os.path.normpath(resume_from_checkpoint))) or 0


def damaged_file(folder: str | os.PathLike) -> tuple[str, str] | None:
    """(path, why) of the first file of a checkpoint folder that cannot be read back, or None.

    Cheap checks that catch a truncated or overwritten file: a safetensors header that does not cover
    the file, a ``torch.save`` zip whose directory is lost, a JSON file that does not parse.
    """
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        try:
            if name.endswith(".safetensors"):
                from safetensors import safe_open

                with safe_open(path, "pt"):
                    pass
            elif name.endswith((".pt", ".pth", ".bin")):
                with open(path, "rb") as f:
                    is_zip = f.read(2) == b"PK"  # torch.save's format; an old-style pickle is not checked
                if is_zip or os.path.getsize(path) < 2:
                    with zipfile.ZipFile(path):
                        pass
            elif name.endswith(".json"):
                with open(path, encoding="utf-8") as f:
                    json.load(f)
        except Exception as exc:  # any failure to read it back means it cannot be resumed from
            return path, first_line(exc)
    return None


def newest_sound_checkpoint(output_dir: str | os.PathLike) -> tuple[str | None, list[tuple[str, str, str]]]:
    """(the newest complete checkpoint whose files read back or None, the newer complete ones that do not
    as (folder, damaged file, why), newest first)."""
    damaged = []
    for folder in reversed(checkpoints_in(output_dir)):
        if not is_complete_checkpoint(folder):
            continue
        bad = damaged_file(folder)
        if bad is None:
            return str(folder), damaged
        damaged.append((str(folder), *bad))
    return None, damaged
