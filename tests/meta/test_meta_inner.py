"""Every inner-loop backend against a hand-unrolled reference on a linear model.

The reference writes the gradient of the mean-squared error by hand,
``g(W) = 2 X^T (X W - Y) / n``, and unrolls SGD with it; autograd through that explicit
formula is the exact second-order meta-gradient, and detaching ``g`` gives first order.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.func import functional_call

from fewshot_kd.meta.inner import BACKENDS, unroll

STEPS = 3


def _problem():
    torch.manual_seed(0)
    x, y = torch.randn(12, 4), torch.randn(12, 2)
    xq, yq = torch.randn(9, 4), torch.randn(9, 2)
    w0 = torch.randn(2, 4) * 0.5
    return x, y, xq, yq, w0


def _reference(order: str, truncate: int = 1):
    x, y, xq, yq, w0 = _problem()
    w0 = w0.clone().requires_grad_()
    lr = torch.tensor(0.05, requires_grad=True)
    scale = torch.tensor(1.3, requires_grad=True)  # a hyperparameter inside the inner loss
    w = w0
    for step in range(STEPS):
        g = scale * 2 * (x.T @ (x @ w.T - y)).T / (x.shape[0] * y.shape[1])
        second = order == "second" or (order == "truncated" and step >= STEPS - truncate)
        w = w - lr * (g if second else g.detach())
    outer = ((xq @ w.T - yq) ** 2).mean()
    outer.backward()
    return lr.grad, scale.grad, w0.grad


def _backend(backend: str, order: str, truncate: int = 1):
    x, y, xq, yq, w0 = _problem()
    model = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(w0)
    lr = torch.tensor(0.05, requires_grad=True)
    scale = torch.tensor(1.3, requires_grad=True)

    def loss(params):
        return scale * ((functional_call(model, params, (x,)) - y) ** 2).mean()

    final = unroll(model, loss, {"weight": lr}, STEPS, backend=backend, order=order, truncate=truncate)
    outer = ((functional_call(model, final, (xq,)) - yq) ** 2).mean()
    outer.backward()
    return lr.grad, scale.grad, model.weight.grad


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("order", ["first", "second", "truncated"])
def test_backend_matches_hand_unrolled_reference(backend, order):
    expected = _reference(order)
    got = _backend(backend, order)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)


def test_orders_differ_so_the_check_has_teeth():
    first, second = _reference("first"), _reference("second")
    assert not torch.allclose(first[0], second[0])
    assert not torch.allclose(first[2], second[2])


def test_truncated_over_every_step_is_second_order():
    full = _reference("second")
    for backend in BACKENDS:
        got = _backend(backend, "truncated", truncate=STEPS)
        torch.testing.assert_close(got[0], full[0], rtol=1e-5, atol=1e-7)


def test_unknown_backend_or_order_is_a_clear_error():
    model = nn.Linear(2, 1)
    with pytest.raises(ValueError, match="backend"):
        unroll(model, lambda p: p["weight"].sum(), {}, 1, backend="jax")
    with pytest.raises(ValueError, match="order"):
        unroll(model, lambda p: p["weight"].sum(), {}, 1, order="third")
