"""Fake quantizers: grid, error bounds, STE and LSQ gradients against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from fewshot_kd.quant.fake import (
    ActivationQuantizer,
    WeightQuantizer,
    activation_range,
    check_bits,
    fake_quantize,
    lsq_grad_scale,
    weight_range,
)


def test_integer_ranges():
    assert weight_range(8) == (-127, 127)
    assert weight_range(4) == (-7, 7)
    assert weight_range(2) == (-1, 1)
    assert activation_range(8, symmetric=False) == (0, 255)
    assert activation_range(8, symmetric=True) == (-128, 127)


@pytest.mark.parametrize("bad", [1, 9, 2.5, True, "8"])
def test_bits_outside_2_to_8_are_rejected(bad):
    with pytest.raises(ValueError, match="from 2 to 8"):
        check_bits(bad)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_weight_error_within_half_step_and_on_grid(bits):
    w = torch.randn(6, 3, 3, 3) * torch.linspace(0.1, 2.0, 6)[:, None, None, None]
    quant = WeightQuantizer(bits, 6)
    quant.init_from_(w, "minmax")
    step = quant.step.detach()
    qmax = 2 ** (bits - 1) - 1
    torch.testing.assert_close(step, w.abs().flatten(1).amax(1) / qmax)
    q = quant(w).detach()
    err = (w - q).abs().flatten(1).amax(1)
    assert torch.all(err <= step / 2 + 1e-6)
    codes = q / step[:, None, None, None]
    torch.testing.assert_close(codes, codes.round(), atol=1e-4, rtol=0)
    assert codes.abs().max() <= qmax + 1e-4
    torch.testing.assert_close(quant.integer_weight(w).float(), codes.round())


def test_more_bits_give_smaller_error():
    w = torch.randn(16, 8, 3, 3)
    errors = {}
    for bits in (2, 4, 8):
        quant = WeightQuantizer(bits, 16)
        errors[bits] = (quant(w).detach() - w).abs().mean().item()
    assert errors[8] < errors[4] < errors[2]
    assert errors[8] < errors[4] / 10


def test_mse_init_does_not_increase_error():
    w = torch.randn(8, 64)
    w[:, 0] *= 8  # outliers make clipping worthwhile at 3 bits
    minmax, mse = WeightQuantizer(3, 8), WeightQuantizer(3, 8)
    minmax.init_from_(w, "minmax")
    mse.init_from_(w, "mse")
    err = lambda q: (q(w).detach() - w).pow(2).sum(1)
    assert torch.all(err(mse) <= err(minmax) + 1e-6)
    assert err(mse).sum() < err(minmax).sum()


def test_ste_gradient_is_identity_inside_and_zero_when_clipped():
    x = torch.tensor([-3.0, -0.4, 0.2, 0.9, 5.0], requires_grad=True)
    step = torch.tensor(0.5, requires_grad=True)
    out = fake_quantize(x, step, 0.0, qmin=-4, qmax=3, grad_scale=1.0)
    # by hand: x/step = -6, -0.8, 0.4, 1.8, 10 -> rounded and clipped to -4..3
    torch.testing.assert_close(out.detach(), torch.tensor([-2.0, -0.5, 0.0, 1.0, 1.5]))
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0]))
    # LSQ by hand: qmin, round(v)-v, ..., qmax = -4 - 0.2 - 0.4 + 0.2 + 3
    torch.testing.assert_close(step.grad, torch.tensor(-1.4))


def test_lsq_gradient_scale():
    assert lsq_grad_scale(100, 7) == pytest.approx(1 / math.sqrt(700))
    x = torch.tensor([-3.0, -0.4, 0.2, 0.9, 5.0])
    step = torch.tensor(0.5, requires_grad=True)
    g = lsq_grad_scale(x.numel(), 3)
    fake_quantize(x, step, 0.0, -4, 3, grad_scale=g).sum().backward()
    assert step.grad.item() == pytest.approx(-1.4 * g, rel=1e-5)


def _reference_lsq(x, step, qmin, qmax, g):
    """LSQ as written in the paper, with autograd: grad-scaled step, round with STE."""
    s = step * g + (step - step * g).detach()
    v = x / s.view(-1, *([1] * (x.dim() - 1)))
    v = torch.clamp(v, qmin, qmax)
    v = (v.round() - v).detach() + v
    return v * s.view(-1, *([1] * (x.dim() - 1)))


def test_per_channel_lsq_matches_reference_autograd():
    w = torch.randn(4, 5, 3)
    upstream = torch.randn(4, 5, 3)
    step_a = torch.tensor([0.3, 0.1, 0.05, 0.2], requires_grad=True)
    step_b = step_a.detach().clone().requires_grad_(True)
    wa, wb = w.clone().requires_grad_(True), w.clone().requires_grad_(True)
    g = lsq_grad_scale(15, 7)
    (fake_quantize(wa, step_a, 0.0, -7, 7, g, axis=0) * upstream).sum().backward()
    (_reference_lsq(wb, step_b, -7, 7, g) * upstream).sum().backward()
    torch.testing.assert_close(step_a.grad, step_b.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(wa.grad, wb.grad)
    assert torch.all(step_a.grad != 0)


def test_weight_quantizer_step_gets_a_gradient():
    quant = WeightQuantizer(4, 3)
    w = torch.randn(3, 10, requires_grad=True)
    quant(w).pow(2).sum().backward()
    assert quant.step.grad is not None and torch.all(quant.step.grad != 0)
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_asymmetric_activation_range_by_hand():
    quant = ActivationQuantizer(8, symmetric=False)
    quant.init_from_range_(-1.0, 3.0)
    step = 4.0 / 255
    assert quant.step.item() == pytest.approx(step)
    assert quant.zero_point.item() == round(1.0 / step)  # 64
    x = torch.linspace(-1.0, 3.0, 101)
    q = quant(x).detach()
    assert (q - x).abs().max() <= step / 2 + 1e-6
    assert quant(torch.zeros(3)).abs().max().item() == 0.0  # zero is exact
    assert quant(torch.tensor([10.0])).item() == pytest.approx((255 - 64) * step)  # clipped at the top


def test_symmetric_activation_range_by_hand():
    quant = ActivationQuantizer(4, symmetric=True)
    quant.init_from_range_(-2.0, 1.0)
    assert quant.step.item() == pytest.approx(2.0 / 8)
    assert quant.zero_point.item() == 0
    torch.testing.assert_close(quant(torch.tensor([-2.0, -0.3, 1.9])).detach(), torch.tensor([-2.0, -0.25, 1.75]))


def test_percentile_observer_by_hand():
    quant = ActivationQuantizer(8)
    quant.observing, quant.percentile = "percentile", 99.0
    x = torch.arange(1000.0)[torch.randperm(1000)]
    assert torch.equal(quant(x), x)  # observation passes values through
    # k = round(1000 * 0.01) = 10 -> 10th smallest = 9; k = 990 -> 989
    assert quant.observed_min.item() == 9.0
    assert quant.observed_max.item() == 989.0


def test_minmax_observer_and_lazy_init():
    quant = ActivationQuantizer(8)
    x = torch.tensor([0.0, 0.5, 2.55])
    out = quant(x)  # uninitialised outside observation: initialises from this batch
    assert bool(quant.initialized)
    assert quant.step.item() == pytest.approx(0.01)
    torch.testing.assert_close(out.detach(), x)
