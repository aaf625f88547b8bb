import pytest
import torch

from smart_tune.divergences import (
    binary_symmetric_kl,
    problem_type_of,
    smoothness_divergence,
    squared_error,
    symmetric_kl,
)


def direct_symmetric_kl(a, b):
    """KL(P‖Q) + KL(Q‖P) written out in float64 from the probabilities."""
    p, q = torch.softmax(a.double(), -1), torch.softmax(b.double(), -1)
    return (p * (p.log() - q.log())).sum(-1) + (q * (q.log() - p.log())).sum(-1)


def test_symmetric_kl_matches_the_formula():
    torch.manual_seed(0)
    a, b = torch.randn(8, 5) * 3, torch.randn(8, 5) * 3
    got = symmetric_kl(a, b)
    assert got.shape == (8,) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), direct_symmetric_kl(a, b), rtol=1e-5, atol=1e-6)
    # and against torch's own KL, both directions
    kl = torch.nn.functional.kl_div
    lp, lq = torch.log_softmax(a, -1), torch.log_softmax(b, -1)
    both = kl(lq, lp, log_target=True, reduction="none").sum(-1) + kl(
        lp, lq, log_target=True, reduction="none"
    ).sum(-1)
    torch.testing.assert_close(got, both, rtol=1e-5, atol=1e-6)


def test_symmetric_kl_properties():
    torch.manual_seed(1)
    a, b = torch.randn(16, 3), torch.randn(16, 3)
    assert (symmetric_kl(a, b) >= 0).all()
    torch.testing.assert_close(symmetric_kl(a, b), symmetric_kl(b, a))
    assert torch.equal(symmetric_kl(a, a), torch.zeros(16))
    # shift invariance of softmax: adding a constant per row changes nothing
    torch.testing.assert_close(symmetric_kl(a + 7.0, b), symmetric_kl(a, b), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scale", [1e2, 1e4, 1e30])
def test_symmetric_kl_finite_for_extreme_logits(scale):
    a = torch.tensor([[scale, -scale, 0.0], [0.0, 0.0, scale]])
    b = torch.tensor([[-scale, scale, 0.0], [scale, 0.0, 0.0]])
    out = symmetric_kl(a, b)
    assert torch.isfinite(out).all() and (out > 0).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_symmetric_kl_half_precision_inputs(dtype):
    torch.manual_seed(2)
    a, b = (torch.randn(4, 3) * 20).to(dtype), (torch.randn(4, 3) * 20).to(dtype)
    out = symmetric_kl(a, b)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out, symmetric_kl(a.float(), b.float()))
    big = torch.tensor([[60000.0, -60000.0]], dtype=torch.float16)
    assert torch.isfinite(symmetric_kl(big, -big)).all()


def test_symmetric_kl_gradient_flows_to_both_sides():
    a = torch.randn(3, 4, requires_grad=True)
    b = torch.randn(3, 4, requires_grad=True)
    symmetric_kl(a, b).sum().backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_squared_error_shapes_match_without_broadcast():
    p = torch.tensor([1.0, 2.0, 3.0])
    q = torch.tensor([[1.5], [2.0], [1.0]])
    out = squared_error(p, q)
    assert out.shape == (3,)
    torch.testing.assert_close(out, torch.tensor([0.25, 0.0, 4.0]))
    torch.testing.assert_close(squared_error(q, p), out)
    with pytest.raises(ValueError):
        squared_error(torch.zeros(3), torch.zeros(3, 2))


def test_binary_symmetric_kl_matches_bernoulli_formula():
    torch.manual_seed(3)
    a, b = torch.randn(5, 4) * 2, torch.randn(5, 4) * 2
    p, q = torch.sigmoid(a.double()), torch.sigmoid(b.double())
    direct = ((p - q) * (p.log() - q.log()) + ((1 - p) - (1 - q)) * ((1 - p).log() - (1 - q).log())).sum(-1)
    torch.testing.assert_close(binary_symmetric_kl(a, b).double(), direct, rtol=1e-5, atol=1e-6)
    assert torch.isfinite(binary_symmetric_kl(torch.full((1, 2), 1e6), torch.full((1, 2), -1e6))).all()


def test_dispatch_by_problem_type():
    a, b = torch.randn(2, 3), torch.randn(2, 3)
    assert torch.equal(smoothness_divergence(a, b, "single_label_classification"), symmetric_kl(a, b))
    assert torch.equal(smoothness_divergence(a, b, "multi_label_classification"), binary_symmetric_kl(a, b))
    assert torch.equal(
        smoothness_divergence(a[:, :1], b[:, 0], "regression"), squared_error(a[:, :1], b[:, 0])
    )
    with pytest.raises(ValueError):
        smoothness_divergence(a, b, "ranking")


def test_problem_type_of_config():
    from transformers import BertConfig

    assert problem_type_of(BertConfig(num_labels=1)) == "regression"
    assert problem_type_of(BertConfig(num_labels=3)) == "single_label_classification"
    assert problem_type_of(BertConfig(num_labels=3, problem_type="multi_label_classification")) == (
        "multi_label_classification"
    )
    # No problem_type in the config: the labels decide, by the models' own rule
    multi_hot, ids = torch.tensor([[1.0, 0.0, 1.0]]), torch.tensor([2])
    assert problem_type_of(BertConfig(num_labels=3), multi_hot) == "multi_label_classification"
    assert problem_type_of(BertConfig(num_labels=3), ids) == "single_label_classification"
    assert problem_type_of(BertConfig(num_labels=1), multi_hot[:, 0]) == "regression"
    assert problem_type_of(
        BertConfig(num_labels=3, problem_type="single_label_classification"), multi_hot
    ) == ("single_label_classification")
