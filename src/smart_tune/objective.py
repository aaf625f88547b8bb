"""SMART's objective for one mini-batch, as one criterion (Algorithm 1, top to bottom).

    θ̃ ← θ_0                                            the teacher starts at the pre-trained weights
    for each mini-batch B:
        x = E(input_ids)                               prepare(): the word embeddings, fed as inputs_embeds
        f(x; θ), L = mean_i ℓ(f(x_i; θ), y_i)          the clean pass (the caller's, or loss())
        R_s = mean_i max_{‖x̃_i − x_i‖∞ ≤ ε} ℓ_s(f(x̃_i; θ), f(x_i; θ))     regularizer: noise, ascent, Π
        D_Breg = mean_i ℓ_s(f(x_i; θ), f(x_i; θ̃))      the mean teacher (no gradient into it)
        F = L + λ_s · R_s + μ · D_Breg                 __call__() returns F and each term
        one optimizer step on F                        the caller's (or the Trainer's)
        θ̃ ← (1 − β) θ + β θ̃                            step_teacher()

:class:`SmartObjective` owns the regularizer (R_s of :class:`~smart_tune.adversarial.AdversarialRegularizer`,
or R3F's :class:`~smart_tune.adversarial.NoiseRegularizer`), the mean teacher, λ_s and μ. It is what
``SmartTrainer.compute_loss`` calls, and what a plain training loop calls:

    objective = SmartObjective(AdversarialRegularizer(), MeanTeacher(model), lambda_s=1.0, mu=1.0)
    for batch in loader:
        terms = objective.loss(model, batch)        # clean pass, R_s, D_Breg and their sum
        terms.total.backward(); optimizer.step(); optimizer.zero_grad()
        objective.step_teacher(model)

What both get from here, written once: the clean pass takes x = E(input_ids) as ``inputs_embeds`` and
R_s reuses that x (one embedding lookup, one (V, H) gradient); the RNG state is captured before the
clean pass when a dropout policy replays it (``shared``); under fp16 the ascent's inner loss is scaled
by the grad scaler's scale (``loss_scale``) so that its gradient does not underflow; and a term that is
NaN/Inf is dropped for the step and named in :attr:`SmartTerms.dropped`, while the step goes on.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .adversarial import AdversarialRegularizer, NoiseRegularizer
from .errors import ConfigError
from .passes import capture_rng_state, problem_type_for, with_embeddings, word_embeddings
from .teacher import MeanTeacher


@dataclass
class PreparedBatch:
    """The clean pass's inputs (``inputs_embeds`` = x when R_s follows, else the batch), x itself
    (B, L, H) or None, and the RNG state captured for the ``shared`` dropout policy (or None)."""

    inputs: dict[str, Any]
    embeds: torch.Tensor | None = None
    rng_state: Mapping[str, Any] | None = None
    regularize: bool = True


@dataclass
class SmartTerms:
    """One mini-batch's objective F = L + λ_s·R_s + μ·D_Breg and its terms (unweighted, as logged).

    ``adversarial`` (R_s), ``bregman`` (D_Breg) and ``delta_linf`` (max ‖x̃ − x‖∞) are None when the
    term was not computed this step or was dropped as non-finite; ``dropped`` names the dropped ones.
    """

    total: torch.Tensor
    task: torch.Tensor
    adversarial: torch.Tensor | None = None
    bregman: torch.Tensor | None = None
    delta_linf: torch.Tensor | float | None = None
    dropped: list[str] = field(default_factory=list)


class SmartObjective:
    """L + λ_s · R_s + μ · D_Breg for one mini-batch, and the teacher's move after each optimizer step.

    Args:
        regularizer: R_s (:class:`AdversarialRegularizer`), R3F's term (:class:`NoiseRegularizer`) or
            None (no smoothness term).
        teacher: the mean teacher θ̃ (:class:`MeanTeacher`) or None (no proximal term). It may be set
            later (``objective.teacher = ...``): the Trainer creates it once training starts.
        lambda_s: λ_s, the weight of R_s.
        mu: μ, the weight of D_Breg.
    """

    def __init__(
        self,
        regularizer: AdversarialRegularizer | NoiseRegularizer | None = None,
        teacher: MeanTeacher | None = None,
        lambda_s: float = 1.0,
        mu: float = 1.0,
    ):
        self.regularizer, self.teacher = regularizer, teacher
        self.lambda_s, self.mu = lambda_s, mu
        self.dropped_count = 0  # terms dropped as NaN/Inf so far (logged as smart_nonfinite)

    def _shares_masks(self) -> bool:
        policies = [getattr(self.regularizer, "dropout", None), getattr(self.teacher, "dropout", None)]
        return "shared" in policies

    def prepare(
        self, model: nn.Module, batch: Mapping[str, Any], device=None, regularize: bool = True
    ) -> PreparedBatch:
        """Before the clean pass: capture the RNG state (``shared`` dropout) and, when R_s follows, look
        x = E(input_ids) up once, so that the clean pass takes it as ``inputs_embeds`` and R_s reuses it.
        ``model`` is the unwrapped module; ``regularize=False`` skips R_s this step (a cost knob)."""
        regularize = regularize and self.regularizer is not None
        device = device if device is not None else batch["input_ids"].device if "input_ids" in batch else None
        rng_state = capture_rng_state(device) if self._shares_masks() else None
        if not regularize:
            return PreparedBatch(dict(batch), None, rng_state, regularize)
        if "input_ids" not in batch:
            # R_s perturbs E(input_ids), with the positions the ids give (RoBERTa's follow the padding):
            # a batch of ready-made inputs_embeds holds neither.
            raise ConfigError(
                "SMART and R3F perturb the word embeddings of input_ids: the batch has no input_ids (only "
                f"{', '.join(sorted(batch)) or 'nothing'}); give input_ids, not inputs_embeds"
            )
        embeds = word_embeddings(model, batch["input_ids"])
        return PreparedBatch(with_embeddings(model, batch, embeds), embeds, rng_state, regularize)

    def __call__(
        self,
        model: nn.Module,
        batch: Mapping[str, Any],
        task_loss: torch.Tensor,
        clean_logits: torch.Tensor,
        prepared: PreparedBatch,
        loss_scale: float = 1.0,
        term_scale: float = 1.0,
    ) -> SmartTerms:
        """F from the clean pass's task loss L and logits f(x; θ) (with their graph).

        ``loss_scale``: the fp16 grad scaler's scale, for the ascent's inner loss. ``term_scale``
        multiplies λ_s·R_s and μ·D_Breg, so that they accumulate like L under gradient accumulation
        when L is already normalised over the accumulated batch (the Trainer's case).
        """
        problem_type = problem_type_for(model, batch)  # per batch: a multi-task model's task decides
        terms = SmartTerms(total=task_loss, task=task_loss)
        if prepared.regularize:
            reg = self.regularizer(
                model,
                batch,
                clean_logits,
                problem_type,
                prepared.rng_state,
                loss_scale,
                embeds=prepared.embeds,
            )
            terms.delta_linf = reg.delta_linf
            if reg.nonfinite:
                terms.dropped.append("R_s")
            else:
                terms.adversarial = reg.loss
                terms.total = terms.total + self.lambda_s * term_scale * reg.loss
        if self.teacher is not None:
            breg = self.teacher.divergence(batch, clean_logits, problem_type, prepared.rng_state).mean()
            if torch.isfinite(breg):
                terms.bregman = breg
                terms.total = terms.total + self.mu * term_scale * breg
            else:
                terms.dropped.append("D_Breg")
        if terms.dropped:
            self._note_dropped(terms.dropped)
        return terms

    def _note_dropped(self, dropped: list[str]) -> None:
        if not self.dropped_count:
            warnings.warn(
                f"smart-tune: non-finite {' and '.join(dropped)}; that step goes on without the term "
                "(counted in smart_nonfinite; warned once)",
                RuntimeWarning,
                stacklevel=3,
            )
        self.dropped_count += len(dropped)

    def loss(self, model: nn.Module, batch: Mapping[str, Any], loss_scale: float = 1.0) -> SmartTerms:
        """The whole objective in one call, for a plain loop: prepare, the clean pass (the model's own
        loss on ``batch["labels"]``), then R_s and D_Breg."""
        prepared = self.prepare(model, batch)
        out = model(**prepared.inputs)
        return self(model, batch, out.loss, out.logits, prepared, loss_scale)

    def step_teacher(self, model: nn.Module) -> bool:
        """After an optimizer step that updated the model (not a skipped one): θ̃ ← (1 − β) θ + β θ̃ (every
        S-th step). Whether the teacher moved."""
        return self.teacher.step(model) if self.teacher is not None else False


class TermMeans:
    """Each logged term's mean over the steps between two logs (``smart_task_loss`` = L,
    ``smart_adv_loss`` = R_s, ``smart_breg_loss`` = D_Breg, unweighted; ``smart_delta_linf``)."""

    NAMES = ("smart_task_loss", "smart_adv_loss", "smart_breg_loss", "smart_delta_linf")

    def __init__(self):
        self.sums = dict.fromkeys(self.NAMES, 0.0)
        self.counts = dict.fromkeys(self.NAMES, 0)

    def add(self, terms: SmartTerms, task_scale: float = 1.0) -> None:
        """Add one mini-batch's terms; ``task_scale`` multiplies L (a micro-batch's share of a loss
        normalised over the accumulated batch, times the accumulation steps, is that batch's L)."""
        values = (terms.task, terms.adversarial, terms.bregman, terms.delta_linf)
        for name, value in zip(self.NAMES, values):
            if value is not None:
                value = float(value.detach()) if torch.is_tensor(value) else float(value)
                self.sums[name] += value * task_scale if name == "smart_task_loss" else value
                self.counts[name] += 1

    def pop(self, reduce=lambda values: values) -> dict[str, float]:
        """The means since the last call, then start again. ``reduce`` sums a list of floats over
        processes (a collective: every rank calls it, even for a term it skipped)."""
        totals = reduce([self.sums[n] for n in self.NAMES] + [float(self.counts[n]) for n in self.NAMES])
        sums, counts = totals[: len(self.NAMES)], totals[len(self.NAMES) :]
        self.__init__()
        return {n: total / count for n, total, count in zip(self.NAMES, sums, counts) if count > 0}
