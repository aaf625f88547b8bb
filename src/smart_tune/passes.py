"""Re-running a model: everything a pass beside the clean one needs, written once.

SMART runs the model several times per step: the clean pass on x = E(input_ids) as ``inputs_embeds``,
the perturbed passes of R_s (or R3F) on x̃, and the mean teacher's pass. Each must see the same inputs
(position ids included: RoBERTa numbers positions differently for ids and embeddings), read the
logits the same way, and follow a dropout policy: its own masks (``independent``), the clean pass's
masks replayed from a captured RNG state (``shared``), or none (``off``). The adversary
(:mod:`smart_tune.adversarial`), the teacher (:mod:`smart_tune.teacher`) and the objective
(:mod:`smart_tune.objective`) take all of that from here.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from .divergences import problem_type_of
from .errors import ConfigError

DROPOUT_POLICIES = ("independent", "shared", "off")

# Keys of a batch that are not model inputs of a re-run pass.
_NOT_INPUTS = ("labels", "label", "num_items_in_batch")


def capture_rng_state(device: torch.device | str | None = None) -> dict[str, Any]:
    """The RNG state that dropout will draw from next (CPU, and the accelerator when ``device`` is one).

    Capture it just before the clean forward; ``replay_rng`` then gives a later pass the same masks.
    """
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        state["cuda"] = (device, torch.cuda.get_rng_state(device))
    return state


@contextlib.contextmanager
def replay_rng(state: Mapping[str, Any] | None) -> Iterator[None]:
    """Run the body from a captured RNG state, then put the current state back.

    Same model, same input shapes, same RNG state ⇒ same dropout masks as the captured pass. Restoring
    afterwards keeps the replay from repeating randomness in the rest of training.
    """
    if state is None:
        yield
        return
    saved = capture_rng_state(state["cuda"][0] if "cuda" in state else None)
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"][1], state["cuda"][0])
    try:
        yield
    finally:
        torch.set_rng_state(saved["cpu"])
        if "cuda" in saved:
            torch.cuda.set_rng_state(saved["cuda"][1], saved["cuda"][0])


@contextlib.contextmanager
def dropout_disabled(model: nn.Module) -> Iterator[None]:
    """Put every module in eval mode for the body, then restore each module's own flag."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Parameters stop requiring grad for the body.

    The ascent needs ∇_x̃ only: with frozen weights the forward records no weight-gradient work and
    keeps fewer activations alive.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@contextlib.contextmanager
def dropout_policy(model: nn.Module, policy: str, rng_state: Mapping[str, Any] | None) -> Iterator[None]:
    """The context a re-run pass (perturbed or teacher) runs in, per dropout policy."""
    if policy == "shared":
        if rng_state is None:
            raise ValueError("dropout policy 'shared' needs the RNG state captured before the clean forward")
        with replay_rng(rng_state):
            yield
    elif policy == "off":
        with dropout_disabled(model):
            yield
    else:
        yield


def model_inputs(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The batch without labels and token ids: what goes with ``inputs_embeds`` into a re-run pass."""
    return {k: v for k, v in batch.items() if k not in (*_NOT_INPUTS, "input_ids", "inputs_embeds")}


def forward_inputs(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The batch without labels: what a pass on token ids (the teacher's) feeds the model."""
    return {k: v for k, v in batch.items() if k not in _NOT_INPUTS}


def with_embeddings(model: nn.Module, batch: Mapping[str, Any], embeds: torch.Tensor) -> dict[str, Any]:
    """``batch`` with ``input_ids`` replaced by ``inputs_embeds=embeds`` (labels kept), plus the position
    ids that make the model see the positions it would see for the ids (see :func:`position_ids_for`)."""
    inputs = {k: v for k, v in batch.items() if k != "input_ids"}
    inputs["inputs_embeds"] = embeds
    if "input_ids" in batch:
        check_last_token_is_real(model, batch["input_ids"])
        inputs.update(derived_inputs(model, batch["input_ids"], batch))
    return inputs


def derived_inputs(
    model: nn.Module, input_ids: torch.Tensor, batch: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """What the model derives from ``input_ids`` when ``batch`` does not give it, and cannot derive from
    ``inputs_embeds``: given to every ``inputs_embeds`` pass, so that it sees what the pass on the ids
    sees. The position ids of RoBERTa-style embeddings (:func:`position_ids_for`), and the global
    attention on each row's first token that Longformer's sequence-classification head makes from
    ``input_ids`` (given embeddings, it failed at the first SMART step)."""
    derived = {}
    if "position_ids" not in batch:
        position_ids = position_ids_for(model, input_ids)
        if position_ids is not None:
            derived["position_ids"] = position_ids
    if "global_attention_mask" not in batch and _GLOBAL_ON_FIRST in _classifying_source(model):
        first = torch.zeros_like(input_ids)
        first[:, 0] = 1
        derived["global_attention_mask"] = first
    return derived


def word_embeddings(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """x = E(input_ids), (B, L, H): the word-embedding lookup alone, no position or type embeddings."""
    embeds = model.get_input_embeddings()(input_ids)
    # I-BERT's table (QuantEmbedding) returns (embeddings, scaling factor), the factor None in float
    # mode (quant_mode is refused: unsupported_reason); its inputs_embeds are the embeddings alone.
    return embeds[0] if isinstance(embeds, tuple) else embeds


def check_accepts_inputs_embeds(model: nn.Module) -> None:
    """Fail early, with the reason, for models that cannot take perturbed embeddings: a forward without
    ``inputs_embeds``, or one that has it but refuses it (BART's and T5's sequence-classification
    heads find each row's end of sequence in ``input_ids``: they failed at the first training step),
    or one whose pass on ``inputs_embeds`` cannot be its pass on the ids (:func:`unsupported_reason`)."""
    params = inspect.signature(model.forward).parameters
    if "inputs_embeds" not in params or _NO_INPUTS_EMBEDS in _classifying_source(model):
        # A ConfigError (a ValueError too): the command line prints it as one line, not a traceback.
        raise ConfigError(
            f"{type(model).__name__}.forward takes no `inputs_embeds`: SMART and R3F perturb the word "
            "embeddings and need it"
        )
    why = unsupported_reason(model)
    if why is not None:
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        name = type(model).__name__ + (f" (model type {model_type})" if model_type else "")
        raise ConfigError(
            f"{name} cannot be trained with SMART or R3F, which perturb its word embeddings E(input_ids) "
            f"and feed them as inputs_embeds: {why} (--method vanilla trains it)"
        )


# Architectures (config.model_type) whose pass on inputs_embeds = E(input_ids) is not their pass on the
# ids, in a way a re-run pass cannot make up for.
_UNSUPPORTED = {
    # EsmModel runs its embedding layer only when it gets no inputs_embeds: the encoder would see the
    # word embeddings without ESM's position embeddings, layer norm, padding mask and token dropout.
    "esm": "its inputs_embeds skip its whole embedding layer (position embeddings, layer norm, the "
    "padding mask, token-dropout scaling), so the pass on them is not its pass on the ids",
    "canine": "it has no word-embedding table: it embeds each character by hashing its code point into "
    "several tables, so there is no E(input_ids) to look up",
}


def unsupported_reason(model: nn.Module) -> str | None:
    """Why SMART's passes on ``inputs_embeds`` cannot be the model's own pass on its ids, or None: an
    architecture of :data:`_UNSUPPORTED`, I-BERT in integer-only ``quant_mode`` (its embedding layer
    quantizes the looked-up embeddings with a scaling factor that inputs_embeds do not carry: the pass
    gives NaN), or a model with no word-embedding table to look x = E(input_ids) up in."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type in _UNSUPPORTED:
        return _UNSUPPORTED[model_type]
    if model_type == "ibert" and getattr(config, "quant_mode", False):
        return (
            "in quant_mode its embedding layer quantizes the looked-up embeddings with a scaling factor "
            "that inputs_embeds do not carry (the pass gives NaN); fine-tune it with quant_mode off"
        )
    try:
        model.get_input_embeddings()
    except NotImplementedError:
        return "it has no word-embedding table (get_input_embeddings is not implemented) to look x up in"
    return None


# What a model's forward says when it has an inputs_embeds argument but refuses it (BART, T5, mBART, ...).
_NO_INPUTS_EMBEDS = "Passing input embeddings is currently not supported"
# What a sequence-classification head says when it pools each row's last non-padding token, found from
# input_ids (GPT-2, Llama, Qwen2, Mistral, OPT, ...: the decoders' heads): given inputs_embeds it cannot
# find the padding and takes the last position of every row.
_POOLS_BY_TOKEN_IDS = "will not detect padding tokens in `inputs_embeds`"
# What Longformer's sequence-classification head does, given no global_attention_mask: global attention
# on each row's first token, found from input_ids (None given inputs_embeds: a TypeError).
_GLOBAL_ON_FIRST = "global_attention_mask[:, 0] = 1"


@functools.cache
def _forward_source(model_type: type) -> str:
    """The source of a model class's forward ("" where there is none to read: a compiled or dynamically
    made class): its messages say how it treats ``inputs_embeds``."""
    try:
        return inspect.getsource(model_type.forward)
    except (OSError, TypeError):
        return ""


def _classifying_source(model: nn.Module) -> str:
    """The source of the forwards that classify ``model``'s batches: its own, and for a multi-task model
    (:class:`~smart_tune.multitask.MultiTaskModel`, whose forward hands each batch to its task's head:
    the family's own sequence-classification model) its heads'. Read for what a head does with
    ``input_ids`` that it cannot do with ``inputs_embeds``."""
    heads = getattr(model, "heads", None)
    classes = [type(model)]
    if isinstance(heads, nn.ModuleDict):
        classes += dict.fromkeys(type(head) for head in heads.values())
    return "\n".join(_forward_source(c) for c in classes)


def check_last_token_is_real(model: nn.Module, input_ids: torch.Tensor) -> None:
    """Refuse a batch that an ``inputs_embeds`` pass would classify from a padding token.

    A head that pools the last non-padding token (the decoders': GPT-2, Llama, Qwen2, ...) finds it
    from ``input_ids``; given x = E(input_ids) as ``inputs_embeds`` it takes the last position L − 1
    of each row instead. That is the same token only where position L − 1 of every row holds no pad
    id: with right padding the clean pass f(x; θ), the perturbed passes f(x̃; θ) and so L, R_s and
    D_Breg would all read a padding position, while evaluation (on token ids) reads the real one.

    Args:
        model: the unwrapped model.
        input_ids: (B, L) token ids of the batch.
    """
    if _POOLS_BY_TOKEN_IDS not in _classifying_source(model):
        return
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    pad = getattr(config, "pad_token_id", None)
    if pad is not None and bool((input_ids[:, -1] == pad).any()):
        raise ConfigError(
            f"{type(model).__name__} classifies each row by its last non-padding token, which it finds "
            "only in input_ids, but SMART and R3F feed inputs_embeds, where it takes the last position: "
            "pad on the left (tokenizer.padding_side = 'left') so that every row ends in a real token"
        )


def position_ids_for(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor | None:
    """Position ids that make an ``inputs_embeds`` pass see the same positions as an ``input_ids`` pass.

    RoBERTa-style embeddings number positions from ``padding_idx + 1`` skipping padding when they see
    token ids, but count every position when they see embeddings; with left padding the two differ.
    BERT-style models use 0..L−1 either way and need nothing (returns None). Either numbering method on
    the embeddings marks the style: MPNet's has only the one for embeddings (its ids' numbering is a
    function of its module), so looking for the ids' one alone missed it.
    """
    emb = getattr(getattr(model, "base_model", model), "embeddings", None)
    padding_idx = getattr(emb, "padding_idx", None)
    numbered = ("create_position_ids_from_input_ids", "create_position_ids_from_inputs_embeds")
    if padding_idx is None or not any(hasattr(emb, name) for name in numbered):
        return None
    mask = input_ids.ne(padding_idx).long()
    return torch.cumsum(mask, dim=1) * mask + padding_idx


def problem_type_for(model: nn.Module, batch: Mapping[str, Any]) -> str:
    """The problem type ℓ_s follows for this batch: the batch's task's, for a model that knows tasks
    (a :class:`~smart_tune.multitask.MultiTaskModel` has ``problem_type_for(batch)``: a regression
    task's batch gets the squared error, a classification task's the symmetric KL); else the model's
    config's, or where that names none, the one the model's rule gives the batch's labels
    (:func:`~smart_tune.divergences.problem_type_of`)."""
    per_batch = getattr(model, "problem_type_for", None)
    if callable(per_batch):
        return per_batch(batch)
    return problem_type_of(model.config, batch.get("labels"))


def logits_of(output: Any) -> torch.Tensor:
    """The logits of a model output (a ModelOutput, a dict or a tuple)."""
    return output["logits"] if isinstance(output, Mapping) else output[0]


def real_token_mask(batch: Mapping[str, Any], input_ids: torch.Tensor) -> torch.Tensor:
    """(B, L, 1) mask: 1 on real tokens, 0 on padding (from ``attention_mask``; all ones without it)."""
    mask = batch.get("attention_mask")
    if mask is None:
        return torch.ones(*input_ids.shape, 1, device=input_ids.device)
    return mask.unsqueeze(-1).to(torch.float32)
