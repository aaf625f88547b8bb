"""The mean teacher of SMART's momentum Bregman proximal point (MBPP).

    θ̃ ← θ_0                                   the teacher starts at the pre-trained weights
    every S optimizer steps:  θ̃ ← (1 − β) θ + β θ̃
    D_Breg(θ, θ̃) = mean_i ℓ_s(f(x_i; θ), f(x_i; θ̃))    added to the loss as μ · D_Breg

β follows the paper's schedule: ``beta_warmup`` (0.99) for the first ``warmup_steps`` optimizer steps
(10% of training), then ``beta`` (0.999). β = 0 makes the teacher the previous iterate: the vanilla
Bregman proximal point (VBPP). The teacher's outputs are targets: it never receives gradients, and its
forward runs under ``torch.inference_mode``.

A β fixed in advance averages over about 1/(1 − β) updates (0.999: a thousand), whatever the run's
length; on a run of a few hundred steps the teacher then stays near the pre-trained weights and D_Breg
pulls the student back there. :func:`beta_for_horizon` instead derives β from a time constant given as
a fraction of the run's updates (``smart_teacher_horizon``).

Buffers (e.g. BatchNorm statistics, position-id tables) are copied from the student, not averaged.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .divergences import smoothness_divergence
from .passes import dropout_policy, forward_inputs, logits_of


def beta_for_horizon(horizon: float, total_updates: int) -> float:
    """β whose EMA time constant is ``horizon`` × the run's teacher updates: β = 1 − 1/τ, τ = horizon · N.

    An EMA with momentum β weighs an update k steps back by (1 − β) β^k, a time constant of
    τ = 1/(1 − β) updates; after N updates the starting weights keep the weight β^N ≈ exp(−1/horizon).
    So ``horizon = 0.1`` forgets the pre-trained weights to e^−10 by the end of the run, and a horizon
    of 1 keeps e^−1 ≈ 37% of them. τ below one update gives β = 0 (the previous iterate: VBPP).
    """
    if horizon <= 0:
        raise ValueError("the teacher's horizon must be positive")
    tau = horizon * max(int(total_updates), 1)
    return max(0.0, 1.0 - 1.0 / tau)


class MeanTeacher:
    """An exponential moving average of a model's parameters, and the divergence to it.

    Args:
        model: the student; the teacher is a deep copy of it taken now (so build the teacher before the
            first optimizer step, and from the unwrapped module under DDP).
        beta: β after the warm-up (paper: 0.999).
        beta_warmup: β during the warm-up (paper: 0.99).
        warmup_steps: optimizer steps that use ``beta_warmup`` (paper: the first 10% of updates).
        update_every: S, optimizer steps between teacher updates (paper: 1).
        dropout: dropout of the teacher's forward: ``"off"`` (eval mode: a deterministic target, and
            on a CPU half the cost of a train-mode forward), ``"independent"`` (train mode, its own
            masks) or ``"shared"`` (train mode, the clean pass's masks: D_Breg then measures only
            the parameter difference).
    """

    def __init__(
        self,
        model: nn.Module,
        beta: float = 0.999,
        beta_warmup: float = 0.99,
        warmup_steps: int = 0,
        update_every: int = 1,
        dropout: str = "off",
    ):
        if not (0.0 <= beta <= 1.0 and 0.0 <= beta_warmup <= 1.0):
            raise ValueError("beta and beta_warmup must lie in [0, 1]")
        if update_every < 1 or warmup_steps < 0:
            raise ValueError("update_every must be >= 1 and warmup_steps >= 0")
        self.beta, self.beta_warmup = beta, beta_warmup
        self.warmup_steps, self.update_every = warmup_steps, update_every
        self.dropout = dropout
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)
        self._params = list(self.model.parameters())
        # The clock of the β schedule and of S: the optimizer steps step() was called after, those that
        # updated the student (a skipped one is not counted: see step()).
        self.optimizer_steps = 0
        self.num_updates = 0  # EMA updates applied

    def beta_at(self, step: int) -> float:
        """β for the update after optimizer step ``step`` (1-based)."""
        return self.beta_warmup if step <= self.warmup_steps else self.beta

    @torch.no_grad()
    def step(self, student: nn.Module) -> bool:
        """Count one optimizer step; every S-th, move θ̃ toward θ. Returns whether the teacher moved.

        Call it after an optimizer step that updated the student only: a skipped step (NaN/Inf, an fp16
        overflow) left θ as it was, and counting it would move θ̃ and the β schedule's clock anyway."""
        self.optimizer_steps += 1
        if self.optimizer_steps % self.update_every:
            return False
        beta = self.beta_at(self.optimizer_steps)
        student_params = [p.detach() for p in student.parameters()]
        if len(self._params) != len(student_params):
            raise RuntimeError("teacher and student have different parameter lists")
        if any(t.dtype != s.dtype for t, s in zip(self._params, student_params)):
            student_params = [s.to(t.dtype) for t, s in zip(self._params, student_params)]
        # θ̃ ← β θ̃ + (1 − β) θ  ==  θ̃.lerp_(θ, 1 − β), one fused call over all tensors
        torch._foreach_lerp_(self._params, student_params, 1 - beta)
        for t, s in zip(self.model.buffers(), student.buffers()):
            t.copy_(s)
        self.num_updates += 1
        return True

    def logits(self, batch: Mapping[str, Any], rng_state: Mapping[str, Any] | None = None):
        """f(x; θ̃) for a batch (labels ignored), (B, K), a plain tensor usable in autograd graphs."""
        self.model.train(self.dropout != "off")
        with torch.inference_mode(), dropout_policy(self.model, self.dropout, rng_state):
            logits = logits_of(self.model(**forward_inputs(batch)))
        # Inference tensors cannot be saved for backward; a clone outside inference mode can.
        return logits.clone()

    def divergence(
        self,
        batch: Mapping[str, Any],
        student_logits: torch.Tensor,
        problem_type: str,
        rng_state: Mapping[str, Any] | None = None,
    ) -> torch.Tensor:
        """D_Breg per example: ℓ_s(f(x; θ), f(x; θ̃)), (B,) float32, gradient into the student only."""
        teacher_logits = self.logits(batch, rng_state)
        return smoothness_divergence(student_logits, teacher_logits, problem_type)

    # Checkpointing: the teacher's weights and its clock travel with the Trainer's checkpoints.
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer_steps": self.optimizer_steps,
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer_steps = int(state["optimizer_steps"])
        self.num_updates = int(state["num_updates"])
