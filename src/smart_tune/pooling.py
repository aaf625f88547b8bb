"""How a sequence-classification head reads the encoder: the first token's pooler, or the mean of tokens.

A ``*ForSequenceClassification`` BERT reads the pooler: a dense layer and tanh over the first ([CLS])
token's hidden state, trained by BERT's next-sentence objective. The packaged MiniLM was fine-tuned as a
sentence encoder whose sentence vector is the mean of its token states (its ``1_Pooling`` folder says
so); its pooler was not part of that training. ``pooling="mean"`` replaces the pooler by the masked mean
of the last hidden states, the representation the model was trained to produce, so that the new head
reads what the encoder learned to write. The choice is stored in the model's config
(``smart_tune_pooling``) and applied again whenever the model is loaded.

Supported: models whose base model has a ``pooler`` module called on the last hidden states
(BERT and its relatives); others keep their own head.
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import ConfigError

POOLINGS = ("cls", "mean")
CONFIG_KEY = "smart_tune_pooling"


class MeanPooler(nn.Module):
    """(B, T, H) last hidden states → (B, H) mean over the tokens the attention mask keeps.

    The base model calls its pooler with the hidden states alone, so the mask is taken from the base
    model's inputs by a forward pre-hook (:meth:`remember_mask`) just before each forward.
    """

    def __init__(self):
        super().__init__()
        self._mask: torch.Tensor | None = None

    def remember_mask(self, module, args, kwargs) -> None:
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > 1:
            mask = args[1]
        self._mask = mask

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        mask, self._mask = self._mask, None
        if mask is None or mask.dim() != 2:
            return hidden_states.mean(dim=1)
        weights = mask.to(hidden_states.dtype).unsqueeze(-1)  # (B, T, 1)
        return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def apply_pooling(model: nn.Module, pooling: str) -> nn.Module:
    """Give ``model`` the head input ``pooling`` names ("cls": as it is; "mean": :class:`MeanPooler`) and
    record it in ``model.config``. Returns the model."""
    if pooling not in POOLINGS:
        raise ConfigError(f"--pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
    if pooling == "cls":
        return model
    base = getattr(model, "base_model", None)
    if base is None or not isinstance(getattr(base, "pooler", None), nn.Module):
        raise ConfigError(
            f"--pooling mean needs a model whose encoder has a pooler (BERT and its relatives); "
            f"{type(model).__name__} has none"
        )
    if isinstance(base.pooler, MeanPooler):
        return model
    pooler = MeanPooler()
    base.pooler = pooler
    base.register_forward_pre_hook(pooler.remember_mask, with_kwargs=True)
    setattr(model.config, CONFIG_KEY, pooling)
    return model


def pooling_of(model: nn.Module) -> str:
    """The pooling a loaded model was trained with (``cls`` when its config says nothing)."""
    return getattr(model.config, CONFIG_KEY, None) or "cls"
