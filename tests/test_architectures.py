"""SMART's passes on sequence-classification heads beyond conftest's three (tiny configs, no downloads):
the clean pass on x = E(input_ids) as inputs_embeds must classify as the pass on the ids does."""

import pytest
import torch
import transformers as hf
from transformers import AutoModelForSequenceClassification

from conftest import VOCAB, ToyDataset, toy_batch
from smart_tune import (
    AdversarialRegularizer,
    ConfigError,
    MeanTeacher,
    SmartObjective,
    SmartTrainer,
    SmartTrainingArguments,
)

SIZES = dict(num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=72)
COMMON = dict(vocab_size=VOCAB, num_labels=3, pad_token_id=1)
ENCODERS = {
    "electra": lambda: hf.ElectraConfig(embedding_size=16, hidden_size=32, **SIZES, **COMMON),
    "deberta-v2": lambda: hf.DebertaV2Config(hidden_size=32, **SIZES, **COMMON),
    "albert": lambda: hf.AlbertConfig(embedding_size=16, hidden_size=32, **SIZES, **COMMON),
    "xlm-roberta": lambda: hf.XLMRobertaConfig(hidden_size=32, **SIZES, **COMMON),
    "mpnet": lambda: hf.MPNetConfig(hidden_size=32, **SIZES, **COMMON),
}
# Decoders whose head pools each row's last non-padding token, found from input_ids.
DECODERS = {
    "gpt2": lambda: hf.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=64, **COMMON),
    "llama": lambda: hf.LlamaConfig(hidden_size=32, num_key_value_heads=1, **SIZES, **COMMON),
    "qwen2": lambda: hf.Qwen2Config(hidden_size=32, num_key_value_heads=1, **SIZES, **COMMON),
}


def build(configs, name):
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(configs[name]()).eval()


def clean_passes(model, batch):
    """Logits of the pass on token ids and of SMART's clean pass (inputs_embeds), (B, K) each."""
    prepared = SmartObjective(AdversarialRegularizer(), None).prepare(model, batch)
    assert "inputs_embeds" in prepared.inputs and "input_ids" not in prepared.inputs
    with torch.no_grad():
        return model(**batch).logits, model(**prepared.inputs).logits


@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("left_pad", [False, True])
def test_the_clean_pass_on_word_embeddings_classifies_as_the_ids_do(name, left_pad):
    """MPNet numbers positions from the ids like RoBERTa but keeps that numbering as a module function:
    left-padded, its inputs_embeds pass saw other positions than its ids pass."""
    model = build(ENCODERS, name)
    arch = "bert" if name in ("electra", "deberta-v2", "albert") else "roberta"  # token_type_ids or not
    by_ids, by_embeds = clean_passes(model, toy_batch(arch, num_labels=3, left_pad=left_pad))
    torch.testing.assert_close(by_embeds, by_ids, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", DECODERS)
def test_a_decoder_head_refuses_right_padding_in_one_line_and_trains_left_padded(name):
    """Given inputs_embeds, these heads take the last position of a row, not its last real token: with
    right padding SMART trained L, R_s and D_Breg on a padding position's logits (evaluation, on ids,
    reads the real token)."""
    model = build(DECODERS, name)
    objective = SmartObjective(AdversarialRegularizer(), MeanTeacher(model))
    right = toy_batch("gpt", num_labels=3)
    with pytest.raises(ConfigError, match="padding_side") as refused:
        objective.prepare(model, right)
    assert "\n" not in str(refused.value)
    with pytest.raises(ConfigError, match="padding_side"):  # the regularizer alone, embeddings looked up
        AdversarialRegularizer()(model, right, model(**right).logits, "single_label_classification")

    left = toy_batch("gpt", num_labels=3, left_pad=True)
    by_ids, by_embeds = clean_passes(model, left)
    torch.testing.assert_close(by_embeds, by_ids, rtol=1e-5, atol=1e-6)
    terms = objective.loss(model.train(), left)
    assert torch.isfinite(terms.total) and terms.adversarial > 0 and terms.bregman is not None


def test_a_head_that_refuses_inputs_embeds_is_refused_before_training(tmp_path):
    """BART's head has an inputs_embeds argument but raises NotImplementedError on it: the run failed at
    its first step with a traceback instead of at the start with one line."""
    torch.manual_seed(0)
    config = hf.BartConfig(
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=64,
        **COMMON,
    )
    model = AutoModelForSequenceClassification.from_config(config)
    args = SmartTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", max_steps=1)
    with pytest.raises(ConfigError, match="inputs_embeds") as refused:
        SmartTrainer(model=model, args=args, train_dataset=ToyDataset(n=4))
    assert "\n" not in str(refused.value)
    SmartTrainer(model=model, args=SmartTrainingArguments(**{**args.to_dict(), "smart_method": "vanilla"}))
