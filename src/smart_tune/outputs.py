"""The output folder of a run: what may be written over, what a failed run removes, what a resumed run
may start from, and which process writes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .checkpoints import checkpoints_in, newest_sound_checkpoint
from .errors import ConfigError
from .results import RESULTS


def is_main_process() -> bool:
    """True in a single process and in rank 0 of ``torchrun`` / ``accelerate launch`` (known before the
    process group exists, from the launcher's RANK variable): the one process that writes files."""
    return int(os.environ.get("RANK", "0")) == 0


def check_output_dir(output_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to write over another run. Removes nothing: with --overwrite-output-dir the old run stays
    until the new one is about to train (:func:`clear_previous_run`), so a run that fails before
    training (no data, no hub, a model that does not load) leaves the folder as it was."""
    if not output_dir.exists():
        if resume:
            raise ConfigError(f"--resume: {output_dir} does not exist; nothing to resume")
        return
    if not output_dir.is_dir():
        raise ConfigError(f"output directory {output_dir} is a file")
    has_results = (output_dir / RESULTS).exists()
    has_checkpoints = bool(checkpoints_in(output_dir))
    if overwrite:
        return
    if has_results and resume:
        raise ConfigError(
            f"--resume: {output_dir} holds a finished run ({RESULTS}), nothing to resume; choose another "
            "--output-dir, or pass --overwrite-output-dir instead of --resume to train it again"
        )
    if has_results:
        raise ConfigError(
            f"{output_dir} holds another run's results ({RESULTS}); choose another --output-dir or pass "
            "--overwrite-output-dir"
        )
    if has_checkpoints and not resume:
        raise ConfigError(
            f"{output_dir} holds checkpoints of an unfinished run; pass --resume to continue it or "
            "--overwrite-output-dir to start over"
        )
    if resume and not has_checkpoints:
        raise ConfigError(f"--resume: no checkpoint-* folder in {output_dir}")
    if resume:
        from .checkpoints import last_complete_checkpoint, no_complete_checkpoint_message

        if last_complete_checkpoint(output_dir) is None:
            raise ConfigError(f"--resume: {no_complete_checkpoint_message(output_dir)}")
        damaged_checkpoints(output_dir)  # a damaged newest one with none to fall back to: refused here


def damaged_checkpoints(output_dir: Path) -> list[tuple[str, str, str]]:
    """The complete checkpoints newer than the newest one whose files read back: (folder, file, why).

    A checkpoint marked complete can still be damaged afterwards (a file truncated by a copy, a sync, a
    full disk on another machine). ``--resume`` falls back to the previous complete checkpoint; with none
    to fall back to, it is refused in one line naming the file."""
    sound, damaged = newest_sound_checkpoint(output_dir)
    if sound is None and damaged:
        _, path, why = damaged[0]
        raise ConfigError(
            f"--resume: {path} is damaged ({why}) and no earlier checkpoint is intact to fall back to; "
            "start over with --overwrite-output-dir"
        )
    return damaged


# What a run leaves in its output directory besides results.json and checkpoint-* folders: the record
# of its start (:mod:`smart_tune.run_record`), the saved model and tokenizer (``Trainer.save_model``) and
# the files of ``smart-tune predict``.
RUN_FILES = (
    "run_config.json",
    "run_config.resolved.json",
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*.safetensors",
    "pytorch_model*.bin",
    "training_args.bin",
    "tokenizer*.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "predictions",
)


def clear_previous_run(output_dir: Path) -> None:
    """--overwrite-output-dir: remove the previous run's results, checkpoints, record, model and predictions.
    Called once the new run has loaded its data and model and is about to train; rank 0 only (the other
    processes of a multi-process run share the folder). Other files in the folder are left alone."""
    if not output_dir.is_dir() or not is_main_process():
        return
    for ckpt in checkpoints_in(output_dir):
        shutil.rmtree(ckpt)
    (output_dir / RESULTS).unlink(missing_ok=True)
    for pattern in RUN_FILES:
        for path in output_dir.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def missing_folders(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, innermost first."""
    missing = []
    for folder in [path, *path.parents]:
        if folder.exists():
            break
        missing.append(folder)
    return missing


def remove_created(folders: list[Path]) -> None:
    """Remove the folders a failed run created, innermost first: the output directory unless it holds a
    complete checkpoint to resume from or a finished run's results, then each parent only while empty
    (another run may use it)."""
    from .checkpoints import is_complete_checkpoint

    output_dir, parents = folders[0], folders[1:]
    if not output_dir.is_dir() or any(is_complete_checkpoint(p) for p in checkpoints_in(output_dir)):
        return
    if (output_dir / RESULTS).exists():  # a finished run's (another process's, in the same folder)
        return
    shutil.rmtree(output_dir, ignore_errors=True)
    for folder in parents:
        try:
            folder.rmdir()
        except OSError:  # not empty: another run's files are in it
            return
