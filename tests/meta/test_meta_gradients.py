"""Every PolicyNet output earns its place: the outer loss depends on it (finite differences)
and its meta-gradient arrives under the default order; the budget penalty binds where a
budget cannot be met."""

from __future__ import annotations

import copy

import pytest
import torch

from fewshot_kd.meta.config import MetaTrainConfig
from fewshot_kd.meta.episodes import load_family, make_episode
from fewshot_kd.meta.objective import InnerConfig, episode_loss
from fewshot_kd.meta.policy_net import Decisions, PolicyNet

pytestmark = pytest.mark.slow
SCALARS = ("temperature", "alpha", "feature_weight", "inner_lr_scale")
VECTORS = ("ratios", "lr_scale", "pair_weights", "p8")


@pytest.fixture(scope="module")
def episode():
    config = MetaTrainConfig(ways=3, shots=(5,), views=2, query_per_class=5, macs_range=(0.5, 0.5), bits=(8,))
    return make_episode([load_family("digits", 3)], 0, config.episode_spec, 0)


@pytest.fixture(scope="module")
def episode64():
    """The same kind of episode in float64, so that finite differences are accurate."""
    config = MetaTrainConfig(ways=3, shots=(5,), views=2, query_per_class=5, macs_range=(0.5, 0.5), bits=(8,))
    family = load_family("digits", 3)
    family.student, family.teacher = copy.deepcopy(family.student).double(), copy.deepcopy(family.teacher).double()
    ep = make_episode([family], 0, config.episode_spec, 0)
    ep.support_x, ep.query_x, ep.teacher_logits = ep.support_x.double(), ep.query_x.double(), ep.teacher_logits.double()
    ep.teacher_features = [f.double() for f in ep.teacher_features]
    ep.description.layer_params = ep.description.layer_params.double()
    ep.description.layer_macs = ep.description.layer_macs.double()
    return ep


def _decisions(desc, dtype=torch.float32, **changes) -> Decisions:
    values = dict(ratios=torch.full((len(desc.groups),), 0.3), p8=torch.full((len(desc.layers),), 0.7),
                  lr_scale=torch.ones(len(desc.layers)), pair_weights=torch.ones(len(desc.pairs)),
                  temperature=torch.tensor(4.0), alpha=torch.tensor(0.7), feature_weight=torch.tensor(3.0),
                  inner_lr_scale=torch.tensor(2.0), macs_fraction=torch.tensor(0.5), avg_bits=torch.tensor(8.0))
    values.update(changes)
    return Decisions(**{k: v.detach().clone().to(dtype).requires_grad_() if k in SCALARS + VECTORS else v
                        for k, v in values.items()})


def _loss(decisions, episode, config) -> torch.Tensor:
    torch.manual_seed(0)
    return episode_loss(decisions, episode, config)[0]


@pytest.mark.parametrize("name", SCALARS + VECTORS)
def test_each_output_changes_the_outer_loss_and_gets_its_exact_gradient(episode64, name):
    """Second order through a short loop, in float64, with BatchNorm statistics held fixed and
    a large Adam epsilon: the meta-gradient is exact, and autograd agrees with a central
    difference. Why those settings: adapt()'s epsilon (1e-8) makes the first Adam steps
    sign-like (piecewise constant in the loss's knobs), and rounding has no derivative, so
    ``p8`` alone is checked with quantized weights (its mixture weight is smooth). Prune
    ratios are checked on the query loss alone (no steps): in the loop, channels gated to ~0
    sit on ReLU's kink, where the loss has no derivative to compare with."""
    ep = copy.copy(episode64)
    if name != "p8":
        ep.target_bits = None
    steps, lr = (1, 0.0) if name == "ratios" else (3, 1e-3)
    config = InnerConfig(steps=steps, order="second", lr=lr, batchnorm="eval", adam_eps=1.0)
    decisions = _decisions(ep.description, torch.float64)
    (grad,) = torch.autograd.grad(_loss(decisions, ep, config), getattr(decisions, name))
    grad = float(grad.reshape(-1)[0])
    eps = 1e-6  # float64: accurate to ~1e-9 here; a step of 1e-4 crossed a ReLU kink on some processors
    moved = []
    for sign in (1, -1):
        shifted = getattr(decisions, name).detach().clone()
        shifted.view(-1)[0] += sign * eps
        moved.append(_loss(_decisions(ep.description, torch.float64, **{name: shifted}), ep, config).item())
    finite = (moved[0] - moved[1]) / (2 * eps)
    assert finite != 0.0, f"the outer loss does not depend on {name}"
    assert grad == pytest.approx(finite, rel=1e-2, abs=1e-7), (name, grad, finite)


def test_every_policy_head_gets_meta_gradient_under_the_default_order(episode):
    net = PolicyNet()
    loss, _ = episode_loss(net, episode, InnerConfig(steps=6, truncate=3))
    loss.backward()
    layer_rows = net.layer_head.weight.grad.abs().sum(1)  # prune preference, lr scale, 8-bit logit
    global_rows = net.global_head.weight.grad.abs().sum(1)  # temperature, alpha, feature weight, inner lr
    assert (layer_rows > 0).all(), layer_rows
    assert (global_rows > 0).all(), global_rows
    assert net.pair_head.weight.grad.abs().sum() > 0


def test_first_order_gives_no_gradient_to_the_loss_knobs(episode):
    """Why the default is truncated: first order leaves temperature and alpha without gradient."""
    decisions = _decisions(episode.description)
    loss = _loss(decisions, episode, InnerConfig(steps=3, order="first"))
    grads = torch.autograd.grad(loss, [decisions.temperature, decisions.inner_lr_scale], allow_unused=True)
    assert grads[0] is None or grads[0] == 0
    assert grads[1] is not None and grads[1] != 0


def test_budget_penalty_binds_where_the_target_cannot_be_met(episode):
    """Ratios saturate at 0.9, so a 0.1 % MACs budget cannot be met: the penalty is positive and
    its gradient lowers the MACs the policy asks for."""
    tight = copy.copy(episode)
    tight.target_macs = 0.001
    net = PolicyNet()
    loss, metrics = episode_loss(net, tight, InnerConfig(steps=2, truncate=1))
    assert metrics["penalty"] > 0 and metrics["macs_fraction"] > 0.001
    loss_ok, metrics_ok = episode_loss(net, episode, InnerConfig(steps=2, truncate=1))
    assert metrics_ok["penalty"] == pytest.approx(0.0, abs=1e-6)


def test_p8_meets_a_bits_budget_below_eight(episode):
    from fewshot_kd.meta.descriptors import task_features

    net = PolicyNet()
    desc = episode.description
    six = net(desc, task_features(5, 3, 0.5, 6, False), 0.5, 6)
    eight = net(desc, task_features(5, 3, 0.5, 8, False), 0.5, 8)
    assert float(six.avg_bits) == pytest.approx(6.0, abs=1e-3)
    assert float(eight.avg_bits) > 7.5
