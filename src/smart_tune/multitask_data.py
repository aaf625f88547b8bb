"""Multi-task data: the tasks' examples side by side, batches of one task each, and their collation.

MT-DNN's schedule (Liu et al. 2019, Algorithm 1): every epoch, cut each task's shuffled data into
mini-batches, shuffle all tasks' mini-batches together, and visit them in that order, so that each task
is visited in proportion to its number of batches and every example is seen once per epoch.
:class:`TaskBatchSampler` does that (``"proportional"``, the default) and two sampled alternatives:

- ``"uniform"``: each step's task drawn with equal probability;
- ``"temperature:T"``: task k drawn with probability ∝ n_k^(1/T), n_k its number of examples (T = 1:
  proportional in expectation; T → ∞: uniform; multilingual pre-training uses T ≈ 2 to 5).

A sampled epoch has as many batches as a proportional one, Σ_k ⌈n_k / b⌉ (so ``num_train_epochs``
costs the same whatever the rule). Each task deals its batches from its own shuffled stream, reshuffled
when used up: a small task drawn often cycles over its data several times in an epoch, a large task
drawn rarely sees part of it (a different part each epoch).

The order depends on the seed and the epoch only (a generator of its own, reseeded to ``seed + epoch``
as in :class:`~smart_tune.trainer.SeededLengthGroupedSampler`): every method (vanilla, R3F, SMART), which
consume the global RNG differently, sees the same batches, and a resumed run sees the batches of an
uninterrupted one.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from .errors import ConfigError

PROPORTIONAL, UNIFORM, TEMPERATURE = "proportional", "uniform", "temperature"


def parse_sampling(rule: str) -> float | None:
    """The temperature of a sampling rule: None for ``proportional`` (MT-DNN's shuffle of all batches),
    ``inf`` for ``uniform``, T for ``temperature:T`` (T > 0)."""
    if rule == PROPORTIONAL:
        return None
    if rule == UNIFORM:
        return math.inf
    name, _, value = rule.partition(":")
    try:
        temperature = float(value)
    except ValueError:
        temperature = -1.0
    if name != TEMPERATURE or not temperature > 0:
        raise ConfigError(
            f"task sampling must be proportional, uniform or temperature:T (T > 0); got {rule!r}"
        )
    return temperature


class MultiTaskDataset(Dataset):
    """Several tasks' datasets as one, each example tagged with its task's index (``task_ids``).

    Args:
        datasets: task name → its (tokenized) dataset of example dicts.
        task_names: every task of the model, in its ``task_ids`` order (default: the keys of
            ``datasets``); a dataset's task must be one of them. An evaluation set of one task is
            ``MultiTaskDataset({name: dev}, model.task_names)``.

    Examples are laid out task after task: task ``names[i]`` holds indices
    ``offsets[i] .. offsets[i] + sizes[i] - 1``.
    """

    def __init__(self, datasets: Mapping[str, Dataset], task_names: Sequence[str] | None = None):
        task_names = list(task_names) if task_names is not None else list(datasets)
        unknown = [name for name in datasets if name not in task_names]
        if unknown or not datasets:
            raise ConfigError(f"tasks {unknown} are not among the model's tasks {task_names}")
        self.names = list(datasets)
        self.task_ids = [task_names.index(name) for name in self.names]
        self.datasets = [datasets[name] for name in self.names]
        self.sizes = [len(d) for d in self.datasets]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]

    def __len__(self) -> int:
        return sum(self.sizes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = bisect.bisect_right(self.offsets, index) - 1
        row = dict(self.datasets[i][index - self.offsets[i]])
        row["task_ids"] = self.task_ids[i]
        return row


class TaskBatchSampler(Sampler[list[int]]):
    """Batches of one task each, by MT-DNN's rule or a sampled one (module docstring).

    Args:
        sizes: examples per task, in the dataset's layout order (``MultiTaskDataset.sizes``).
        batch_size: b, examples per batch (a task's last batch may be smaller unless ``drop_last``).
        seed: the order is a function of ``seed + epoch`` only.
        sampling: ``"proportional"`` | ``"uniform"`` | ``"temperature:T"``.
        drop_last: drop each task's last incomplete batch.

    Yields lists of dataset indices; ``len()`` is the number of batches per epoch, Σ_k ⌈n_k / b⌉.

    Its ``batch_size`` attribute is None (b is ``examples_per_batch``): a short batch may come anywhere
    in the order, and accelerate, sharding the batches over processes, must take them as batches of
    varying size. Told a size, it drops every round of batches that ends with a short one (the
    Trainer's epoch then ends early: data unseen, and resumed runs skip the wrong number of batches)
    and fills a short last batch up with examples of other tasks.
    """

    batch_size = None  # read by accelerate's BatchSamplerShard: see the class docstring

    def __init__(
        self,
        sizes: Sequence[int],
        batch_size: int,
        seed: int = 0,
        sampling: str = PROPORTIONAL,
        drop_last: bool = False,
    ):
        if batch_size < 1 or not sizes or min(sizes) < 1:
            raise ConfigError("task batches need batch_size >= 1 and at least one example per task")
        self.sizes, self.examples_per_batch, self.seed = list(sizes), batch_size, seed
        self.sampling, self.temperature = sampling, parse_sampling(sampling)
        self.drop_last = drop_last
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer (and accelerate) before each epoch, also when it resumes."""
        self.epoch = epoch

    def batches_of(self, task: int) -> int:
        n, b = self.sizes[task], self.examples_per_batch
        return max(n // b, 1) if self.drop_last else math.ceil(n / b)

    def __len__(self) -> int:
        return sum(self.batches_of(k) for k in range(len(self.sizes)))

    def task_probabilities(self) -> torch.Tensor:
        """(K,) probability of drawing each task at a step of a sampled rule: ∝ n_k^(1/T)."""
        sizes = torch.tensor(self.sizes, dtype=torch.float64)
        weights = (
            torch.ones_like(sizes) if self.temperature == math.inf else sizes ** (1.0 / self.temperature)
        )
        return weights / weights.sum()

    def _task_batches(self, task: int, generator: torch.Generator) -> list[list[int]]:
        """Task ``task``'s examples, shuffled, cut into batches of b (dataset indices)."""
        order = (torch.randperm(self.sizes[task], generator=generator) + self.offsets[task]).tolist()
        b = self.examples_per_batch
        batches = [order[i : i + b] for i in range(0, len(order), b)]
        if self.drop_last and len(batches) > 1 and len(batches[-1]) < b:
            batches.pop()
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.temperature is None:
            # MT-DNN: every task's batches, all shuffled together.
            batches = [b for k in range(len(self.sizes)) for b in self._task_batches(k, generator)]
            yield from (batches[i] for i in torch.randperm(len(batches), generator=generator).tolist())
            return
        draws = torch.multinomial(self.task_probabilities(), len(self), replacement=True, generator=generator)
        streams: dict[int, list[list[int]]] = {}
        for task in draws.tolist():
            if not streams.get(task):  # a task's batches used up (or not dealt yet): reshuffle it
                streams[task] = self._task_batches(task, generator)[::-1]
            yield streams[task].pop()


class MultiTaskCollator:
    """Pads one task's examples into a batch and adds ``task_ids`` (B,) long.

    Args:
        tokenizer: pads ``input_ids`` etc. to the batch's longest example (``DataCollatorWithPadding``);
            None stacks examples that are already of one length (transformers' default collator).
        pad_to_multiple_of: as for ``DataCollatorWithPadding``.

    A batch mixing tasks is refused: each batch goes through one head.
    """

    def __init__(self, tokenizer=None, pad_to_multiple_of: int | None = None):
        from transformers import DataCollatorWithPadding, default_data_collator

        self.tokenizer = tokenizer
        self._collate = (
            DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
            if tokenizer is not None
            else default_data_collator
        )

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        ids = {int(f["task_ids"]) for f in features}
        if len(ids) != 1:
            raise ValueError(f"a batch must hold examples of one task; it holds tasks {sorted(ids)}")
        batch = dict(self._collate([{k: v for k, v in f.items() if k != "task_ids"} for f in features]))
        batch["task_ids"] = torch.full((len(features),), ids.pop(), dtype=torch.long)
        return batch
