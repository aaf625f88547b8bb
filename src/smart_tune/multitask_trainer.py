"""MT-DNN-SMART with the Trainer: :class:`MultiTaskTrainer`, SmartTrainer with task batches and per-task scores.

The training step is SmartTrainer's, unchanged: the objective reads each batch's problem type from its
task (:func:`~smart_tune.passes.problem_type_for`) and the mean teacher is a copy of the whole
:class:`~smart_tune.multitask.MultiTaskModel` (every head), moved once per optimizer step. What differs:

- training batches come from :class:`~smart_tune.multitask_data.TaskBatchSampler` (one task each, MT-DNN's
  order by default), collated by :class:`~smart_tune.multitask_data.MultiTaskCollator`;
- ``eval_dataset`` is a dict {task: that task's dev set}; each is scored with its own metrics, as
  ``eval_<task>_<metric>``, and ``eval_mean_main`` is the mean of the tasks' main metrics (usable as
  ``metric_for_best_model="mean_main"``);
- checkpoints and ``save_model`` write the model's config.json (with its tasks) beside the weights, so
  that :meth:`MultiTaskModel.from_pretrained` and :func:`~smart_tune.multitask.load_task_model` read them.

Under several processes each process takes every world_size-th batch (accelerate), so one optimizer step
may mix tasks across processes; heads unused by a process's batch get no gradient there, which DDP
allows with ``ddp_find_unused_parameters`` (the Trainer's default for a model that is not a
``PreTrainedModel``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from torch.utils.data import DataLoader
from transformers.trainer_utils import seed_worker

from .multitask import MultiTaskModel
from .multitask_data import (
    PROPORTIONAL,
    MultiTaskCollator,
    MultiTaskDataset,
    TaskBatchSampler,
    parse_sampling,
)
from .trainer import SmartTrainer

MEAN_MAIN = "mean_main"

# task name → (compute_metrics for that task's EvalPrediction, the name of its main metric)
TaskMetrics = Mapping[str, tuple[Callable[[Any], dict[str, float]], str]]


def task_metrics_for(tasks: Sequence[Any]) -> dict[str, tuple[Callable[[Any], dict[str, float]], str]]:
    """:class:`TaskMetrics` from task specs (:class:`~smart_tune.tasks.TaskSpec`: ``metrics``, ``main_metric``)."""
    from .metrics import make_compute_metrics

    return {task.name: (make_compute_metrics(task), task.main_metric) for task in tasks}


class MultiTaskTrainer(SmartTrainer):
    """SmartTrainer for a :class:`MultiTaskModel` on a :class:`MultiTaskDataset` (module docstring).

    Args, beside SmartTrainer's:
        task_sampling: ``"proportional"`` (MT-DNN, default), ``"uniform"`` or ``"temperature:T"``.
        task_metrics: eval set name → (compute_metrics, main metric name), e.g. :func:`task_metrics_for`;
            used when ``eval_dataset`` is a dict of tasks. Sets without an entry report their loss only.
        select_on: the eval sets whose main metrics make ``eval_mean_main`` (default: every set with
            metrics), e.g. each task's part held out of train, so that dev, also scored, chooses nothing.

    ``data_collator`` defaults to :class:`MultiTaskCollator` with ``processing_class`` as its tokenizer.
    """

    def __init__(
        self,
        *args,
        task_sampling: str = PROPORTIONAL,
        task_metrics: TaskMetrics | None = None,
        select_on: Sequence[str] | None = None,
        **kwargs,
    ):
        parse_sampling(task_sampling)  # refused before any set-up
        if kwargs.get("data_collator") is None:
            kwargs["data_collator"] = MultiTaskCollator(kwargs.get("processing_class"))
        super().__init__(*args, **kwargs)
        self.task_sampling = task_sampling
        self.task_metrics = dict(task_metrics or {})
        self.select_on = None if select_on is None else tuple(select_on)

    # -- training batches --------------------------------------------------------------------------

    def _task_batch_sampler(self, dataset: MultiTaskDataset) -> TaskBatchSampler:
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return TaskBatchSampler(
            dataset.sizes, self._train_batch_size, seed, self.task_sampling, self.args.dataloader_drop_last
        )

    def get_train_dataloader(self) -> DataLoader:
        """Batches of one task each (:class:`TaskBatchSampler`), through accelerate like the Trainer's own
        (which shards them over processes and skips the trained ones on resume)."""
        if not isinstance(self.train_dataset, MultiTaskDataset):
            return super().get_train_dataloader()
        collator = self._get_collator_with_removed_columns(self.data_collator, description="Training")
        sampler = self._task_batch_sampler(self.train_dataset)
        loader = DataLoader(
            self.train_dataset,
            batch_sampler=sampler,
            collate_fn=collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
            persistent_workers=self.args.dataloader_persistent_workers
            and self.args.dataloader_num_workers > 0,
            worker_init_fn=partial(
                seed_worker, num_workers=self.args.dataloader_num_workers, rank=self.args.process_index
            ),
        )
        prepared = self.accelerator.prepare(loader)
        reach_epoch(prepared, sampler)
        return prepared

    # -- evaluation: every task's dev set, and the mean of the main metrics -------------------------

    def evaluate(
        self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """Each task's dev set scored with its own metrics (``<prefix>_<task>_<metric>``), and
        ``<prefix>_mean_main``: the mean over tasks of their main metric. A dataset that is not a dict
        is evaluated as the Trainer would."""
        sets = eval_dataset if eval_dataset is not None else self.eval_dataset
        if not isinstance(sets, Mapping):
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        metrics: dict[str, float] = {}
        mains = []
        saved = self.compute_metrics
        for name, dataset in sets.items():
            compute, main = self.task_metrics.get(name, (None, None))
            self.compute_metrics = compute
            try:
                # By name when it is the trainer's own set: the Trainer caches its loader by that key.
                scores = super().evaluate(
                    name if eval_dataset is None else dataset, ignore_keys, f"{metric_key_prefix}_{name}"
                )
            finally:
                self.compute_metrics = saved
            metrics.update(scores)
            selects = self.select_on is None or name in self.select_on
            if selects and main is not None and f"{metric_key_prefix}_{name}_{main}" in scores:
                mains.append(scores[f"{metric_key_prefix}_{name}_{main}"])
        if mains:
            metrics[f"{metric_key_prefix}_{MEAN_MAIN}"] = sum(mains) / len(mains)
            self.log({f"{metric_key_prefix}_{MEAN_MAIN}": metrics[f"{metric_key_prefix}_{MEAN_MAIN}"]})
            # Each set's evaluation told the callbacks its own scores; one more call gives them all of
            # them with the mean, so that a callback watching metric_for_best_model ("mean_main", e.g.
            # EarlyStoppingCallback) sees it once per evaluation.
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    # -- saving: the task list travels with the weights ---------------------------------------------

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        """The Trainer's save (weights as ``model.safetensors``, tokenizer, arguments) plus the model's
        config.json: the Trainer writes no config for a model that is not a ``PreTrainedModel``."""
        super()._save(output_dir, state_dict)
        model = self.accelerator.unwrap_model(self.model)
        if self.args.should_save and isinstance(model, MultiTaskModel):
            model.config.save_pretrained(output_dir if output_dir is not None else self.args.output_dir)


def reach_epoch(loader, sampler: TaskBatchSampler) -> None:
    """Let the Trainer's ``set_epoch`` reach ``sampler`` under several processes, also on resume.

    accelerate wraps the sampler in a ``BatchSamplerShard``, which has no ``set_epoch``; on resume the
    Trainer wraps that again (``skip_first_batches``) and sets the epoch on the wrapper's wrapped
    sampler: the shard. Without this, a process resumed in epoch e > 0 would deal epoch 0's order.
    """
    shard = getattr(loader, "batch_sampler", None)
    if shard is not None and shard is not sampler and not hasattr(shard, "set_epoch"):
        shard.set_epoch = sampler.set_epoch


def eval_sets(model: MultiTaskModel, datasets: Mapping[str, Any]) -> dict[str, MultiTaskDataset]:
    """{task: its dev set tagged with the task's id}: ``eval_dataset`` for :class:`MultiTaskTrainer`."""
    return {name: MultiTaskDataset({name: dataset}, model.task_names) for name, dataset in datasets.items()}
