"""The non-finite step guard: an optimizer step whose loss or gradients are NaN/Inf applies no update.

The backward of a NaN loss fills the gradients with NaN, and an optimizer step on zeroed gradients would
still move the weights (AdamW's momentum and weight decay). So the whole update (every micro-batch
under gradient accumulation) is dropped: the gradients are set to None just before the optimizer step,
which optimizers then leave untouched (no moment, no step count, no weight decay). The learning-rate
schedule and the step count move on. Under fp16 the grad scaler has recorded the overflow already and
skips its step as usual (taking the gradients away from it would make it fail: "No inf checks were
recorded"), so only the loss is looked at. Not for DeepSpeed, whose engine holds the gradients itself.

:class:`NonfiniteStepGuard` is a ``TrainerCallback`` that owns its state. The trainer tells it what
only the trainer sees (:meth:`note_loss` after each micro-batch, :meth:`note_grad_norm` after the
gradient norm of each optimizer step); everything else comes from the callback arguments.
``on_pre_optimizer_step`` fires after gradient clipping, just before ``optimizer.step()``;
``on_step_end`` once per optimizer step. :attr:`~NonfiniteStepGuard.dropped_last_step` tells the others
(the mean teacher's callback) at ``on_step_end`` whether the guard dropped that step's update.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from transformers import TrainerCallback

from .errors import NonFiniteLoss


def reduce_over_processes(values: list[float], world_size: int, device, op=None) -> list[float]:
    """``values`` reduced over all processes (sum by default) when several run, else as given. A
    collective: every rank must call it at the same point."""
    if world_size <= 1 or not torch.distributed.is_initialized():
        return values
    reduced = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(reduced, op=op if op is not None else torch.distributed.ReduceOp.SUM)
    return reduced.tolist()


class NonfiniteStepGuard(TrainerCallback):
    """Skips the update of an optimizer step whose loss (or gradients) were NaN/Inf, counts it, warns
    once, and stops training after ``max_in_a_row`` such steps in a row (:class:`NonFiniteLoss`).

    Args:
        max_in_a_row: skipped steps in a row that stop training (``smart_max_nonfinite_steps``).
        scaler_enabled: whether an fp16 grad scaler judges the gradients (it then skips by itself).
    """

    def __init__(self, max_in_a_row: int, scaler_enabled: Callable[[], bool] = lambda: False):
        self.max_in_a_row = max_in_a_row
        self.scaler_enabled = scaler_enabled
        self.skipped_steps = 0  # optimizer steps skipped because the loss or gradients were NaN/Inf
        self._in_a_row = 0
        self._nonfinite_loss = False  # a micro-batch of the current optimizer step had a NaN/Inf loss
        self._grad_norm = None  # the Trainer's gradient norm of the current optimizer step
        self._warned = False
        self.dropped_last_step = False  # the last optimizer step applied no update (read at on_step_end)

    # What the trainer reports.
    def note_loss(self, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss).all()):
            self._nonfinite_loss = True

    def note_grad_norm(self, grad_norm) -> None:
        self._grad_norm = grad_norm

    # The callback events.
    def on_train_begin(self, args, state, control, **kwargs):
        self._nonfinite_loss, self._in_a_row = False, 0
        self.dropped_last_step = False

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        drop = self._should_drop(args, optimizer)
        self._nonfinite_loss = self.dropped_last_step = drop
        if drop and not self.scaler_enabled():
            for group in optimizer.param_groups:
                for param in group["params"]:
                    param.grad = None

    def on_step_end(self, args, state, control, **kwargs):
        if not self._nonfinite_loss:
            self._in_a_row = 0
            return
        self._nonfinite_loss = False
        self.skipped_steps += 1
        self._in_a_row += 1
        step = state.global_step
        if self._in_a_row >= self.max_in_a_row:
            first = step - self._in_a_row + 1
            raise NonFiniteLoss(
                f"the loss or its gradients were NaN or Inf at {self._in_a_row} optimizer steps in a row (steps "
                f"{first} to {step}), each skipped without an update; training stopped. Try a lower "
                "--learning-rate, or turn --bf16/--fp16 off (smart_max_nonfinite_steps sets how many "
                "are tolerated)"
            )
        if not self._warned:
            warnings.warn(
                f"smart-tune: the loss or its gradients were NaN or Inf at step {step}; that step was skipped without an "
                f"update (counted in smart_skipped_steps; warned once; {self.max_in_a_row} in a row stop training)",
                RuntimeWarning,
                stacklevel=2,
            )
            self._warned = True

    def _should_drop(self, args, optimizer) -> bool:
        """A NaN/Inf loss in any micro-batch, or NaN/Inf gradients (a finite loss can still have them:
        their norm is then NaN/Inf). Under several processes the decision is taken together (any rank's
        NaN/Inf drops the step on every rank), so that the replicas never part. Under fp16 only the loss
        is looked at: the grad scaler judges the gradients (an overflow of the scaled gradients is its
        normal calibration, not a failure)."""
        drop = self._nonfinite_loss
        grad_norm, self._grad_norm = self._grad_norm, None
        if not drop and not self.scaler_enabled():
            if grad_norm is None:  # not recorded by this transformers version: take max-norms here
                grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
                norms = torch._foreach_norm(grads, float("inf")) if grads else []
                grad_norm = max((float(n) for n in norms), default=0.0)
            drop = not math.isfinite(float(grad_norm))
        reduced = reduce_over_processes(
            [float(drop)], args.world_size, args.device, torch.distributed.ReduceOp.MAX
        )
        return bool(reduced[0])
