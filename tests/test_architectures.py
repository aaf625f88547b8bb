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
    # Its head puts global attention on each row's first token, found from input_ids (a TypeError given
    # inputs_embeds); toy batches of 10 tokens are padded to its window (4) inside the model.
    "longformer": lambda: hf.LongformerConfig(hidden_size=32, attention_window=4, **SIZES, **COMMON),
    # Its word-embedding table returns (embeddings, scaling factor): a tuple where x was expected.
    "ibert": lambda: hf.IBertConfig(hidden_size=32, **SIZES, **COMMON),
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


@pytest.mark.parametrize("name", ["longformer", "ibert"])
def test_a_smart_step_trains_longformer_and_ibert(name, tmp_path):
    """Both failed at the first SMART step, after loading: Longformer's head found no input_ids to put
    global attention on (the clean and perturbed passes get it now, as the head makes it from the ids),
    I-BERT's embedding table returned a tuple."""
    model = build(ENCODERS, name).train()
    batch = toy_batch("roberta", num_labels=3, left_pad=True)
    terms = SmartObjective(AdversarialRegularizer(), MeanTeacher(model)).loss(model, batch)
    assert torch.isfinite(terms.total) and terms.adversarial > 0 and terms.bregman is not None
    args = SmartTrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", max_steps=2, per_device_train_batch_size=4
    )
    trainer = SmartTrainer(
        model=model, args=args, train_dataset=ToyDataset(n=8, num_labels=3, arch="roberta")
    )
    assert trainer.train().global_step == 2 and trainer.guard.skipped_steps == 0


def esm2_like():
    """ESM-2's embedding settings: rotary positions, token dropout, no layer norm in the embeddings."""
    return hf.EsmConfig(
        hidden_size=32,
        position_embedding_type="rotary",
        token_dropout=True,
        mask_token_id=2,
        emb_layer_norm_before=False,
        **SIZES,
        **COMMON,
    )


REFUSED = {
    "esm": (lambda: hf.EsmConfig(hidden_size=32, **SIZES, **COMMON), "skip its whole embedding layer"),
    "esm-2": (esm2_like, "skip its whole embedding layer"),
    "canine": (
        lambda: hf.CanineConfig(
            hidden_size=32,
            num_hash_functions=2,
            num_hash_buckets=64,
            downsampling_rate=2,
            **SIZES,
            num_labels=3,
        ),
        "no word-embedding table",
    ),
    "ibert-quant": (lambda: hf.IBertConfig(hidden_size=32, quant_mode=True, **SIZES, **COMMON), "quant_mode"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_an_architecture_smart_cannot_perturb_is_refused_when_the_trainer_is_built(name, tmp_path):
    """ESM feeds inputs_embeds straight to its encoder, past its embedding layer; Canine hashes
    characters into several tables and has no E(input_ids); I-BERT in quant_mode needs a scaling factor
    that inputs_embeds lack. Each failed (or trained on other passes than its own) only at the first
    SMART step: refused in one line naming it and why, before anything trains; vanilla takes it."""
    config, why = REFUSED[name]
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config())
    args = SmartTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", max_steps=1)
    for method in ("smart", "r3f"):
        with pytest.raises(ConfigError) as refused:
            SmartTrainer(
                model=model, args=SmartTrainingArguments(**{**args.to_dict(), "smart_method": method})
            )
        message = str(refused.value)
        assert message.startswith(f"{type(model).__name__} (model type {model.config.model_type}) cannot")
        assert why in message and "--method vanilla" in message and "\n" not in message
    SmartTrainer(model=model, args=SmartTrainingArguments(**{**args.to_dict(), "smart_method": "vanilla"}))


@pytest.mark.parametrize("config", [lambda: REFUSED["esm"][0](), esm2_like], ids=["absolute", "esm-2"])
def test_esms_pass_on_word_embeddings_is_not_its_pass_on_the_ids(config):
    """Why ESM is refused rather than trained: given x = E(input_ids) it leaves out its position
    embeddings (absolute) or its token-dropout scaling and padding mask (ESM-2), so the clean pass f(x)
    that SMART trains on is not the pass evaluation makes on the ids."""
    from smart_tune.passes import with_embeddings, word_embeddings

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config()).eval()
    batch = {k: v for k, v in toy_batch("roberta", num_labels=3).items() if k != "labels"}
    with torch.no_grad():
        by_ids = model(**batch).logits
        by_embeds = model(**with_embeddings(model, batch, word_embeddings(model, batch["input_ids"]))).logits
    assert (by_ids - by_embeds).abs().max() > 1e-3


def multitask_of(configs, name):
    """A two-task model (MT-DNN) on the family's encoder: each head is the family's own
    sequence-classification model, handed the batch by MultiTaskModel.forward."""
    from smart_tune.multitask import MultiTaskModel, TaskHead

    torch.manual_seed(0)
    tasks = [TaskHead(name=n, num_labels=3, problem_type="single_label_classification") for n in ("a", "b")]
    return MultiTaskModel(configs[name](), tasks).eval()


def test_a_multitask_model_gets_what_its_heads_derive_from_the_ids():
    """What a head does with input_ids was looked for in MultiTaskModel's own forward, which only hands
    the batch on: a multi-task Longformer got no global attention on the first token with inputs_embeds
    (a TypeError at the first SMART step, though a single-task one trains), and a multi-task decoder's
    right padding was not refused (its clean and perturbed passes read a padding position)."""
    model = multitask_of(ENCODERS, "longformer")
    batch = {
        **toy_batch("roberta", num_labels=3, left_pad=True),
        "task_ids": torch.zeros(4, dtype=torch.long),
    }
    by_ids, by_embeds = clean_passes(model, batch)
    torch.testing.assert_close(by_embeds, by_ids, rtol=1e-5, atol=1e-6)
    terms = SmartObjective(AdversarialRegularizer(), MeanTeacher(model)).loss(model.train(), batch)
    assert torch.isfinite(terms.total) and terms.adversarial > 0 and terms.bregman is not None

    model = multitask_of(DECODERS, "gpt2")
    right = {**toy_batch("gpt", num_labels=3), "task_ids": torch.ones(4, dtype=torch.long)}
    with pytest.raises(ConfigError, match="padding_side") as refused:
        SmartObjective(AdversarialRegularizer(), None).prepare(model, right)
    assert "\n" not in str(refused.value)
    left = {**toy_batch("gpt", num_labels=3, left_pad=True), "task_ids": torch.ones(4, dtype=torch.long)}
    by_ids, by_embeds = clean_passes(model, left)
    torch.testing.assert_close(by_embeds, by_ids, rtol=1e-5, atol=1e-6)
