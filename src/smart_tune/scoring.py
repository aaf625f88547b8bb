"""``smart-tune evaluate`` and ``predict``: score a fine-tuned model on a labelled split, or write its
test-set predictions in the GLUE submission format."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import environment
from .errors import ConfigError, first_line
from .models import check_max_length, load_model_and_tokenizer, quiet_libraries, tokenize
from .outputs import RESULTS
from .results import write_text_atomic


def _load_trained(
    model_dir: str,
    task_name,
    trust_remote_code: bool = False,
    max_length: int = 128,
    tokenizer_name: str | None = None,
):
    """(task, model, tokenizer, order): ``task_name`` a task's name, or the TaskSpec of your own file
    (:func:`own_file`); ``order`` maps the task's labels onto the model's outputs (None: regression)."""
    from .tasks import get_task

    task = get_task(task_name) if isinstance(task_name, str) else task_name
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


def own_file(
    model_dir: str,
    data_file: str,
    split: str,
    text_columns: str | None = None,
    label_column: str | None = None,
    trust_remote_code: bool = False,
):
    """(task, dataset) of a file of your own (.csv, .tsv, .jsonl, .json), read as a model fine-tuned on
    your files reads it: its labels are the model's (``id2label``, in its order; regression when its
    head has one output), and its text and label columns, unless given, those its ``results.json``
    records (the training run's ``--text-columns`` and ``--label-column``). ``split``: "dev" (labels
    needed, for ``evaluate``) or "test" (labels optional, for ``predict``)."""
    from transformers import AutoConfig

    from .data import load_custom
    from .multitask import is_multitask_dir

    path = Path(model_dir)
    if not path.is_dir():
        raise ConfigError(f"model directory not found: {path}")
    if is_multitask_dir(path):
        raise ConfigError(
            f"the multi-task model in {path} scores its own tasks (--task); to score your file, fine-tune it "
            f"on your files first (smart-tune train --model {path} --train-file ...)"
        )
    try:
        config = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - any failure to read config.json, in one line
        raise ConfigError(f"cannot read the model's config.json in {path}: {first_line(exc)}") from exc
    run = _recorded_run(path)
    text_columns = text_columns or run.get("text_columns") or "sentence"
    label_column = label_column or run.get("label_column") or "label"
    columns = tuple(c.strip() for c in str(text_columns).split(",") if c.strip())
    regression = config.problem_type == "regression" or config.num_labels == 1
    labels = None if regression else [str(config.id2label[i]) for i in range(config.num_labels)]
    files = {"validation_file": data_file} if split == "dev" else {"test_file": data_file}
    task, loaded = load_custom(
        **files, text_columns=columns, label_column=label_column, regression=regression, label_list=labels
    )
    return task, loaded[split]


def _recorded_run(path: Path) -> dict[str, Any]:
    """The run options the results.json beside a model records ({} without one)."""
    try:
        with open(path / RESULTS, encoding="utf-8") as f:
            run = json.load(f)["arguments"]["run"]
        return run if isinstance(run, dict) else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def check_head(path: Path, task, trust_remote_code: bool = False) -> None:
    """Refuse a model whose classification head has another size than the task's labels, naming both
    (transformers' own error points at a report it does not print); a multi-task model without a head
    for the task, or with one of another size; a pre-trained encoder with no classification head.

    Only the number of outputs is checked here, before the model loads: the label *names* are checked
    afterwards by :func:`_load_trained`, which refuses a head naming other labels than the task's and
    maps the task's labels onto the head's outputs when it names the same ones in another order (a head
    that names none, ``LABEL_0``..., is taken in the task's order)."""
    from transformers import AutoConfig

    from .multitask import TASKS_KEY, TaskHead, is_multitask_dir

    def outputs(n: int, names) -> str:
        return "1 output (a regression score)" if n == 1 else f"{n} labels ({', '.join(map(str, names))})"

    needs = outputs(task.num_labels, task.label_names)
    try:
        config = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except Exception:
        return  # loading the model says what is wrong, in one line
    if is_multitask_dir(path):  # a head per task: the task must be one of them, of the task's size
        try:
            heads = {head.name: head for head in map(TaskHead.of, getattr(config, TASKS_KEY))}
        except Exception as exc:  # a config.json edited by hand or damaged: not a traceback
            raise ConfigError(
                f"the multi-task model in {path} has a task list ({TASKS_KEY} in its config.json) that "
                f"does not read: {first_line(exc)}"
            ) from None
        head = heads.get(task.name)
        if head is None:
            raise ConfigError(
                f"the multi-task model in {path} has heads for {', '.join(sorted(heads))}, not for "
                f"{task.name}: fine-tune it on {task.name} first (smart-tune train --model {path} --task "
                f"{task.name})"
            )
        if head.num_labels != task.num_labels:
            # Loading it for this task would give the encoder a fresh, untrained head: refused, not scored.
            has = outputs(head.num_labels, [head.id2label.get(i, i) for i in range(head.num_labels)])
            raise ConfigError(
                f"the multi-task model in {path} has a {task.name} head for {has}, task {task.name} "
                f"needs {needs}"
            )
        return
    architectures = getattr(config, "architectures", None) or []
    if architectures and not any(name.endswith("ForSequenceClassification") for name in architectures):
        # A pre-trained encoder (the packaged MiniLM, a BertModel): its head would be drawn at random.
        raise ConfigError(
            f"the model in {path} has no classification head (its config.json names "
            f"{', '.join(architectures)}): fine-tune it first, smart-tune train --model {path} --task {task.name}"
        )
    if config.num_labels == task.num_labels:
        return
    has = outputs(config.num_labels, [config.id2label[i] for i in range(config.num_labels)])
    raise ConfigError(
        f"the model in {path} has a head for {has}, task {task.name} needs {needs}: it was fine-tuned "
        "for another task"
    )


def warn_if_trained_on_another_task(path: Path, task) -> None:
    """One line on stderr when the results.json beside a model says it was fine-tuned on another task
    (same labels, so scoring works, e.g. an SNLI model on ANLI, but it may be a mistake)."""
    try:
        with open(path / RESULTS, encoding="utf-8") as f:
            recorded = json.load(f)
        trained_on, several = recorded.get("task"), recorded.get("tasks") or {}
    except (OSError, ValueError, AttributeError):
        return
    if not isinstance(several, (dict, list)):  # a damaged file: its tasks say nothing (no traceback)
        several = {}
    if isinstance(trained_on, str) and trained_on != task.name and task.name not in several:
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
    from .data import is_labelled

    encoded = tokenize(dataset, task, tokenizer, max_length).remove_columns(["idx"])
    # Unlabelled (test) rows: no loss to compute. Not `min(labels) < 0`: a regression target may be negative.
    if not is_labelled(dataset, task):
        encoded = encoded.remove_columns(["labels"])
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_eval_batch_size=batch_size,
            report_to="none",
            dataloader_pin_memory=has_accelerator(),
            disable_tqdm=not environment.show_progress(),
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
    by_agreement: bool = False,
    data_file: str | None = None,
    text_columns: str | None = None,
    label_column: str | None = None,
) -> dict[str, Any]:
    """Score a fine-tuned model on a labelled split: {"task", "split", "metrics", "num_examples"}.
    ``data_file``: a labelled file of your own instead of the task's split (``task_name`` None;
    :func:`own_file` reads it; ``"split"`` is then the file).
    ``tokenizer``: where the model's tokenizer is, when its folder lacks one. ``by_agreement`` adds
    ``"by_agreement": {bucket: {"accuracy", "num_examples"}}``, the accuracy per annotator-agreement
    bucket (§5.2 of the paper; :mod:`smart_tune.agreement`), for a split with annotator labels (SNLI's
    files); any other split is refused before the model is loaded."""
    from .data import check_split, load_split
    from .metrics import compute_metrics
    from .tasks import get_task

    _check_scoring_options(max_length, batch_size)
    buckets = None
    if by_agreement:  # refused before the model loads: a split without annotator labels
        from .agreement import agreement_buckets

        task = get_task(task_name)
        dataset = load_split(task, split, data_dir)
        buckets = agreement_buckets(dataset, f"the {task.name} {split} split")
    quiet_libraries()
    if data_file is not None:  # read before the model loads: a bad file fails fast
        task, dataset = own_file(model_dir, data_file, "dev", text_columns, label_column, trust_remote_code)
        split = str(data_file)
    task, model, tokenizer, order = _load_trained(
        model_dir, task if data_file is not None else task_name, trust_remote_code, max_length, tokenizer
    )
    if buckets is None and data_file is None:
        dataset = load_split(task, split, data_dir)
    check_split(dataset, task, split)
    preds, labels = _predict_logits(model, tokenizer, dataset, task, max_length, batch_size, split)
    if order is not None:
        preds = preds[:, order]
    out = {
        "task": task.name,
        "split": split,
        "metrics": compute_metrics(task, preds, labels),
        "num_examples": len(dataset),
    }
    if buckets is not None:
        from .agreement import accuracy_by_bucket

        out["by_agreement"] = accuracy_by_bucket(buckets, preds, labels)
    return out


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
    data_file: str | None = None,
    text_columns: str | None = None,
    label_column: str | None = None,
) -> list[str]:
    """Write test-set predictions in the GLUE submission format (``index<TAB>prediction``). Returns the files.
    ``data_file``: a file of your own instead (``task_name`` None; labels optional; :func:`own_file`
    reads it): its predictions, in your label names, go to ``<file's stem>.tsv``, ``index`` being the
    row's number (from 0). ``tokenizer``: where the model's tokenizer is, when its folder lacks one."""
    from .data import check_split, load_split

    _check_scoring_options(max_length, batch_size)
    quiet_libraries()
    own = None
    if data_file is not None:  # read before the model loads: a bad file fails fast
        own = own_file(model_dir, data_file, "test", text_columns, label_column, trust_remote_code)
    task, model, tokenizer, order = _load_trained(
        model_dir, own[0] if own else task_name, trust_remote_code, max_length, tokenizer
    )
    out_dir = Path(output_dir) if output_dir else Path(model_dir) / "predictions"
    # Every split is loaded and predicted before any file is written: a failure on the second split
    # (MNLI's mismatched test) leaves no half submission behind.
    files = {}
    for split in task.test_splits:
        dataset = own[1] if own else load_split(task, split, data_dir)
        check_split(dataset, task, split, labelled=False)
        preds, _ = _predict_logits(model, tokenizer, dataset, task, max_length, batch_size, split)
        name = GLUE_SUBMISSION.get((task.name, split), f"{task.display_name}-{split}.tsv")
        if own:
            name = f"{Path(data_file).stem}.tsv"
        files[out_dir / name] = submission_text(task, dataset, preds, order)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        write_text_atomic(path, text)
    return [str(path) for path in files]


def submission_text(task, dataset, preds, order) -> str:
    """A predictions file: ``index<TAB>prediction`` per row of ``dataset`` (its ``idx``), the values as
    :func:`submission_values` writes them."""
    rows = zip(dataset[:]["idx"], submission_values(task, preds, order))
    return "index\tprediction\n" + "".join(f"{idx}\t{value}\n" for idx, value in rows)


def submission_values(task, preds, order) -> list[str]:
    """GLUE's submission values: a label name, or a score (STS-B's clipped to 0..5) with 3 decimals."""
    if task.is_regression and task.name == "custom":  # your own scale: not clipped, not rounded to 3 decimals
        return [f"{v:.6g}" for v in preds.reshape(-1)]
    if task.is_regression:
        return [f"{v:.3f}" for v in np.clip(preds.reshape(-1), 0.0, 5.0 if task.name == "stsb" else np.inf)]
    ordered = preds if order is None else preds[:, order]  # None: the model's outputs are the task's labels
    return [task.label_list[i] for i in ordered.argmax(-1)]
