import pytest
import torch
from torch import nn

from conftest import ARCHS, tiny_model, toy_batch
from smart_tune.adversarial import (
    AdversarialRegularizer,
    NoiseRegularizer,
    capture_rng_state,
    embedding_scale,
    position_ids_for,
    word_embeddings,
)
from smart_tune.divergences import symmetric_kl

CLS = "single_label_classification"


def record_passes(model):
    """Wrap model.forward to keep the kwargs of every call."""
    calls, inner = [], model.forward

    def forward(*args, **kwargs):
        calls.append({k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in kwargs.items()})
        return inner(*args, **kwargs)

    model.forward = forward
    return calls


def clean_logits(model, batch):
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    return model(**inputs).logits


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("left_pad", [False, True])
def test_inputs_embeds_of_word_embeddings_equals_input_ids(arch, left_pad):
    model = tiny_model(arch).eval()
    batch = toy_batch(arch, left_pad=left_pad)
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "input_ids")}
    position_ids = position_ids_for(model, batch["input_ids"])
    if position_ids is not None:
        inputs["position_ids"] = position_ids
    with torch.no_grad():
        by_ids = model(
            input_ids=batch["input_ids"], **{k: v for k, v in inputs.items() if k != "position_ids"}
        )
        by_embeds = model(inputs_embeds=word_embeddings(model, batch["input_ids"]), **inputs)
    torch.testing.assert_close(by_embeds.logits, by_ids.logits, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("steps", [1, 3])
def test_every_perturbed_pass_stays_in_the_ball_and_off_padding(arch, steps):
    model = tiny_model(arch, dropout=0.1).train()
    batch = toy_batch(arch, batch=4, length=10)
    eps = 1e-3
    reg = AdversarialRegularizer(
        epsilon=eps, sigma=1e-2, eta=1e-1, steps=steps
    )  # σ, η ≫ ε: the clamp must act
    logits = clean_logits(model, batch)
    calls = record_passes(model)
    out = reg(model, batch, logits, CLS)
    x = word_embeddings(model, batch["input_ids"]).detach()
    pad = batch["attention_mask"] == 0
    assert len(calls) == steps + 1  # T_x̃ ascent passes and the final one
    for call in calls:
        # through inputs_embeds only: position/type embeddings are then added once, by the model
        assert "input_ids" not in call and "labels" not in call
        delta = call["inputs_embeds"] - x
        # x̃ − x is measured after x̃ = x + δ was rounded to float32: allow that rounding, nothing more.
        rounding = torch.finfo(x.dtype).eps * x.abs().max()
        assert delta.abs().max() <= eps + rounding
        assert torch.equal(delta[pad], torch.zeros_like(delta[pad]))
        assert delta[~pad].abs().max() > 0.5 * eps
    assert out.delta_linf <= eps * (1 + 1e-6)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss) and out.per_example.shape == (4,)


class LinearToy(nn.Module):
    """f(x) = mean over real tokens of x, times W: small enough to differentiate by hand."""

    def __init__(self, vocab=20, hidden=3, classes=2):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(vocab, hidden)
        self.w = nn.Linear(hidden, classes, bias=False)

    def get_input_embeddings(self):
        return self.emb

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None):
        x = self.emb(input_ids) if inputs_embeds is None else inputs_embeds
        m = attention_mask.unsqueeze(-1).float()
        return {"logits": self.w((x * m).sum(1) / m.sum(1))}


@pytest.mark.parametrize("epsilon", [10.0, 2e-3])
def test_ascent_step_is_eta_times_g_over_its_linf_norm_then_clamped(epsilon):
    model = LinearToy().double()  # float64: x̃ − x then carries no visible rounding
    ids = torch.tensor([[3, 4, 5], [6, 7, 1]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    batch = {"input_ids": ids, "attention_mask": mask}
    sigma, eta = 1e-3, 1e-2
    with torch.no_grad():
        logits = model(ids, mask)["logits"]
    x = model.emb(ids).detach()
    m = mask.unsqueeze(-1).double()

    # Direct computation: the same noise draw, g = ∂/∂x̃ Σ_i ℓ_s(f(x̃_i), f(x_i)) by autograd on the formula.
    torch.manual_seed(123)
    nu = (torch.randn_like(x) * sigma).clamp(-epsilon, epsilon) * m
    xt = (x + nu).requires_grad_(True)
    adv = model.w((xt * m).sum(1) / m.sum(1))
    (g,) = torch.autograd.grad(symmetric_kl(adv, logits).sum(), xt)
    g_inf = g.abs().flatten(1).max(1).values.view(-1, 1, 1)  # per example, not per token
    expected = (nu + eta * g / g_inf).clamp(-epsilon, epsilon) * m

    torch.manual_seed(123)
    calls = record_passes(model)
    AdversarialRegularizer(epsilon=epsilon, sigma=sigma, eta=eta, steps=1)(model, batch, logits, CLS)
    got = calls[-1]["inputs_embeds"] - x
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-15)
    if epsilon == 10.0:  # no clamp: the step moved each example's largest coordinate by exactly η
        assert torch.allclose(
            (got - nu).abs().flatten(1).max(1).values, torch.full((2,), eta, dtype=torch.float64)
        )


def test_ascent_step_unit():
    reg = AdversarialRegularizer(epsilon=1.0, eta=0.5)
    grad = torch.tensor([[[1.0, -4.0], [2.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    delta = torch.zeros_like(grad)
    out = reg.ascent_step(delta, grad, 0.5, 1.0)
    torch.testing.assert_close(out[0], torch.tensor([[0.125, -0.5], [0.25, 0.0]]))
    assert torch.equal(out[1], torch.zeros(2, 2))  # zero gradient: no step, no NaN
    clamped = reg.ascent_step(delta, grad, 0.5, 0.2)
    torch.testing.assert_close(clamped[0], torch.tensor([[0.125, -0.2], [0.2, 0.0]]))


def test_official_variant_normalises_per_token_to_about_one():
    model = tiny_model("bert")
    batch = toy_batch("bert")
    # ε is only a division guard in this rule; a negligible one makes every token's max exactly 1.
    reg = AdversarialRegularizer(epsilon=1e-12, sigma=1e-5, eta=1e-3, projection="official")
    calls = record_passes(model)
    reg(model, batch, clean_logits(model, batch).detach(), CLS)
    x = word_embeddings(model, batch["input_ids"]).detach()
    delta = calls[-1]["inputs_embeds"] - x
    real = batch["attention_mask"].bool()
    per_token = delta.abs().amax(-1)[real]
    torch.testing.assert_close(per_token, torch.ones_like(per_token), rtol=1e-4, atol=1e-4)


def test_relative_scale_multiplies_by_embedding_magnitude():
    model = tiny_model("bert")
    batch = toy_batch("bert")
    x = word_embeddings(model, batch["input_ids"]).detach()
    mask = batch["attention_mask"].unsqueeze(-1).float()
    unit = float(embedding_scale(x, mask))
    direct = float((x.abs() * mask).sum() / (mask.sum() * x.shape[-1]))
    assert unit == pytest.approx(direct, rel=1e-6)
    eps = 0.1
    calls = record_passes(model)
    AdversarialRegularizer(epsilon=eps, sigma=eps, eta=1.0, scale="relative")(
        model, batch, clean_logits(model, batch).detach(), CLS
    )
    delta = calls[-1]["inputs_embeds"] - x
    assert delta.abs().max() <= eps * unit * (1 + 1e-5)
    assert delta.abs().max() >= 0.99 * eps * unit


def test_dropout_policies():
    model = tiny_model("bert", dropout=0.5).train()
    batch = toy_batch("bert")
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    # A zero-size perturbation isolates what the dropout policy does to the divergence.
    tiny = dict(epsilon=1e-12, sigma=0.0, eta=1e-12)

    rng = capture_rng_state()
    logits = model(**inputs).logits
    shared = AdversarialRegularizer(dropout="shared", **tiny)(model, batch, logits, CLS, rng_state=rng)
    assert shared.loss < 1e-8  # same masks, same input: the same output

    independent = AdversarialRegularizer(dropout="independent", **tiny)(model, batch, logits, CLS)
    assert independent.loss > 1e-4  # two dropout draws differ

    off = AdversarialRegularizer(dropout="off", **tiny)(model, batch, logits, CLS)
    with torch.no_grad():
        eval_logits = model.eval()(**inputs).logits
    model.train()
    torch.testing.assert_close(
        off.per_example, symmetric_kl(logits.detach(), eval_logits), rtol=1e-3, atol=1e-7
    )
    assert all(m.training for m in model.modules())  # modes restored

    with pytest.raises(ValueError, match="shared"):
        AdversarialRegularizer(dropout="shared")(model, batch, logits, CLS)


def test_replay_keeps_the_rest_of_training_random():
    model = tiny_model("bert", dropout=0.5).train()
    batch = toy_batch("bert")
    rng = capture_rng_state()
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    after_clean = torch.get_rng_state()
    AdversarialRegularizer(dropout="shared", sigma=0.0)(model, batch, logits, CLS, rng_state=rng)
    assert not torch.equal(torch.get_rng_state(), rng["cpu"])
    assert not torch.equal(torch.get_rng_state(), after_clean)  # the noise draw advanced it, as it should


def test_ascent_computes_no_weight_gradients_and_final_term_reaches_both_sides():
    model = tiny_model("bert").train()
    batch = toy_batch("bert")
    logits = clean_logits(model, batch)
    out = AdversarialRegularizer()(model, batch, logits, CLS)
    assert all(p.grad is None for p in model.parameters())  # the ascent used autograd.grad on δ only
    assert all(p.requires_grad for p in model.parameters())  # and unfroze the weights
    out.loss.backward()
    assert model.get_input_embeddings().weight.grad.abs().sum() > 0
    assert model.classifier.weight.grad.abs().sum() > 0


def test_regression_and_multilabel_run():
    model = tiny_model("bert", num_labels=1)
    batch = toy_batch("bert", regression=True)
    out = AdversarialRegularizer(epsilon=1e-2, sigma=1e-2)(
        model, batch, clean_logits(model, batch), "regression"
    )
    assert out.per_example.shape == (4,) and torch.isfinite(out.loss)
    model = tiny_model("bert", num_labels=3, problem_type="multi_label_classification")
    out = AdversarialRegularizer()(model, batch, clean_logits(model, batch), "multi_label_classification")
    assert out.per_example.shape == (4,) and torch.isfinite(out.loss)


def test_nonfinite_inner_gradient_is_reported_not_raised():
    model = LinearToy()
    batch = {"input_ids": torch.tensor([[3, 4]]), "attention_mask": torch.tensor([[1, 1]])}
    with torch.no_grad():
        model.w.weight[0, 0] = float("inf")
    logits = model(**batch)["logits"]
    out = AdversarialRegularizer()(model, batch, logits, CLS)
    assert out.nonfinite and out.loss is None


@pytest.mark.parametrize("noise", ["uniform", "normal"])
def test_r3f_noise_is_one_pass_of_size_epsilon_off_padding(noise):
    model = tiny_model("bert").train()
    batch = toy_batch("bert")
    logits = clean_logits(model, batch)
    calls = record_passes(model)
    out = NoiseRegularizer(epsilon=1e-2, noise=noise)(model, batch, logits, CLS)
    assert len(calls) == 1 and "input_ids" not in calls[0]
    delta = calls[0]["inputs_embeds"] - word_embeddings(model, batch["input_ids"]).detach()
    pad = batch["attention_mask"] == 0
    assert torch.equal(delta[pad], torch.zeros_like(delta[pad]))
    if noise == "uniform":
        assert delta.abs().max() <= 1e-2 * (1 + 1e-5)
    assert 3e-3 < delta[~pad].std() < 2e-2
    assert torch.isfinite(out.loss)


def test_invalid_options():
    with pytest.raises(ValueError):
        AdversarialRegularizer(dropout="sometimes")
    with pytest.raises(ValueError):
        AdversarialRegularizer(projection="l2")
    with pytest.raises(ValueError):
        AdversarialRegularizer(epsilon=0)
    with pytest.raises(ValueError):
        NoiseRegularizer(noise="laplace")
