"""The fine-tuning recipe of ``smart-tune train``: every default a run gets unless told otherwise.

A run's options come in layers, lowest first (:mod:`smart_tune.options` stacks them as the parser's
defaults): the dataclasses' own defaults (:class:`~smart_tune.options.RunOptions`,
:class:`~smart_tune.config.SmartTrainingArguments`), then this recipe, then the method's preset
(:mod:`smart_tune.presets`), then the ``--config`` file, then the flags typed. This module is the one
place where the command's own choices live:

- :data:`RECIPE`: the usual GLUE fine-tuning recipe (AdamW, linear decay with 10% warm-up, gradient
  clipping at 1, batch 16, 3 epochs at 2e-5), whatever the data;
- :func:`run_defaults`: what follows from the run itself: where the run goes, how the kept model is
  chosen (each epoch scored on the held-out part of train, or on dev) and what the machine suits.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

HOLDOUT = "holdout"  # the split held out of train by --validation-from-train (selection only)

# TrainingArguments values this command uses whatever the data.
RECIPE: Mapping[str, Any] = {
    "learning_rate": 2e-5,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 64,
    "num_train_epochs": 3.0,
    "warmup_steps": 0.1,
    "weight_decay": 0.01,
    "max_grad_norm": 1.0,
    "logging_steps": 50,
    "report_to": "none",
    "seed": 42,
    "save_total_limit": 2,
    "train_sampling_strategy": "group_by_length",
    "dataloader_num_workers": 0,
}


def default_output_dir(task: str | None, name: str, seed: Any) -> str:
    """``runs/TASK-METHOD-seedSEED`` (``custom`` for your own files; METHOD is the run's label)."""
    return os.path.join("runs", f"{task or 'custom'}-{name}-seed{seed}")


def run_defaults(
    chosen: Mapping[str, Any],
    main_metric: str,
    has_dev: bool,
    progress: bool,
    accelerator: bool,
    best_metric: str | None = None,
) -> dict[str, Any]:
    """The TrainingArguments defaults that follow from the run: ``chosen`` holds what the layers above
    the recipe set (preset, config file, flags), which these defaults never override.

    - Evaluation and saving every epoch when anything is scored; the kept model is the best epoch by
      the task's main metric, on the held-out part of train with ``--validation-from-train`` (the
      Trainer then scores it and dev each epoch, as ``eval_holdout_*`` and ``eval_<dev>_*``: dev picks
      nothing), else on dev. ``best_metric``: the logged name that chooses instead (multi-task:
      ``eval_mean_main``, the mean of the tasks' main metrics on the selecting sets).
    - Saving follows evaluation (``--eval-strategy steps`` saves every ``--eval-steps``).
    - Pinned memory only on an accelerator (on a CPU the DataLoader warns about it at every
      evaluation); progress bars on a terminal only (``progress``).
    """
    holdout = chosen.get("validation_from_train") is not None
    defaults: dict[str, Any] = {
        "dataloader_pin_memory": accelerator,
        "disable_tqdm": not progress,
    }
    if has_dev or holdout:
        eval_strategy = chosen.get("eval_strategy", "epoch")
        selector = f"eval_{HOLDOUT}_" if holdout else "eval_"
        defaults.update(
            eval_strategy="epoch",
            save_strategy=eval_strategy,
            load_best_model_at_end=True,
            metric_for_best_model=best_metric or f"{selector}{main_metric}",
            greater_is_better=True,
        )
    else:
        defaults.update(eval_strategy="no", save_strategy="epoch")
    return defaults


def reconcile(options: dict[str, Any]) -> None:
    """After the layers are stacked: evaluation every few steps saves every few steps too, whatever
    the save strategy says (the kept model is a step's evaluation, which needs that step's checkpoint),
    and at the same steps unless ``save_steps`` is given. TrainingArguments' own default (500) passes its
    check (a multiple of ``--eval-steps 2``) yet saves none of the steps evaluated before it: the best
    one is recorded as kept while the last is saved."""
    if options.get("eval_strategy") == "steps" and options.get("save_strategy") == "epoch":
        options["save_strategy"] = "steps"
    if options.get("eval_strategy") == "steps" and options.get("save_strategy") == "steps":
        # TrainingArguments evaluates every logging_steps when eval_steps is unset: save there too.
        options.setdefault("save_steps", options.get("eval_steps") or options.get("logging_steps"))
