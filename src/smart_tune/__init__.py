"""smart-tune: SMART fine-tuning (Jiang et al., ACL 2020) for Hugging Face models.

Trainer users change two names: ``SmartTrainingArguments`` and ``SmartTrainer``. People with their own
training loop use the pieces: ``AdversarialRegularizer`` (R_s), ``NoiseRegularizer`` (R3F),
``MeanTeacher`` (momentum Bregman proximal point) and the divergences ℓ_s. Multi-task SMART (MT-DNN-SMART):
``MultiTaskModel`` (a shared encoder, one head per task), ``MultiTaskDataset`` and ``MultiTaskTrainer``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .errors import ConfigError, DataError, SmartTuneError

__version__ = "0.1.0"

# The names below load their module (and with it torch and transformers) on first use, so that
# `smart-tune --help` and `--version`, which import this package, answer at once.
_LAZY = {
    "AdversarialRegularizer": "adversarial",
    "NoiseRegularizer": "adversarial",
    "RegularizerOutput": "adversarial",
    "capture_rng_state": "adversarial",
    "binary_symmetric_kl": "divergences",
    "smoothness_divergence": "divergences",
    "squared_error": "divergences",
    "symmetric_kl": "divergences",
    "MeanTeacher": "teacher",
    "SmartObjective": "objective",
    "SmartTerms": "objective",
    "SmartTrainer": "trainer",
    "SmartTrainingArguments": "config",
    "MultiTaskModel": "multitask",
    "TaskHead": "multitask",
    "is_multitask_dir": "multitask",
    "load_task_model": "multitask",
    "MultiTaskCollator": "multitask_data",
    "MultiTaskDataset": "multitask_data",
    "TaskBatchSampler": "multitask_data",
    "MultiTaskTrainer": "multitask_trainer",
}

if TYPE_CHECKING:
    from .adversarial import AdversarialRegularizer, NoiseRegularizer, RegularizerOutput, capture_rng_state
    from .config import SmartTrainingArguments
    from .divergences import binary_symmetric_kl, smoothness_divergence, squared_error, symmetric_kl
    from .multitask import MultiTaskModel, TaskHead, is_multitask_dir, load_task_model
    from .multitask_data import MultiTaskCollator, MultiTaskDataset, TaskBatchSampler
    from .multitask_trainer import MultiTaskTrainer
    from .objective import SmartObjective, SmartTerms
    from .teacher import MeanTeacher
    from .trainer import SmartTrainer


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smart_tune' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AdversarialRegularizer",
    "ConfigError",
    "DataError",
    "MeanTeacher",
    "MultiTaskCollator",
    "MultiTaskDataset",
    "MultiTaskModel",
    "MultiTaskTrainer",
    "NoiseRegularizer",
    "RegularizerOutput",
    "SmartObjective",
    "SmartTerms",
    "SmartTrainer",
    "SmartTrainingArguments",
    "SmartTuneError",
    "TaskBatchSampler",
    "TaskHead",
    "__version__",
    "binary_symmetric_kl",
    "capture_rng_state",
    "is_multitask_dir",
    "load_task_model",
    "smoothness_divergence",
    "squared_error",
    "symmetric_kl",
]
