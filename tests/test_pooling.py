"""--pooling mean: the head reads the masked mean of the token states, through every pass SMART makes."""

import json

import pytest
import torch

from conftest import shared_data_dir, tiny_model, toy_batch
from smart_tune.cli import main
from smart_tune.errors import ConfigError
from smart_tune.pooling import MeanPooler, apply_pooling, pooling_of
from smart_tune.teacher import MeanTeacher

GLUE = str(shared_data_dir() / "glue")


def test_mean_pooling_is_the_masked_mean_of_the_last_hidden_states():
    model = apply_pooling(tiny_model("bert"), "mean").eval()
    batch = toy_batch("bert")
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    hidden = model.bert(**inputs).last_hidden_state  # (B, T, H)
    mask = inputs["attention_mask"].unsqueeze(-1).float()
    expected = (hidden * mask).sum(1) / mask.sum(1)
    logits = model(**inputs).logits
    torch.testing.assert_close(logits, model.classifier(expected))
    assert isinstance(model.bert.pooler, MeanPooler) and pooling_of(model) == "mean"


def test_inputs_embeds_and_the_teacher_pool_like_input_ids():
    model = apply_pooling(tiny_model("bert"), "mean").eval()
    batch = toy_batch("bert")
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    by_ids = model(**inputs).logits
    embeds = model.bert.embeddings.word_embeddings(inputs["input_ids"])
    rest = {k: v for k, v in inputs.items() if k != "input_ids"}
    torch.testing.assert_close(model(inputs_embeds=embeds, **rest).logits, by_ids)
    teacher = MeanTeacher(model)  # a deep copy: its pooler hears its own encoder's mask
    torch.testing.assert_close(teacher.logits(batch), by_ids)


def test_pooling_is_refused_for_a_model_without_a_pooler():
    with pytest.raises(ConfigError, match="pooler"):
        apply_pooling(tiny_model("roberta"), "mean")
    with pytest.raises(ConfigError):
        apply_pooling(tiny_model("bert"), "max")


def test_train_with_mean_pooling_and_evaluate_keeps_it(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--task", "rte", "--data-dir", GLUE, "--model", tiny_model_dir, "--pooling", "mean"]
    args += [
        "--max-train-samples",
        "32",
        "--max-steps",
        "3",
        "--disable-tqdm",
        "true",
        "--output-dir",
        str(out),
    ]
    assert main(args) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["arguments"]["run"]["pooling"] == "mean"
    assert json.loads((out / "config.json").read_text())["smart_tune_pooling"] == "mean"
    capsys.readouterr()
    assert main(["evaluate", "--model-dir", str(out), "--task", "rte", "--data-dir", GLUE]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["metrics"]["accuracy"] == pytest.approx(r["metrics"]["accuracy"], abs=1e-9)
