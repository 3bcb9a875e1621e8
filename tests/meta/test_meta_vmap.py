"""vmap over episodes (fewshot_kd.meta.vmapped): the first-order meta-losses and policy
meta-gradients of stacked same-shaped episodes equal the per-episode loop's, meta_gradient
groups a meta-batch by shape and loops over the rest, and the config asks for order first.

Tolerances: with a smooth Adam (epsilon 1e-3) the losses agree to rtol 1e-4 and the meta-gradients to
2e-3 in relative norm (1e-5 and 1e-4 on a Xeon; 1.4e-5 and 8e-4 on an AVX2-only AMD EPYC, whose
kernels sum in another order). At adapt()'s epsilon (1e-8) the early Adam steps are sign-like, so a
last-bit difference between the batched and the per-episode convolutions can flip a near-zero
gradient's step: the losses still agree to 1e-4, the meta-gradients to 1e-2 in relative norm."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from fewshot_kd.errors import FewShotKDError
from fewshot_kd.meta import MetaTrainConfig, PolicyNet, vmapped
from fewshot_kd.meta.episodes import load_family, make_episode
from fewshot_kd.meta.objective import episode_loss
from fewshot_kd.meta.train import meta_gradient


@pytest.fixture(scope="module")
def family():
    return load_family("digits", 3)


def _gradient(net: PolicyNet) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in net.parameters()])


def _losses_and_gradient(losses) -> tuple[list[float], torch.Tensor]:
    torch.manual_seed(0)
    net = PolicyNet(8)
    results = losses(net)
    sum(loss for loss, _ in results).backward()
    return [loss.item() for loss, _ in results], _gradient(net)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("adam_eps, loss_rtol, grad_rtol", [(1e-3, 1e-4, 2e-3), (1e-8, 1e-4, 1e-2)])
def test_vmapped_losses_and_meta_gradients_equal_the_loop(family, tiny_config, adam_eps, loss_rtol, grad_rtol):
    config = tiny_config(shots=(5,), inner_steps=3, order="first", vmap=True)
    inner = replace(config.inner, adam_eps=adam_eps)
    episodes = [make_episode([family], i, config.episode_spec, config.seed) for i in range(3)]
    assert len({e.target_macs for e in episodes}) == 3 and len({e.classes for e in episodes}) > 1
    loop_losses, loop_grad = _losses_and_gradient(lambda net: [episode_loss(net, e, inner) for e in episodes])
    vmap_losses, vmap_grad = _losses_and_gradient(lambda net: vmapped.vmapped_episode_losses(net, episodes, inner))
    assert vmap_losses == pytest.approx(loop_losses, rel=loss_rtol)
    assert loop_grad.norm() > 0 and _relative(vmap_grad, loop_grad) < grad_rtol


def test_episodes_that_stop_at_different_steps_vmap_as_the_loop_runs_them(family, tiny_config):
    """Stop fractions 0.4 / 0.7 / 1.0 of 5 steps: 2, 4 and 5 steps; the vmapped episodes that
    stop early run on at a factor of 0, and the stop fractions get the loop's meta-gradient."""
    config = tiny_config(shots=(5,), inner_steps=5, order="first", vmap=True)
    inner = replace(config.inner, adam_eps=1e-3)
    episodes = [make_episode([family], i, config.episode_spec, config.seed) for i in range(3)]
    torch.manual_seed(0)
    net = PolicyNet(8)

    def run(losses):
        stops = [torch.tensor(s, requires_grad=True) for s in (0.4, 0.7, 1.0)]
        decisions = [replace(vmapped.policy_decisions(net, e), stop_fraction=s) for e, s in zip(episodes, stops)]
        results = losses(decisions)
        grads = torch.autograd.grad(sum(loss for loss, _ in results), stops)
        return [loss.item() for loss, _ in results], torch.stack(grads)

    loop_losses, loop_grads = run(lambda ds: [episode_loss(d, e, inner) for d, e in zip(ds, episodes)])
    vmap_losses, vmap_grads = run(lambda ds: vmapped.vmapped_episode_losses(ds, episodes, inner))
    assert vmap_losses == pytest.approx(loop_losses, rel=1e-4)
    assert loop_grads.abs().min() > 0 and _relative(vmap_grads, loop_grads) < 1e-3


def test_meta_gradient_vmaps_same_shaped_episodes_and_loops_the_rest(family, tiny_config, monkeypatch):
    calls = []
    original = vmapped.vmapped_episode_losses
    monkeypatch.setattr(vmapped, "vmapped_episode_losses", lambda nets, episodes, inner: calls.append(
        [e.index for e in episodes]) or original(nets, episodes, inner))
    indices = list(range(5))
    results = {}
    for vmap in (False, True):
        torch.manual_seed(0)
        net = PolicyNet(8)
        config = tiny_config(order="first", meta_batch=5, episodes=5, vmap=vmap)
        results[vmap] = meta_gradient(net, [family], config, indices), _gradient(net)
    shots = [make_episode([family], i, config.episode_spec, config.seed).shots for i in indices]
    assert sorted(i for group in calls for i in group) == [i for i in indices if shots.count(shots[i]) > 1]
    assert 0 < len(calls) < len(indices)  # some episodes stacked, and K differs, so not all in one call
    assert results[True][0] == pytest.approx(results[False][0], rel=1e-4)
    assert _relative(results[True][1], results[False][1]) < 1e-2  # adapt()'s Adam epsilon: see the module doc


def test_config_round_trips_and_older_configs_load(tiny_config):
    config = tiny_config(order="first", vmap=True)
    assert MetaTrainConfig.from_dict(config.to_dict()) == config
    older = {k: v for k, v in tiny_config(order="first").to_dict().items() if k != "vmap"}
    assert MetaTrainConfig.from_dict(older).vmap is False


def test_vmap_needs_the_first_order_in_fp32(tiny_config):
    for order in ("truncated", "second"):
        with pytest.raises(FewShotKDError, match="--order first"):
            tiny_config(order=order, vmap=True)
    with pytest.raises(FewShotKDError, match="--precision fp32"):
        tiny_config(order="first", vmap=True, precision="bf16")
    from fewshot_kd.meta_train import parse_args

    assert parse_args(["--vmap", "--order", "first"]).vmap and not parse_args([]).vmap
