"""Under bf16 autocast the policy and the MACs-budget projection stay fp32: the meta step's
policy gradient is the fp32 one up to the student's own bf16 rounding.

The comparison runs the inner Adam at an epsilon of 1e-3. At adapt()'s 1e-8 the early Adam
steps are sign-like and the second-order meta-gradient amplifies rounding: on a CPU with native
bf16 (AMX) the bf16 and fp32 meta-gradients then measured cosine 0.09 (0.997 at 1e-3), which is
why ``MetaTrainConfig.precision`` defaults to fp32."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from fewshot_kd.meta.episodes import load_family, make_episode
from fewshot_kd.meta.objective import episode_loss
from fewshot_kd.meta.policy_net import PolicyNet
from meta_fixtures import make_tiny_config

# Measured on digits with fp32 policy math: relative error 0.07 at epsilon 1e-3 (CPU with AMX); at 1e-8,
# 0.06 on a CPU without native bf16 and 5.1 with AMX; 2.9 when the projection ran in bf16. At epsilon 1e-3 an
# AVX2-only AMD EPYC (bf16 emulated, other kernels) gives 0.40, still far from the broken case.
RELATIVE_TOLERANCE = 0.5
SMOOTH_ADAM_EPS = 1e-3


@pytest.fixture(scope="module")
def episode():
    config = make_tiny_config(shots=(5,))
    return make_episode([load_family("digits", config.ways)], 0, config.episode_spec, 0), config


def _gradient(episode, config, bf16: bool):
    torch.manual_seed(0)
    net = PolicyNet(config.hidden)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        decisions = net(episode.description, episode.task, episode.budget_macs, episode.target_bits)
        loss, _ = episode_loss(net, episode, replace(config.inner, adam_eps=SMOOTH_ADAM_EPS))
    loss.backward()
    return decisions, torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in net.parameters()])


def test_meta_step_under_bf16_autocast_gives_the_fp32_policy_gradient(episode):
    episode, config = episode
    exact, reference = _gradient(episode, config, bf16=False)
    decisions, gradient = _gradient(episode, config, bf16=True)
    for name in ("ratios", "p8", "macs_fraction", "temperature", "alpha"):
        value = getattr(decisions, name)
        assert value.dtype == torch.float32, name
        torch.testing.assert_close(value, getattr(exact, name), rtol=0, atol=0)  # policy math is fp32
    assert reference.norm() > 0
    assert (gradient - reference).norm() / reference.norm() < RELATIVE_TOLERANCE


def test_projection_gradient_under_autocast_equals_fp32(episode):
    episode, config = episode
    grads = []
    for bf16 in (False, True):
        torch.manual_seed(0)
        net = PolicyNet(config.hidden)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            ratios = net(episode.description, episode.task, episode.budget_macs).ratios
        (ratios * torch.arange(1.0, len(ratios) + 1)).sum().backward()
        grads.append(net.layer_head.weight.grad.clone())
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=0)
