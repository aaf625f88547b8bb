import math

import pytest
import torch

from conftest import tiny_model, toy_batch
from smart_tune.divergences import symmetric_kl
from smart_tune.teacher import MeanTeacher, beta_for_horizon


def perturb_(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)


def test_teacher_starts_at_the_student_and_takes_no_gradient():
    model = tiny_model()
    teacher = MeanTeacher(model)
    for t, s in zip(teacher.model.parameters(), model.parameters()):
        assert torch.equal(t, s) and t.data_ptr() != s.data_ptr()  # a copy, not an alias
        assert not t.requires_grad


@pytest.mark.parametrize("beta", [0.0, 0.9, 0.999])
def test_teacher_after_k_updates_equals_closed_form_ema(beta):
    model = tiny_model()
    theta0 = [p.detach().clone() for p in model.parameters()]
    teacher = MeanTeacher(model, beta=beta, beta_warmup=beta)
    history = []
    for k in range(5):
        perturb_(model, k)
        history.append([p.detach().clone() for p in model.parameters()])
        teacher.step(model)
    # θ̃_k = β^k θ_0 + Σ_{i=1..k} (1 − β) β^{k−i} θ_i
    n = len(history)
    for j, t in enumerate(teacher.model.parameters()):
        expected = beta**n * theta0[j].double()
        for i, snap in enumerate(history, start=1):
            expected = expected + (1 - beta) * beta ** (n - i) * snap[j].double()
        torch.testing.assert_close(t.double(), expected, rtol=1e-5, atol=1e-6)
    if beta == 0.0:  # vanilla Bregman proximal point: the teacher is the previous iterate
        for t, s in zip(teacher.model.parameters(), model.parameters()):
            assert torch.equal(t, s)


def test_beta_switches_at_the_warmup_boundary():
    teacher = MeanTeacher(tiny_model(), beta=0.999, beta_warmup=0.99, warmup_steps=3)
    assert [teacher.beta_at(s) for s in (1, 2, 3, 4, 5)] == [0.99, 0.99, 0.99, 0.999, 0.999]
    model = tiny_model()
    teacher = MeanTeacher(model, beta=0.5, beta_warmup=0.0, warmup_steps=1)
    perturb_(model, 0)
    teacher.step(model)  # step 1: β = 0, the teacher jumps to θ_1
    theta1 = [p.detach().clone() for p in model.parameters()]
    assert all(torch.equal(t, s) for t, s in zip(teacher.model.parameters(), theta1))
    perturb_(model, 1)
    teacher.step(model)  # step 2: β = 0.5
    for t, a, b in zip(teacher.model.parameters(), theta1, model.parameters()):
        torch.testing.assert_close(t, 0.5 * a + 0.5 * b)


def test_update_every_s_steps():
    model = tiny_model()
    teacher = MeanTeacher(model, beta=0.0, beta_warmup=0.0, update_every=3)
    start = [p.detach().clone() for p in teacher.model.parameters()]
    moved = []
    for k in range(6):
        perturb_(model, k)
        moved.append(teacher.step(model))
        if k < 2:
            assert all(torch.equal(t, s) for t, s in zip(teacher.model.parameters(), start))
    assert moved == [False, False, True, False, False, True]
    assert teacher.num_updates == 2 and teacher.optimizer_steps == 6


def test_divergence_targets_the_teacher_without_gradient_into_it():
    model = tiny_model().train()
    teacher = MeanTeacher(model)
    perturb_(model, 0)
    batch = toy_batch()
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    d = teacher.divergence(batch, logits, "single_label_classification")
    with torch.no_grad():
        t_logits = teacher.model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    torch.testing.assert_close(d, symmetric_kl(logits, t_logits))
    d.mean().backward()
    assert all(p.grad is None for p in teacher.model.parameters())
    assert model.classifier.weight.grad.abs().sum() > 0


def test_state_dict_round_trip():
    model = tiny_model()
    a = MeanTeacher(model, beta=0.5)
    perturb_(model, 0)
    a.step(model)
    b = MeanTeacher(tiny_model(seed=1), beta=0.5)
    b.load_state_dict(a.state_dict())
    assert b.optimizer_steps == 1 and b.num_updates == 1
    assert all(torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters()))


def test_invalid_arguments():
    with pytest.raises(ValueError):
        MeanTeacher(tiny_model(), beta=1.5)
    with pytest.raises(ValueError):
        MeanTeacher(tiny_model(), update_every=0)


def test_teacher_dropout_policies():
    from smart_tune.adversarial import capture_rng_state

    model = tiny_model(dropout=0.5).train()
    batch = toy_batch()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    # "shared": at θ̃ = θ the teacher replays the clean pass's masks, so D_Breg is exactly zero
    teacher = MeanTeacher(model, dropout="shared")
    rng = capture_rng_state()
    logits = model(**inputs).logits
    assert teacher.divergence(batch, logits, "single_label_classification", rng).abs().max() < 1e-6
    # "off" (the default): the teacher predicts in eval mode, a deterministic target
    teacher = MeanTeacher(model)
    assert teacher.dropout == "off"
    a, b = teacher.logits(batch), teacher.logits(batch)
    assert torch.equal(a, b)
    with torch.no_grad():
        torch.testing.assert_close(a, model.eval()(**inputs).logits)
    model.train()
    # "independent": its own masks, so two calls differ
    teacher = MeanTeacher(model, dropout="independent")
    assert not torch.equal(teacher.logits(batch), teacher.logits(batch))


@pytest.mark.parametrize("horizon,updates", [(0.1, 470), (0.25, 1600), (1.0, 50)])
def test_beta_for_horizon_forgets_the_start_by_exp_minus_one_over_horizon(horizon, updates):
    beta = beta_for_horizon(horizon, updates)
    assert beta == pytest.approx(1 - 1 / (horizon * updates))
    # The weight the EMA leaves on θ_0 after the run: β^N, about exp(−1/horizon).
    assert updates * math.log(beta) == pytest.approx(-1 / horizon, rel=0.02)
    assert beta_for_horizon(0.001, 10) == 0.0  # a time constant below one update: the previous iterate
    with pytest.raises(ValueError):
        beta_for_horizon(0.0, 10)


def test_teacher_with_horizon_beta_is_the_closed_form_ema():
    model = tiny_model()
    theta0 = [p.detach().clone() for p in model.parameters()]
    beta = beta_for_horizon(0.5, 4)  # τ = 2 updates: β = 0.5
    teacher = MeanTeacher(model, beta=beta, beta_warmup=beta)
    history = []
    for k in range(4):
        perturb_(model, 10 + k)
        history.append([p.detach().clone() for p in model.parameters()])
        teacher.step(model)
    for j, t in enumerate(teacher.model.parameters()):
        expected = 0.5**4 * theta0[j].double()
        for i, snap in enumerate(history, start=1):
            expected = expected + 0.5 * 0.5 ** (4 - i) * snap[j].double()
        torch.testing.assert_close(t.double(), expected, rtol=1e-5, atol=1e-6)
