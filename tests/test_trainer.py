import math
import os
import warnings

import pytest
import torch
from transformers import Trainer, TrainingArguments

from conftest import ARCHS, FixedPerturbation, ToyDataset, tiny_model, toy_batch
from smart_tune import ConfigError, SmartTrainer, SmartTrainingArguments
from smart_tune.trainer import TEACHER_STATE, TEACHER_WEIGHTS


def common_args(out, **kw):
    base = dict(
        output_dir=out,
        max_steps=6,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        seed=0,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    base.update(kw)
    return base


def smart_args(out, **kw):
    return SmartTrainingArguments(**common_args(out, **kw))


def train(trainer_cls, args, arch="bert", dropout=0.1, num_labels=2, regression=False, **model_kw):
    model = tiny_model(arch, num_labels=num_labels, dropout=dropout, **model_kw)
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=ToyDataset(arch=arch, num_labels=max(num_labels, 2), regression=regression),
    )
    trainer.train()
    return trainer


def max_weight_diff(a, b):
    return max((p - q).abs().max().item() for p, q in zip(a.model.parameters(), b.model.parameters()))


@pytest.mark.parametrize(
    "smart_kw",
    [
        dict(smart_method="vanilla"),
        dict(smart_method="smart", smart_lambda=0.0, smart_mu=0.0),
        dict(smart_method="r3f", smart_lambda=0.0),
    ],
)
def test_switched_off_equals_plain_trainer_step_for_step(tmp_out, smart_kw):
    plain = train(Trainer, TrainingArguments(**common_args(tmp_out + "_plain")))
    smart = train(SmartTrainer, smart_args(tmp_out, **smart_kw))
    assert max_weight_diff(plain, smart) <= 1e-6
    assert smart.teacher is None


def test_smart_changes_training(tmp_out):
    plain = train(Trainer, TrainingArguments(**common_args(tmp_out + "_plain")))
    smart = train(SmartTrainer, smart_args(tmp_out, smart_epsilon=1e-2, smart_sigma=1e-2, smart_lambda=5.0))
    assert max_weight_diff(plain, smart) > 1e-4


def logged(trainer, key):
    return [h[key] for h in trainer.state.log_history if key in h]


@pytest.mark.parametrize("arch", ARCHS)
def test_smart_logs_each_term_for_every_architecture(tmp_out, arch):
    trainer = train(SmartTrainer, smart_args(tmp_out), arch=arch)
    for key in (
        "smart_task_loss",
        "smart_adv_loss",
        "smart_breg_loss",
        "smart_delta_linf",
        "smart_teacher_beta",
    ):
        values = logged(trainer, key)
        assert len(values) == 6 and all(math.isfinite(v) for v in values), key
    assert max(logged(trainer, "smart_delta_linf")) <= 1e-5 * (1 + 1e-3)
    assert logged(trainer, "smart_nonfinite") == [0] * 6
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_regression_and_r3f(tmp_out):
    trainer = train(SmartTrainer, smart_args(tmp_out), num_labels=1, regression=True)
    assert all(math.isfinite(v) for v in logged(trainer, "smart_adv_loss"))
    trainer = train(SmartTrainer, smart_args(tmp_out + "_r3f", smart_method="r3f"))
    assert logged(trainer, "smart_adv_loss") and not logged(trainer, "smart_breg_loss")
    assert trainer.teacher is None


def test_teacher_moves_once_per_optimizer_step_with_gradient_accumulation(tmp_out):
    trainer = train(SmartTrainer, smart_args(tmp_out, max_steps=5, gradient_accumulation_steps=3))
    assert trainer.state.global_step == 5
    assert trainer.teacher.optimizer_steps == 5 and trainer.teacher.num_updates == 5
    trainer = train(SmartTrainer, smart_args(tmp_out, max_steps=6, smart_teacher_every=2))
    assert trainer.teacher.num_updates == 3


def large_batch_and_accumulated(tmp_out, smart_method="smart", **trainer_kwargs):
    """Two SmartTrainers trained on ToyDataset, one at batch 8, one at 4 × 2 accumulated micro-batches
    (no clipping, no warm-up; R_s a deterministic stand-in for SMART), for a step-by-step comparison."""
    trained = []
    for batch, accumulation in ((8, 1), (4, 2)):
        args = smart_args(
            tmp_out,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation,
            smart_method=smart_method,
            max_grad_norm=1e9,
            warmup_steps=0,
        )
        trainer = SmartTrainer(
            model=tiny_model(dropout=0.0), args=args, train_dataset=ToyDataset(), **trainer_kwargs
        )
        if smart_method == "smart":
            trainer.regularizer = FixedPerturbation()
        trainer.train()
        trained.append(trainer)
    return trained


@pytest.mark.parametrize("method", ["vanilla", "smart"])
def test_gradient_accumulation_equals_the_large_batch(tmp_out, method):
    """Batch 8 equals 4 × 2 accumulated micro-batches: the task loss, R_s (a deterministic stand-in
    here) and D_Breg are all averaged over micro-batches. transformers' Trainer alone sums them for
    sequence-classification models (it takes their loss as normalised by num_items_in_batch)."""
    trained = large_batch_and_accumulated(tmp_out, smart_method=method)
    assert max_weight_diff(*trained) < 1e-6
    for key in ("loss", "grad_norm"):  # a gradient scaled by the accumulation steps shows in its norm
        logged = [[e[key] for e in t.state.log_history if key in e] for t in trained]
        assert logged[0] == pytest.approx(logged[1], rel=1e-5), key
    if method == "smart":
        teachers = [t.teacher.state_dict()["model"] for t in trained]
        assert max((teachers[0][k] - teachers[1][k]).abs().max().item() for k in teachers[0]) < 1e-6
        assert trained[0].state.log_history[0]["smart_adv_loss"] > 0


def test_gradient_accumulation_with_compute_loss_func_logs_the_large_batch_terms(tmp_out):
    """A compute_loss_func normalises L over the accumulated batch (num_items_in_batch), so each
    micro-batch's L is its share; smart_task_loss logged the mean share, L / accumulation steps."""

    def summed_over_items(outputs, labels, num_items_in_batch=None):
        return (
            torch.nn.functional.cross_entropy(outputs["logits"], labels, reduction="sum") / num_items_in_batch
        )

    trained = large_batch_and_accumulated(tmp_out, compute_loss_func=summed_over_items)
    assert max_weight_diff(*trained) < 1e-6
    for key in ("loss", "smart_task_loss", "smart_adv_loss", "smart_breg_loss"):
        assert logged(trained[0], key) == pytest.approx(logged(trained[1], key), rel=1e-5, abs=1e-10), key


def multi_label_terms(out, compute_loss_func=None, num_labels=3):
    """One SMART step's terms on a multi-label batch (float multi-hot labels, config.problem_type unset,
    θ moved away from θ̃), and D_Breg computed directly: Σ_labels Bernoulli symmetric KL, batch mean."""
    from smart_tune.divergences import binary_symmetric_kl, symmetric_kl

    model = tiny_model(num_labels=num_labels)
    trainer = SmartTrainer(model=model, args=smart_args(out), compute_loss_func=compute_loss_func)
    trainer._start_teacher(max_steps=1)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    batch = toy_batch(num_labels=num_labels)
    batch["labels"] = (torch.rand(len(batch["labels"]), num_labels, generator=g) > 0.5).float()
    torch.manual_seed(0)
    trainer.compute_loss(model.train(), dict(batch))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        student, teacher = model(**inputs).logits, trainer.teacher.model.eval()(**inputs).logits
    direct = {"bernoulli": binary_symmetric_kl(student, teacher), "softmax": symmetric_kl(student, teacher)}
    return trainer.term_means.pop(), {k: float(v.mean()) for k, v in direct.items()}


def test_multi_label_terms_are_per_label_bernoulli_with_a_compute_loss_func(tmp_out):
    """The Trainer takes the labels out of the model's forward for a compute_loss_func, so the model
    never sets config.problem_type: ℓ_s went to the softmax symmetric KL. The labels' dtype decides,
    as the model's own rule does: the same terms as with the model's own loss."""

    def bce(outputs, labels, num_items_in_batch=None):
        return torch.nn.functional.binary_cross_entropy_with_logits(outputs["logits"], labels)

    own, own_direct = multi_label_terms(f"{tmp_out}_own")
    func, func_direct = multi_label_terms(f"{tmp_out}_func", compute_loss_func=bce)
    assert own_direct == func_direct and own_direct["bernoulli"] != pytest.approx(own_direct["softmax"])
    for terms in (own, func):
        assert terms["smart_breg_loss"] == pytest.approx(own_direct["bernoulli"], rel=1e-5)
    for key in ("smart_task_loss", "smart_adv_loss", "smart_breg_loss"):
        assert func[key] == pytest.approx(own[key], rel=1e-5), key


def test_extra_terms_scale_without_the_trainers_loss_is_scaled_for_ga(tmp_out, monkeypatch):
    """transformers 5.6-5.18 (allowed by pyproject) have no Trainer.loss_is_scaled_for_ga: every SMART
    step failed with AttributeError. The rule is then the Trainer's own: scaled when a compute_loss_func is
    given (sequence-classification heads take no loss kwargs here)."""
    import transformers

    trainer = SmartTrainer(
        model=tiny_model(),
        args=smart_args(tmp_out, gradient_accumulation_steps=2),
        train_dataset=ToyDataset(),
    )
    trainer.current_gradient_accumulation_steps = 2
    monkeypatch.delattr(transformers.Trainer, "loss_is_scaled_for_ga", raising=False)
    assert trainer._extra_term_scale(None) == 1.0
    trainer.compute_loss_func = lambda outputs, labels, num_items_in_batch=None: outputs["loss"]
    assert trainer._extra_term_scale(torch.tensor(8)) == 0.5


def test_beta_schedule_follows_the_warmup_ratio(tmp_out):
    trainer = train(SmartTrainer, smart_args(tmp_out, max_steps=10, smart_beta_warmup_ratio=0.3))
    assert trainer.teacher.warmup_steps == 3
    # the logged β is the one used for the update after that step
    assert logged(trainer, "smart_teacher_beta") == [0.99] * 3 + [0.999] * 7


def test_adv_every_skips_the_regularizer(tmp_out):
    trainer = train(SmartTrainer, smart_args(tmp_out, smart_adv_every=3))
    assert len(logged(trainer, "smart_adv_loss")) == 2  # steps 0 and 3 of 0..5


def test_shared_and_off_dropout_policies_train(tmp_out):
    for policy in ("shared", "off"):
        trainer = train(SmartTrainer, smart_args(f"{tmp_out}_{policy}", smart_dropout=policy))
        assert all(math.isfinite(v) for v in logged(trainer, "smart_adv_loss"))


def test_nonfinite_term_is_skipped_counted_and_warned_once(tmp_out, monkeypatch):
    from smart_tune.adversarial import RegularizerOutput

    model = tiny_model(dropout=0.1)
    trainer = SmartTrainer(model=model, args=smart_args(tmp_out), train_dataset=ToyDataset())
    monkeypatch.setattr(
        type(trainer.regularizer),
        "__call__",
        lambda self, *a, **k: RegularizerOutput(None, None, 0.0, nonfinite=True),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    ours = [w for w in caught if "non-finite" in str(w.message)]
    assert len(ours) == 1
    assert logged(trainer, "smart_nonfinite")[-1] == 6
    assert not logged(trainer, "smart_adv_loss")
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_teacher_is_saved_and_restored_with_checkpoints(tmp_out):
    full = train(SmartTrainer, smart_args(tmp_out + "_full", max_steps=6))
    first = train(SmartTrainer, smart_args(tmp_out, max_steps=6, save_strategy="steps", save_steps=3))
    ckpt = os.path.join(tmp_out, "checkpoint-3")
    assert os.path.isfile(os.path.join(ckpt, TEACHER_WEIGHTS)) and os.path.isfile(
        os.path.join(ckpt, TEACHER_STATE)
    )
    del first
    model = tiny_model(dropout=0.1, seed=5)  # different init: everything must come from the checkpoint
    resumed = SmartTrainer(
        model=model,
        args=smart_args(tmp_out, max_steps=6, save_strategy="steps", save_steps=3),
        train_dataset=ToyDataset(),
    )
    resumed.train(resume_from_checkpoint=ckpt)
    assert resumed.teacher.optimizer_steps == 6
    assert max_weight_diff(full, resumed) <= 1e-6
    for a, b in zip(full.teacher.model.parameters(), resumed.teacher.model.parameters()):
        assert (a - b).abs().max() <= 1e-6


def test_argument_validation(tmp_out):
    with pytest.raises(ConfigError, match="smart_method"):
        smart_args(tmp_out, smart_method="freelb")
    with pytest.raises(ConfigError, match="smart_dropout"):
        smart_args(tmp_out, smart_dropout="maybe")
    with pytest.raises(ConfigError, match="smart_epsilon"):
        smart_args(tmp_out, smart_epsilon=0.0)
    with pytest.raises(ConfigError, match="SmartTrainingArguments"):
        SmartTrainer(
            model=tiny_model(), args=TrainingArguments(**common_args(tmp_out)), train_dataset=ToyDataset()
        )


def test_model_without_inputs_embeds_is_refused(tmp_out):
    model = tiny_model()
    forward = model.forward

    def no_embeds(input_ids=None, attention_mask=None, token_type_ids=None, labels=None):
        return forward(input_ids=input_ids, attention_mask=attention_mask, labels=labels)

    model.forward = no_embeds
    with pytest.raises(ConfigError, match="inputs_embeds") as refused:  # one line on the command line
        SmartTrainer(model=model, args=smart_args(tmp_out), train_dataset=ToyDataset())
    assert "\n" not in str(refused.value)


def test_teacher_horizon_sets_beta_from_the_run_length(tmp_out):
    args = smart_args(tmp_out, max_steps=8, smart_teacher_horizon=0.25, smart_beta_warmup=0.99)
    trainer = train(SmartTrainer, args)
    assert trainer.teacher.beta == pytest.approx(1 - 1 / (0.25 * 8))  # τ = 2 of the run's 8 updates
    assert trainer.teacher.beta_warmup == trainer.teacher.beta  # the warm-up never averages longer
    assert trainer.teacher.num_updates == 8
    logged = [h["smart_teacher_beta"] for h in trainer.state.log_history if "smart_teacher_beta" in h]
    assert logged and all(b == pytest.approx(0.5) for b in logged)
    with pytest.raises(ConfigError):
        smart_args(tmp_out, smart_teacher_horizon=float("nan"))
