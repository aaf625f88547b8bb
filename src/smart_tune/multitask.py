"""The multi-task model of MT-DNN(-SMART): one shared encoder, one sequence-classification head per task.

MT-DNN (Liu et al. 2019) trains one encoder on several tasks at once, each task with a head of its own:
softmax over its classes, or a scalar for regression (STS-B). A mini-batch holds examples of one task,
named by ``task_ids`` (B,), and goes through the shared encoder and that task's head. MT-DNN-SMART
applies SMART to this model unchanged: R_s perturbs the shared word embeddings, ℓ_s follows the batch's
task (symmetric KL for a classification head, squared error for a regression head: see
:func:`smart_tune.passes.problem_type_for`), and the mean teacher θ̃ is a copy of the whole model,
encoder and every head.

Design: each task holds the very ``XForSequenceClassification`` module that
``AutoModelForSequenceClassification`` builds for the encoder's config with that task's labels, with its
own encoder removed and the shared one put in its place (as a plain attribute, not a registered
submodule). So

- a task's forward is the family's own code (pooler or first token, dropout, head layers, and its loss:
  cross-entropy, MSE or BCE by ``problem_type``): nothing of BERT's, RoBERTa's or DistilBERT's head is
  re-implemented here, and ``--pooling mean`` (a pooler swapped inside the shared encoder) applies to
  every task at once;
- the parameters are registered once: the encoder under its usual name (``bert.``, ``roberta.``, ...) and
  each head under ``heads.<task>.``; the state dict has no shared tensors and the encoder's keys are
  those of a standard model, so one task's slice *is* a standard sequence-classification state dict
  (:meth:`MultiTaskModel.task_model`, :func:`load_task_model`);
- a deep copy (the mean teacher) copies the encoder once and points every copied head at the copy.

The price: building a head builds, and drops, a whole encoder of the family once per task (the family
decides the head's layers, so it is built the family's way).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification
from transformers.modeling_outputs import SequenceClassifierOutput

from .divergences import MULTI_LABEL, REGRESSION, SINGLE_LABEL
from .errors import ConfigError
from .pooling import apply_pooling, pooling_of

TASKS_KEY = "smart_tune_tasks"  # the task list in config.json: what makes a folder a multi-task model
WEIGHTS_NAME = "model.safetensors"  # the Trainer's name for a state dict, so checkpoints load the same
PROBLEM_TYPES = (SINGLE_LABEL, REGRESSION, MULTI_LABEL)


@dataclass(frozen=True)
class TaskHead:
    """One task's head: its name, output size, problem type and label names (as in config.json)."""

    name: str
    num_labels: int
    problem_type: str = SINGLE_LABEL
    id2label: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"task name {self.name!r}: letters, digits, '_' and '-' only")
        if self.problem_type not in PROBLEM_TYPES:
            raise ConfigError(f"task {self.name}: problem_type must be one of {', '.join(PROBLEM_TYPES)}")
        if self.num_labels < 1 or (self.problem_type == SINGLE_LABEL and self.num_labels < 2):
            raise ConfigError(
                f"task {self.name}: num_labels {self.num_labels} does not fit {self.problem_type}"
            )
        # JSON keys are strings: label ids come back as ints whatever the source.
        object.__setattr__(self, "id2label", {int(k): str(v) for k, v in self.id2label.items()})

    @classmethod
    def of(cls, task: Any) -> TaskHead:
        """A TaskHead from a TaskHead, a dict (config.json) or anything shaped like
        :class:`~smart_tune.tasks.TaskSpec` (``name``, ``num_labels``, ``problem_type``, ``id2label``)."""
        if isinstance(task, TaskHead):
            return task
        if isinstance(task, Mapping):
            return cls(**task)
        return cls(task.name, task.num_labels, task.problem_type, dict(task.id2label))

    def config_for(self, config) -> Any:
        """The config of this task's standard sequence-classification model: ``config`` (the encoder's)
        with this task's labels and problem type, and no task list."""
        task_config = copy.deepcopy(config)
        if hasattr(task_config, TASKS_KEY):
            delattr(task_config, TASKS_KEY)
        task_config.num_labels = self.num_labels  # also resets id2label/label2id to LABEL_i
        if self.id2label:
            task_config.id2label = dict(self.id2label)
            task_config.label2id = {v: k for k, v in self.id2label.items()}
        task_config.problem_type = self.problem_type
        task_config.architectures = None
        return task_config


def build_task_module(
    config, task: TaskHead, encoder: nn.Module | None, trust_remote_code: bool = False
) -> tuple[nn.Module, nn.Module]:
    """Task ``task``'s ``XForSequenceClassification`` for ``config``, its own encoder cut out.

    Returns (the head module, the encoder it now points at): ``encoder`` when given, else the one it was
    built with. The encoder is an attribute of the head module, not a registered submodule, so that the
    head's parameters and state dict are its head layers alone.
    """
    module = AutoModelForSequenceClassification.from_config(
        task.config_for(config), trust_remote_code=trust_remote_code
    )
    prefix = module.base_model_prefix
    own = module._modules.pop(prefix)
    encoder = encoder if encoder is not None else own
    module.__dict__[prefix] = encoder  # found by plain attribute lookup, invisible to parameters()
    return module, encoder


class MultiTaskModel(nn.Module):
    """A shared encoder and one sequence-classification head per task (module docstring).

    Args:
        config: the encoder's config (a ``BertConfig``, ``RobertaConfig``, ...); copied.
        tasks: the tasks' heads (:class:`TaskHead`, dicts or TaskSpecs), in ``task_ids`` order.
        encoder: the shared encoder (e.g. a pre-trained ``BertModel``); a fresh one from ``config``
            when None.

    Attributes: ``tasks`` (tuple of TaskHead), ``task_names``, ``heads`` (ModuleDict: task name →
    its head module), ``config`` (the encoder's config plus ``smart_tune_tasks``).
    """

    # The loss is each head's batch mean; the Trainer must not normalise it by num_items_in_batch.
    accepts_loss_kwargs = False

    def __init__(
        self,
        config,
        tasks: Sequence[Any],
        encoder: nn.Module | None = None,
        trust_remote_code: bool = False,
    ):
        super().__init__()
        self.tasks = tuple(TaskHead.of(t) for t in tasks)
        self.task_names = tuple(t.name for t in self.tasks)
        if not self.tasks or len(set(self.task_names)) != len(self.tasks):
            raise ConfigError(f"a multi-task model needs distinct task names; got {list(self.task_names)}")
        self.config = copy.deepcopy(config)
        setattr(self.config, TASKS_KEY, [asdict(t) for t in self.tasks])
        self.config.architectures = [type(self).__name__]
        heads = {}
        for task in self.tasks:
            heads[task.name], encoder = build_task_module(self.config, task, encoder, trust_remote_code)
        self.base_model_prefix = next(iter(heads.values())).base_model_prefix
        self.add_module(self.base_model_prefix, encoder)
        self.heads = nn.ModuleDict(heads)

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def from_encoder(cls, name_or_path: str, tasks: Sequence[Any], **kwargs) -> MultiTaskModel:
        """The pre-trained encoder at ``name_or_path`` (a hub name, a folder, or a multi-task folder,
        whose encoder is taken) with a fresh head per task. ``kwargs`` go to ``from_pretrained``."""
        trust = bool(kwargs.get("trust_remote_code", False))
        if is_multitask_dir(name_or_path):
            source = cls.from_pretrained(name_or_path, trust_remote_code=trust)
            config = copy.deepcopy(source.config)
            delattr(config, TASKS_KEY)
            model = cls(config, tasks, encoder=source.encoder, trust_remote_code=trust)
        else:
            head = TaskHead.of(tasks[0])
            kwargs.setdefault("ignore_mismatched_sizes", True)
            loaded = AutoModelForSequenceClassification.from_pretrained(
                name_or_path, num_labels=head.num_labels, **kwargs
            )
            model = cls(loaded.config, tasks, encoder=loaded.base_model, trust_remote_code=trust)
        return apply_pooling(model, pooling_of(model))

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, trust_remote_code: bool = False, **config_kwargs
    ) -> MultiTaskModel:
        """A model saved by :meth:`save_pretrained` (or a MultiTaskTrainer checkpoint).
        ``trust_remote_code``: the encoder's own code (its config's ``auto_map``) may run."""
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **config_kwargs)
        tasks = getattr(config, TASKS_KEY, None)
        if not tasks:
            raise ConfigError(f"{path} holds no multi-task model (no {TASKS_KEY} in its config.json)")
        model = cls(config, tasks, trust_remote_code=trust_remote_code)
        # Mean pooling first: its pooler has no weights, so the saved state dict has none for it.
        apply_pooling(model, pooling_of(model))
        model.load_state_dict(_load_weights(path), strict=True)
        return model

    def save_pretrained(self, path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor] | None = None):
        """Write ``config.json`` (with the task list) and ``model.safetensors`` into ``path``."""
        from safetensors.torch import save_file

        os.makedirs(path, exist_ok=True)
        self.config.save_pretrained(path)
        state = state_dict if state_dict is not None else self.state_dict()
        save_file({k: v.detach().contiguous() for k, v in state.items()}, os.path.join(path, WEIGHTS_NAME))

    # -- what SMART and the Trainer ask of a model -------------------------------------------------

    @property
    def encoder(self) -> nn.Module:
        """The shared encoder (``BertModel``, ``RobertaModel``, ...)."""
        return getattr(self, self.base_model_prefix)

    @property
    def base_model(self) -> nn.Module:
        # What transformers' models answer, and what pooling and passes.position_ids_for look for.
        return self.encoder

    def get_input_embeddings(self) -> nn.Module:
        """The shared word embeddings E: what SMART perturbs (as ``inputs_embeds``)."""
        return self.encoder.get_input_embeddings()

    def gradient_checkpointing_enable(self, **kwargs) -> None:
        self.encoder.gradient_checkpointing_enable(**kwargs)

    def task_index(self, task_ids: torch.Tensor | None) -> int:
        """The one task of a batch: ``task_ids`` (B,) must hold one value (checked); None means the
        only task of a one-task model."""
        if task_ids is None:
            if len(self.tasks) == 1:
                return 0
            raise ValueError("a multi-task model needs task_ids with every batch")
        values = set(task_ids.reshape(-1).tolist())  # one device sync per forward
        if len(values) != 1:
            raise ValueError(f"a batch must hold examples of one task; task_ids holds {sorted(values)}")
        index = values.pop()
        if not 0 <= index < len(self.tasks):
            raise ValueError(f"task id {index} out of range: the model has {len(self.tasks)} tasks")
        return int(index)

    def problem_type_for(self, batch: Mapping[str, Any]) -> str:
        """The problem type of the batch's task: what ℓ_s follows (see passes.problem_type_for)."""
        return self.tasks[self.task_index(batch.get("task_ids"))].problem_type

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        task_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        """The shared encoder and the batch's head.

        Args:
            input_ids, attention_mask, token_type_ids, position_ids: (B, L), as for a standard model
                (None ones are not passed on: DistilBERT takes no token types).
            inputs_embeds: (B, L, H) word embeddings in place of ``input_ids`` (SMART's x or x̃).
            labels: (B,) class ids, or (B,) floats for regression.
            task_ids: (B,) long, one value for the whole batch: the index of its task in ``tasks``.
        Returns:
            the head's ``SequenceClassifierOutput``: ``logits`` (B, C_task) and, with labels, ``loss``
            (the head's own: cross-entropy, MSE or BCE, a batch mean).
        """
        head = self.heads[self.task_names[self.task_index(task_ids)]]
        inputs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "position_ids": position_ids,
            "inputs_embeds": inputs_embeds,
            "labels": labels,
        }
        inputs = {k: v for k, v in inputs.items() if v is not None}
        return head(**inputs, **kwargs, return_dict=True)

    # -- one task as a standard model ---------------------------------------------------------------

    def task_model(self, name: str) -> nn.Module:
        """Task ``name``'s head and a copy of the shared encoder as a standalone
        ``AutoModelForSequenceClassification`` model (its own weights: training it leaves this intact)."""
        if name not in self.task_names:
            raise KeyError(f"no task {name!r}; the model has {', '.join(self.task_names)}")
        task = self.tasks[self.task_names.index(name)]
        state = self._task_state(name)
        model = AutoModelForSequenceClassification.from_config(task.config_for(self.config))
        apply_pooling(model, pooling_of(model))  # before loading: a mean pooler has no weights
        model.load_state_dict(state, strict=True)
        return model

    def _task_state(self, name: str) -> dict[str, torch.Tensor]:
        prefix = self.base_model_prefix
        state = {f"{prefix}.{k}": v for k, v in self.encoder.state_dict().items()}
        state.update(self.heads[name].state_dict())
        return state


def _load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    file = os.path.join(path, WEIGHTS_NAME)
    if not os.path.isfile(file):
        raise ConfigError(f"{path} holds no {WEIGHTS_NAME}")
    return load_file(file, device="cpu")


def is_multitask_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding a multi-task model (its config.json lists tasks)."""
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        return False
    try:
        with open(config_file, encoding="utf-8") as f:
            return bool(json.load(f).get(TASKS_KEY))
    except (OSError, ValueError):
        return False


def load_task_model(
    path: str | os.PathLike,
    task_name: str,
    num_labels: int | None = None,
    problem_type: str | None = None,
    id2label: Mapping[int, str] | None = None,
    trust_remote_code: bool = False,
) -> nn.Module:
    """One task of the multi-task model saved in ``path`` as a standard sequence-classification model.

    For a task the model has, and whose head fits ``num_labels`` (when given), its own head; otherwise
    the shared encoder with a fresh head of ``num_labels`` outputs (required then), ``problem_type``
    (default: regression for one output, else single-label) and ``id2label``. Mean pooling, when the
    model was trained with it, is kept.
    """
    model = MultiTaskModel.from_pretrained(path, trust_remote_code=trust_remote_code)
    own = model.tasks[model.task_names.index(task_name)] if task_name in model.task_names else None
    if own is not None and (num_labels is None or num_labels == own.num_labels):
        return model.task_model(task_name)
    if num_labels is None:
        raise ConfigError(
            f"{path} has no task {task_name!r} ({', '.join(model.task_names)}): give num_labels for a new head"
        )
    problem_type = problem_type or (REGRESSION if num_labels == 1 else SINGLE_LABEL)
    head = TaskHead(task_name, num_labels, problem_type, dict(id2label or {}))
    fresh = AutoModelForSequenceClassification.from_config(
        head.config_for(model.config), trust_remote_code=trust_remote_code
    )
    apply_pooling(fresh, pooling_of(fresh))  # before loading: a mean pooler has no weights
    getattr(fresh, model.base_model_prefix).load_state_dict(model.encoder.state_dict(), strict=True)
    return fresh
