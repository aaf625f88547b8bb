"""ℓ_s, the smoothness divergence of SMART, one function per output type.

Every function takes two model outputs of the same shape and returns one value per example, shape (B,),
computed in float32 whatever precision the model ran in (half-precision logits overflow in exp/log).
Gradient flows into both arguments; callers ``detach()`` a side to make it a fixed target.

- classification (softmax over K classes): symmetric KL, Σ_k (p_k − q_k)(log p_k − log q_k)
- regression (``num_labels == 1``): squared error (p − q)², shapes matched, never broadcast
- multi-label (independent sigmoids): Σ_labels of the binary symmetric KL, which simplifies to
  (σ(a) − σ(b)) · (a − b) for logits a, b.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL


def symmetric_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(P‖Q) + KL(Q‖P) for P = softmax(p_logits), Q = softmax(q_logits).

    Args:
        p_logits, q_logits: (B, K) logits, any float dtype.
    Returns:
        (B,) float32, ≥ 0, zero where the two distributions are equal.
    """
    log_p = F.log_softmax(p_logits.float(), dim=-1)
    log_q = F.log_softmax(q_logits.float(), dim=-1)
    # (p − q)(log p − log q) is the sum of both KL directions, term by term; every factor stays finite
    # for extreme logits because log_softmax never returns −inf in float32 for finite inputs.
    return ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(dim=-1)


def squared_error(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """(p − q)² per example for regression outputs.

    Args:
        p, q: (B,) or (B, 1) (or (B, D) for several regression targets); the two must hold the same
            number of values per example. (B,) against (B, 1) is reshaped, never broadcast to (B, B).
    Returns:
        (B,) float32, summed over output dimensions.
    """
    p = p.float().reshape(p.shape[0], -1)
    q = q.float().reshape(q.shape[0], -1)
    if p.shape != q.shape:
        raise ValueError(f"regression outputs differ in shape: {tuple(p.shape)} vs {tuple(q.shape)}")
    return (p - q).pow(2).sum(dim=-1)


def binary_symmetric_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """Sum over labels of the symmetric KL between Bernoulli(σ(a)) and Bernoulli(σ(b)).

    For one label: (p − q)(log p − log q) + (q − p)(log(1 − p) − log(1 − q)) = (p − q)(a − b),
    because log p − log(1 − p) is the logit a. This form is exact and finite for any finite logits.

    Args:
        p_logits, q_logits: (B, L) per-label logits.
    Returns:
        (B,) float32.
    """
    a, b = p_logits.float(), q_logits.float()
    return ((torch.sigmoid(a) - torch.sigmoid(b)) * (a - b)).sum(dim=-1)


def smoothness_divergence(p: torch.Tensor, q: torch.Tensor, problem_type: str) -> torch.Tensor:
    """ℓ_s(P, Q) per example, (B,) float32, chosen by the model's problem type."""
    if problem_type == REGRESSION:
        return squared_error(p, q)
    if problem_type == MULTI_LABEL:
        return binary_symmetric_kl(p, q)
    if problem_type == SINGLE_LABEL:
        return symmetric_kl(p, q)
    raise ValueError(f"unknown problem type {problem_type!r}")


def problem_type_of(config, labels: torch.Tensor | None = None) -> str:
    """The problem type a Hugging Face sequence-classification model will train with.

    Mirrors the models' own rule: an explicit ``config.problem_type`` wins; otherwise one label means
    regression, and several mean single-label classification for integer labels and multi-label
    (independent sigmoids) for others, e.g. float multi-hot ones. A model applies that rule, and sets
    ``config.problem_type``, in a forward that is given the labels; one that is not (the Trainer takes
    them out of the batch for a ``compute_loss_func`` or label smoothing) never decides, so the batch's
    ``labels`` decide here. Without labels several outputs mean single-label classification.
    """
    if getattr(config, "problem_type", None):
        return config.problem_type
    if getattr(config, "num_labels", 2) == 1:
        return REGRESSION
    if torch.is_tensor(labels) and labels.dtype not in (torch.long, torch.int):
        return MULTI_LABEL
    return SINGLE_LABEL
