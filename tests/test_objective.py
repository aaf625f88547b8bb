"""SmartObjective: Algorithm 1's loss as one criterion, the same in a plain loop and in SmartTrainer."""

import pytest
import torch

from conftest import ToyDataset, tiny_model, toy_batch
from smart_tune import (
    AdversarialRegularizer,
    MeanTeacher,
    SmartObjective,
    SmartTrainer,
    SmartTrainingArguments,
)
from smart_tune.adversarial import RegularizerOutput
from smart_tune.config import build_regularizer

KIND = "single_label_classification"


def perturb_(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def test_total_is_task_loss_plus_weighted_terms_computed_directly():
    model = tiny_model(dropout=0.0).train()
    teacher = MeanTeacher(model)
    perturb_(model, 1)  # θ ≠ θ̃, so D_Breg > 0
    r_s = AdversarialRegularizer(epsilon=1e-2, sigma=1e-2, eta=1e-1)
    objective = SmartObjective(r_s, teacher, lambda_s=3.0, mu=0.5)
    batch = toy_batch()
    torch.manual_seed(0)
    terms = objective.loss(model, batch)
    # The same terms, each from its own piece.
    torch.manual_seed(0)
    out = model(**batch)
    adv = r_s(model, batch, out.logits, KIND)
    breg = teacher.divergence(batch, out.logits, KIND).mean()
    torch.testing.assert_close(terms.task, out.loss)
    torch.testing.assert_close(terms.adversarial, adv.loss)
    torch.testing.assert_close(terms.bregman, breg)
    torch.testing.assert_close(terms.total, out.loss + 3.0 * adv.loss + 0.5 * breg)
    assert terms.adversarial > 0 and terms.bregman > 0 and terms.dropped == []
    assert float(terms.delta_linf) <= 1e-2 + 1e-9


def test_prepare_feeds_the_word_embeddings_once_and_reuses_them():
    model = tiny_model("roberta", dropout=0.0).eval()  # RoBERTa: positions differ for ids and embeddings
    batch = toy_batch("roberta", left_pad=True)
    seen = []

    class Spy:
        dropout = "independent"

        def __call__(self, model, batch, logits, kind, rng_state=None, loss_scale=1.0, embeds=None):
            seen.append(embeds)
            return RegularizerOutput(logits.sum() * 0, None, 0.0)

    objective = SmartObjective(Spy(), None)
    prepared = objective.prepare(model, batch)
    assert "input_ids" not in prepared.inputs and prepared.inputs["inputs_embeds"] is prepared.embeds
    torch.testing.assert_close(model(**prepared.inputs).logits, model(**batch).logits)
    objective.loss(model, batch)
    assert seen and seen[-1] is not None and seen[-1].shape == (*batch["input_ids"].shape, 32)


def test_a_batch_without_input_ids_is_refused_in_one_line_when_r_s_follows():
    from smart_tune.errors import ConfigError

    model = tiny_model(dropout=0.0)
    batch = toy_batch()
    embedded = {k: v for k, v in batch.items() if k != "input_ids"}
    embedded["inputs_embeds"] = model.get_input_embeddings()(batch["input_ids"])
    objective = SmartObjective(AdversarialRegularizer(), None)
    with pytest.raises(ConfigError, match="the batch has no input_ids") as info:
        objective.loss(model, embedded)  # was a KeyError: 'input_ids' inside R_s
    assert "\n" not in str(info.value)
    SmartObjective(None, MeanTeacher(model)).loss(model, embedded)  # no R_s: nothing to perturb, it runs


def test_a_nonfinite_term_is_dropped_and_named():
    class Broken:
        dropout = "independent"

        def __call__(self, *args, **kwargs):
            return RegularizerOutput(None, None, 0.0, nonfinite=True)

    model = tiny_model(dropout=0.0).train()
    terms = SmartObjective(Broken(), MeanTeacher(model), mu=1.0).loss(model, toy_batch())
    assert terms.dropped == ["R_s"] and terms.adversarial is None
    torch.testing.assert_close(terms.total, terms.task + terms.bregman)


def test_a_plain_loop_step_equals_smart_trainer(tmp_path):
    """One step of a plain loop with SmartObjective: the same loss and gradients as SmartTrainer's
    compute_loss (dropout off, one seed)."""
    args = SmartTrainingArguments(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to="none",
        smart_epsilon=1e-2,
        smart_sigma=1e-2,
        smart_eta=1e-1,
        smart_lambda=2.0,
        smart_mu=1.0,
    )
    batch = toy_batch()
    trainer_model, loop_model = tiny_model(dropout=0.0), tiny_model(dropout=0.0)
    trainer = SmartTrainer(model=trainer_model, args=args, train_dataset=ToyDataset())
    trainer._start_teacher(max_steps=10)
    perturb_(trainer_model, 2)
    perturb_(loop_model, 2)
    teacher = MeanTeacher(tiny_model(dropout=0.0), beta=args.smart_beta, beta_warmup=args.smart_beta_warmup)
    objective = SmartObjective(build_regularizer(args), teacher, args.smart_lambda, args.smart_mu)

    trainer_model.train(), loop_model.train()
    torch.manual_seed(5)
    trainer_loss = trainer.compute_loss(trainer_model, dict(batch))
    trainer_loss.backward()
    torch.manual_seed(5)
    terms = objective.loss(loop_model, dict(batch))
    terms.total.backward()

    torch.testing.assert_close(terms.total, trainer_loss)
    for (name, a), b in zip(trainer_model.named_parameters(), loop_model.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)
    assert terms.adversarial is not None and terms.bregman > 0


@pytest.mark.parametrize("method", ["smart", "r3f"])
def test_smart_trainer_calls_the_objective(tmp_path, method):
    args = SmartTrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", max_steps=2, smart_method=method
    )
    trainer = SmartTrainer(model=tiny_model(), args=args, train_dataset=ToyDataset())
    assert isinstance(trainer.objective, SmartObjective)
    assert trainer.objective.lambda_s == args.smart_lambda and trainer.objective.mu == args.smart_mu
    trainer.train()
    assert (trainer.teacher is not None) == (method == "smart")
