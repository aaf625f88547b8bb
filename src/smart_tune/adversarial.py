"""R_s, SMART's smoothness-inducing adversarial regularizer, and R3F's noise-only variant.

Both perturb the **word embeddings** x = E(input_ids) (what a Hugging Face model takes as
``inputs_embeds``) and feed x̃ back through ``model(inputs_embeds=x̃, ...)``, so that position and
token-type embeddings, LayerNorm and dropout are applied exactly once. Padding positions are never
perturbed.

    R_s(θ) = mean_i max_{‖x̃_i − x_i‖_∞ ≤ ε} ℓ_s(f(x̃_i; θ), f(x_i; θ))          (Algorithm 1)

The maximisation is approximated as in Algorithm 1:

    x̃ ← x + ν,  ν ~ N(0, σ²)                                  # line "x̃_i ← x_i + ν_i"
    repeat T_x̃ times:
        g ← ∇_x̃ ℓ_s(f(x̃), f(x))          with f(x) a fixed target
        g̃ ← g / ‖g‖_∞                      per example (over tokens and hidden units)
        x̃ ← Π_{‖x̃ − x‖_∞ ≤ ε}(x̃ + η g̃)   the projection is an elementwise clamp of x̃ − x to [−ε, ε]
    R_s = mean_i ℓ_s(f(x̃_i), f(x_i))      gradient into θ through both sides

Choices the paper leaves open, each a named option (see SMART.md):

- ``dropout``: the perturbed passes use ``"independent"`` dropout masks (the paper's code), replay the
  clean pass's masks (``"shared"``: the RNG state is captured before the clean forward), or run with
  dropout ``"off"`` (the clean reference keeps its masks).
- ``scale``: ε, σ and η in ``"absolute"`` units, or ``"relative"`` to the embedding scale (each is
  multiplied by the mean |x| over the batch's real tokens; MiniLM's is about 0.04).
- ``projection``: ``"ball"`` (the paper) or ``"official"``: mt-dnn's normalisation, x̃ − x ←
  (δ + η g)/(‖δ + η g‖_∞ per token + ε), which gives perturbations of size about 1 per token whatever ε.
  For comparison only.

The initial noise ν is clamped to the ε-ball too, so every perturbed pass satisfies ‖x̃ − x‖_∞ ≤ ε
(with σ = ε, unclamped Gaussian noise would leave the ball for about a third of its coordinates).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .divergences import smoothness_divergence
from .passes import (  # noqa: F401  (capture_rng_state, check_accepts_inputs_embeds: public here too)
    DROPOUT_POLICIES,
    capture_rng_state,
    check_accepts_inputs_embeds,
    check_last_token_is_real,
    derived_inputs,
    dropout_policy,
    frozen_parameters,
    logits_of,
    model_inputs,
    position_ids_for,
    real_token_mask,
    word_embeddings,
)

SCALES = ("absolute", "relative")
PROJECTIONS = ("ball", "official")
NOISE_TYPES = ("uniform", "normal")


@dataclass
class RegularizerOutput:
    """What one call of a regularizer returns.

    Attributes:
        loss: scalar, mean over the batch of ℓ_s(f(x̃), f(x)); ``None`` when the step was skipped
            because the inner gradient or the divergence was not finite.
        per_example: (B,) float32 divergences (``None`` when skipped).
        delta_linf: max over the batch of ‖x̃ − x‖_∞ actually used (a 0-d tensor: no device sync).
        nonfinite: True when the term was dropped for this step.
    """

    loss: torch.Tensor | None
    per_example: torch.Tensor | None
    delta_linf: torch.Tensor | float
    nonfinite: bool = False


def embedding_scale(embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |x| over real tokens' coordinates: the unit of the ``"relative"`` scale (a 0-d tensor)."""
    total = (embeds.detach().abs().float() * mask).sum()
    return total / (mask.sum() * embeds.shape[-1]).clamp_min(1.0)


# --------------------------------------------------------------------------------------------------
# The regularizers.


class _EmbeddingRegularizer:
    """What R_s and R3F share: build x, run perturbed passes with the right inputs and dropout."""

    def __init__(self, dropout: str, scale: str):
        if dropout not in DROPOUT_POLICIES:
            raise ValueError(f"dropout policy must be one of {DROPOUT_POLICIES}, got {dropout!r}")
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        self.dropout = dropout
        self.scale = scale

    def _prepare(self, model: nn.Module, batch: Mapping[str, Any], embeds: torch.Tensor | None):
        input_ids = batch["input_ids"]
        check_last_token_is_real(model, input_ids)
        if embeds is None:
            embeds = word_embeddings(model, input_ids)
        mask = real_token_mask(batch, input_ids).to(embeds.dtype)
        inputs = model_inputs(batch)
        inputs.update(derived_inputs(model, input_ids, batch))
        unit = embedding_scale(embeds, mask) if self.scale == "relative" else 1.0
        return embeds, mask, inputs, unit

    def _forward(self, model, embeds, inputs, rng_state):
        with dropout_policy(model, self.dropout, rng_state):
            return logits_of(model(inputs_embeds=embeds, **inputs))


class AdversarialRegularizer(_EmbeddingRegularizer):
    """R_s of SMART: noise, T_x̃ projected ascent steps on ℓ_s, then ℓ_s at the perturbed point.

    Args:
        epsilon: ε, radius of the ℓ∞ ball around x (paper: 1e-5).
        sigma: σ, standard deviation of the initial noise ν (paper: 1e-5).
        eta: η, ascent step size (paper: 1e-3).
        steps: T_x̃, number of ascent steps (paper: 1).
        dropout: ``"independent"`` | ``"shared"`` | ``"off"`` (module docstring).
        scale: ``"absolute"`` | ``"relative"`` units for ε, σ, η.
        projection: ``"ball"`` (paper) | ``"official"`` (mt-dnn's normalisation, for comparison).

    Call it with the model, the batch (``input_ids``, ``attention_mask``, ...) and the clean logits
    f(x) (with their graph, so that R_s's gradient reaches θ through both sides); it returns a
    :class:`RegularizerOutput`. Pass ``embeds``, the word embeddings E(input_ids) (B, L, H) that the
    clean pass took as ``inputs_embeds``, to save a second lookup and a second (V, H) embedding
    gradient; by default they are looked up again. ``loss_scale`` multiplies the inner loss before its backward so that a
    half-precision gradient does not underflow; the per-example ℓ∞ normalisation removes it again.
    """

    def __init__(
        self,
        epsilon: float = 1e-5,
        sigma: float = 1e-5,
        eta: float = 1e-3,
        steps: int = 1,
        dropout: str = "independent",
        scale: str = "absolute",
        projection: str = "ball",
    ):
        super().__init__(dropout, scale)
        if projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
        if epsilon <= 0 or sigma < 0 or eta <= 0 or steps < 0:
            raise ValueError("need epsilon > 0, sigma >= 0, eta > 0 and steps >= 0")
        self.epsilon, self.sigma, self.eta, self.steps = epsilon, sigma, eta, steps
        self.projection = projection

    def project(self, delta: torch.Tensor, epsilon) -> torch.Tensor:
        """Π onto the ℓ∞ ball of radius ε around x: clamp every coordinate of x̃ − x to [−ε, ε]."""
        return delta.clamp(-epsilon, epsilon)

    def ascent_step(self, delta: torch.Tensor, grad: torch.Tensor, eta, epsilon) -> torch.Tensor:
        """One update of x̃ − x from the gradient g = ∇_x̃ ℓ_s, (B, L, H) each.

        ``"ball"``: δ + η g/‖g‖_∞ (per example), then the clamp to [−ε, ε].
        ``"official"``: (δ + η g)/(‖δ + η g‖_∞ per token + ε), mt-dnn's rule.
        """
        if self.projection == "official":
            step = delta + eta * grad
            return step / (step.abs().amax(dim=-1, keepdim=True) + epsilon)
        g_inf = grad.abs().amax(dim=(1, 2), keepdim=True)
        # An example whose gradient is exactly zero (e.g. saturated) keeps its δ: 0/0 → 0, not NaN.
        direction = grad / torch.where(g_inf > 0, g_inf, torch.ones_like(g_inf))
        return self.project(delta + eta * direction, epsilon)

    def __call__(
        self,
        model: nn.Module,
        batch: Mapping[str, Any],
        clean_logits: torch.Tensor,
        problem_type: str,
        rng_state: Mapping[str, Any] | None = None,
        loss_scale: float = 1.0,
        embeds: torch.Tensor | None = None,
    ) -> RegularizerOutput:
        embeds, mask, inputs, unit = self._prepare(model, batch, embeds)
        epsilon, sigma, eta = self.epsilon * unit, self.sigma * unit, self.eta * unit
        target = clean_logits.detach()
        x = embeds.detach()

        # x̃ ← x + ν, ν ~ N(0, σ²), off the padding, and inside the ball (the official rule has no ball).
        delta = torch.randn_like(x) * sigma
        if self.projection == "ball":
            delta = self.project(delta, epsilon)
        delta = delta * mask
        for _ in range(self.steps):
            delta.requires_grad_(True)
            with frozen_parameters(model):
                adv_logits = self._forward(model, x + delta, inputs, rng_state)
                # Sum, not mean: each example's gradient is then its own, independent of batch size.
                inner = smoothness_divergence(adv_logits, target, problem_type).sum()
                (grad,) = torch.autograd.grad(inner * loss_scale, delta)
            if not torch.isfinite(grad).all():
                return RegularizerOutput(None, None, 0.0, nonfinite=True)
            delta = self.ascent_step(delta.detach(), grad, eta, epsilon) * mask

        # R_s at x̃: x keeps its graph so the embedding matrix gets R_s's gradient as in f(x̃; θ).
        adv_logits = self._forward(model, embeds + delta.to(embeds.dtype), inputs, rng_state)
        per_example = smoothness_divergence(adv_logits, clean_logits, problem_type)
        delta_linf = delta.detach().abs().amax()
        if not torch.isfinite(per_example).all():
            return RegularizerOutput(None, None, delta_linf, nonfinite=True)
        return RegularizerOutput(per_example.mean(), per_example, delta_linf)


class NoiseRegularizer(_EmbeddingRegularizer):
    """R3F (Aghajanyan et al. 2021): ℓ_s between f(x) and f(x + ν) for one random ν, no ascent.

    Args:
        epsilon: noise size: ν ~ U(−ε, ε) (``noise="uniform"``, fairseq's default) or N(0, ε²) (``"normal"``).
        noise: ``"uniform"`` | ``"normal"``.
        dropout, scale: as for :class:`AdversarialRegularizer`.
    """

    def __init__(
        self,
        epsilon: float = 1e-5,
        noise: str = "uniform",
        dropout: str = "independent",
        scale: str = "absolute",
    ):
        super().__init__(dropout, scale)
        if noise not in NOISE_TYPES:
            raise ValueError(f"noise must be one of {NOISE_TYPES}, got {noise!r}")
        if epsilon <= 0:
            raise ValueError("need epsilon > 0")
        self.epsilon, self.noise = epsilon, noise

    def __call__(
        self,
        model: nn.Module,
        batch: Mapping[str, Any],
        clean_logits: torch.Tensor,
        problem_type: str,
        rng_state: Mapping[str, Any] | None = None,
        loss_scale: float = 1.0,
        embeds: torch.Tensor | None = None,
    ) -> RegularizerOutput:
        embeds, mask, inputs, unit = self._prepare(model, batch, embeds)
        epsilon = self.epsilon * unit
        if self.noise == "uniform":
            noise = (torch.rand_like(embeds, dtype=torch.float32) * 2 - 1) * epsilon
        else:
            noise = torch.randn_like(embeds, dtype=torch.float32) * epsilon
        noise = (noise * mask).to(embeds.dtype)
        noisy_logits = self._forward(model, embeds + noise, inputs, rng_state)
        per_example = smoothness_divergence(noisy_logits, clean_logits, problem_type)
        delta_linf = noise.detach().abs().amax()
        if not torch.isfinite(per_example).all():
            return RegularizerOutput(None, None, delta_linf, nonfinite=True)
        return RegularizerOutput(per_example.mean(), per_example, delta_linf)
