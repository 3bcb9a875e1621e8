"""The shared distillation loop: pure Adam equals torch's, adapt() and the meta inner loop run
the same objective on the same batches, and the lr meta-gradient is the first-order one."""

import copy

import pytest
import torch
import torch.nn as nn

from fewshot_kd.adapt._distill_loop import distill_
from fewshot_kd.distill.views import ViewBank
from fewshot_kd.distill import kd_loss
from fewshot_kd.distill.loop import Distillee, LoopSpec, batch_schedule, run_distillation, stop_schedule, stopped_steps
from fewshot_kd.distill.objective import UNLABELLED, ObjectiveWeights, distillation_objective


def _bank(n=40, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return ViewBank(x, torch.randint(classes, (n,), generator=g), torch.randn(n, classes, generator=g), [])


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))


def test_pure_adam_loop_equals_torch_adam_with_cosine_schedule():
    bank, steps, lr, wd = _bank(), 12, 3e-2, 5e-4
    reference = _model()
    optimizer = torch.optim.Adam(reference.parameters(), lr=lr, weight_decay=wd)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    reference.train()
    for index in batch_schedule(len(bank), steps, 16, seed=3):
        x, y, t, _ = bank.batch(index)
        loss = kd_loss(reference(x), t, y, temperature=3.0, alpha=0.6)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    student = _model()
    model = Distillee(student)
    params = dict(model.named_parameters())
    final = run_distillation(model.train(), params, bank, ObjectiveWeights(3.0, 0.6), [], LoopSpec(steps, lr, 16, wd), seed=3)
    for name, p in reference.named_parameters():
        assert torch.allclose(final["student." + name], p, atol=1e-5), name
    # BatchNorm ran in train mode on the same batches: the running statistics agree too
    assert torch.allclose(student[1].running_mean, reference[1].running_mean, atol=1e-5)


def test_objective_masks_cross_entropy_on_unlabelled_rows():
    logits, teacher = torch.randn(6, 3), torch.randn(6, 3)
    labels = torch.tensor([0, UNLABELLED, 2, 1, UNLABELLED, 0])
    known = labels != UNLABELLED
    loss, _ = distillation_objective(logits, teacher, labels, ObjectiveWeights(2.0, 0.3))
    expected = 0.3 * kd_loss(logits, teacher, labels.clamp_min(0), 2.0, 1.0) + 0.7 * torch.nn.functional.cross_entropy(
        logits[known], labels[known])
    assert torch.allclose(loss, expected, atol=1e-6)


def test_hyperparameters_given_as_tensors_receive_gradients():
    logits, teacher, labels = torch.randn(8, 5), torch.randn(8, 5), torch.randint(5, (8,))
    s_feat, t_feat = torch.randn(8, 3, 2, 2), torch.randn(8, 3, 2, 2)
    knobs = [torch.tensor(v, requires_grad=True) for v in (3.0, 0.7, 2.0)]
    pair = torch.tensor([1.5], requires_grad=True)
    loss, parts = distillation_objective(logits, teacher, labels, ObjectiveWeights(*knobs, pair), [s_feat], [t_feat],
                                         [nn.Identity()])
    loss.backward()
    assert all(k.grad is not None and k.grad != 0 for k in knobs) and pair.grad != 0
    assert set(parts) == {"kd", "hint"}


def test_lr_scale_gets_the_first_order_meta_gradient():
    """d w_T / d scale over detached steps is lr x the accumulated (cosine-weighted) Adam steps:
    a finite difference in the scale with the Adam directions held fixed gives the same."""
    bank = _bank()
    model = Distillee(_model())
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    scale = torch.tensor(1.0, requires_grad=True)
    scales = {n: scale for n in start}
    spec = LoopSpec(5, 1e-2, 16)
    final = run_distillation(copy.deepcopy(model).train(), dict(start), bank, ObjectiveWeights(2.0, 0.5), [], spec,
                             scales, seed=1)
    probe = {n: torch.randn_like(t) for n, t in final.items()}
    (grad,) = torch.autograd.grad(sum((final[n] * probe[n]).sum() for n in final), scale)
    moved = {n: final[n].detach() - start[n] for n in final}  # = lr * scale * accumulated steps, scale = 1
    expected = sum((moved[n] * probe[n]).sum() for n in final)
    assert torch.allclose(grad, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_adapt_and_the_meta_inner_loop_run_the_same_objective_on_the_same_batches(monkeypatch):
    """One episode, no pruning, float: adapt()'s distill_ and the meta objective's inner loop
    see the same batches and compute the same loss at every step."""
    import fewshot_kd.distill.loop as loop
    from fewshot_kd.meta.config import MetaTrainConfig
    from fewshot_kd.meta.episodes import load_family, make_episode
    from fewshot_kd.meta.objective import InnerConfig, episode_loss
    from fewshot_kd.meta.policy_net import Decisions

    config = MetaTrainConfig(ways=10, shots=(5,), views=2, query_per_class=2)
    family = load_family("digits", 10)
    episode = make_episode([family], 0, config.episode_spec, 0)
    desc, steps = episode.description, 4
    decisions = Decisions(
        ratios=torch.zeros(len(desc.groups)), p8=torch.ones(len(desc.layers)), lr_scale=torch.ones(len(desc.layers)),
        pair_weights=torch.linspace(0.5, 1.5, len(desc.pairs)), temperature=torch.tensor(3.0),
        alpha=torch.tensor(0.8), feature_weight=torch.tensor(2.0), inner_lr_scale=torch.tensor(1.5),
        macs_fraction=torch.tensor(1.0), avg_bits=torch.tensor(32.0))
    seen = []
    original = loop.distillation_objective

    def spy(*args, **kwargs):
        loss, parts = original(*args, **kwargs)
        seen.append(loss.item())
        return loss, parts

    monkeypatch.setattr(loop, "distillation_objective", spy)
    meta_episode = copy.copy(episode)
    meta_episode.target_bits = None
    episode_loss(decisions, meta_episode, InnerConfig(steps=steps, order="first", sharpness=1e-6))
    meta_losses, seen[:] = list(seen), []

    # adapt()'s path on the same views: labels and teacher logits in the teacher's own class order
    classes = torch.tensor(episode.classes)
    with torch.no_grad():
        full_logits = family.teacher(episode.support_x)
    bank = ViewBank(episode.support_x, classes[episode.support_y], full_logits, list(episode.teacher_features))
    student = copy.deepcopy(family.student)
    torch.manual_seed(episode.index)
    distill_(student, bank, [s for _, s in desc.pairs], steps=steps, lr=InnerConfig().lr * 1.5,
             weight_decay=InnerConfig().weight_decay, batch_size=InnerConfig().batch_size, temperature=3.0, alpha=0.8,
             feature_weight=2.0, layer_weights=decisions.pair_weights.tolist(), seed=episode.index, progress=False)
    assert len(meta_losses) == steps and len(seen) == steps
    assert meta_losses == pytest.approx(seen, rel=1e-4)


def test_the_loop_leaves_embedding_tables_alone():
    from fewshot_kd.distill.loop import distilled_parameters

    model = torch.nn.Sequential(torch.nn.Embedding(50, 8), torch.nn.Linear(8, 3))
    model[1].bias.requires_grad_(False)
    assert list(distilled_parameters(model)) == ["1.weight"]  # no embedding table, nothing frozen by the caller
    wrapped = Distillee(model)
    assert list(distilled_parameters(wrapped)) == ["student.1.weight"]


# ---- the learned number of steps: a cosine that ends at stop * steps ----

WEIGHTS = ObjectiveWeights(2.0, 0.5)


def _run(spec, stop=None, differentiable_steps=0, seed=1, dtype=torch.float32):
    model = Distillee(_model()).to(dtype)
    bank = _bank()
    bank = type(bank)(bank.inputs.to(dtype), bank.labels, bank.teacher_logits.to(dtype), [])
    start = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
    return run_distillation(copy.deepcopy(model).train(), dict(start), bank, WEIGHTS, [], spec, seed=seed,
                            stop=stop, differentiable_steps=differentiable_steps)


def _close(a, b, atol=1e-6):
    return all(torch.allclose(a[n], b[n], atol=atol) for n in a)


def test_stop_at_one_is_the_plain_cosine_loop():
    spec = LoopSpec(8, 1e-2, 16)
    assert _close(_run(spec, torch.tensor(1.0)), _run(spec))


def test_stop_at_half_runs_the_first_half_of_the_batches_with_a_shorter_cosine():
    assert stopped_steps(0.5, 10) == 5 and stopped_steps(0.51, 10) == 6 and stopped_steps(0.01, 10) == 1
    assert _close(_run(LoopSpec(10, 1e-2, 16), torch.tensor(0.5)), _run(LoopSpec(5, 1e-2, 16)))


def test_schedule_slope_matches_a_finite_difference():
    stop = torch.tensor(0.7, dtype=torch.float64)
    for step in range(7):
        _, slope = stop_schedule(step, 10, stop)
        eps = 1e-6
        fd = (stop_schedule(step, 10, stop + eps)[0] - stop_schedule(step, 10, stop - eps)[0]) / (2 * eps)
        assert torch.allclose(slope, fd, rtol=1e-5, atol=1e-9), step


def _stop_gradient(spec, differentiable_steps, value=0.7, dtype=torch.float32):
    stop = torch.tensor(value, dtype=dtype, requires_grad=True)
    final = _run(spec, stop, differentiable_steps, dtype=dtype)
    probe = {n: torch.randn_like(t, generator=torch.Generator().manual_seed(i)) for i, (n, t) in
             enumerate(sorted(final.items()))}
    (grad,) = torch.autograd.grad(sum((final[n] * probe[n]).sum() for n in final), stop)
    return grad, probe


def test_first_order_stop_gradient_agrees_with_the_exact_one_when_steps_barely_move_the_weights():
    """At a tiny learning rate the Adam directions hardly depend on the trajectory, so the
    first-order gradient (directions held fixed) approaches the full second-order one."""
    spec = LoopSpec(8, 1e-5, 16)
    first, _ = _stop_gradient(spec, 0)
    exact, _ = _stop_gradient(spec, 8)
    assert first.abs() > 0
    assert torch.allclose(first, exact, rtol=2e-2)


@pytest.mark.parametrize("differentiable_steps", [0, 8])
def test_stop_gradient_matches_a_finite_difference_of_the_final_weights(differentiable_steps):
    """With every step differentiable the gradient is exact; a central difference in ``stop``
    that keeps the number of steps agrees. First order is checked the same way at a tiny lr."""
    spec = LoopSpec(8, 1e-2 if differentiable_steps else 1e-5, 16)
    grad, probe = _stop_gradient(spec, differentiable_steps, dtype=torch.float64)
    eps = 1e-4

    def value(s):
        final = _run(spec, torch.tensor(s, dtype=torch.float64), dtype=torch.float64)
        return sum((final[n] * probe[n]).sum() for n in final)

    fd = (value(0.7 + eps) - value(0.7 - eps)) / (2 * eps)  # 5.6 of 8 steps: both run 6
    assert torch.allclose(grad, fd, rtol=5e-2, atol=1e-6)


def test_multi_tensor_adam_equals_the_per_parameter_one():
    from fewshot_kd.distill.adam import AdamState, adam_direction, adam_direction_foreach

    g = torch.Generator().manual_seed(0)
    params = {n: torch.randn(shape, generator=g) for n, shape in (("a", (3, 4)), ("b", (5,)), ("c", (2, 2)))}
    one, many = AdamState(), AdamState()
    for _ in range(4):
        grads = {"a": torch.randn(3, 4, generator=g), "b": torch.randn(5, generator=g), "c": None}
        d1, one = adam_direction(params, grads, one, 5e-4)
        d2, many = adam_direction_foreach(params, grads, many, 5e-4)
        assert set(d1) == set(d2) == {"a", "b"}
        for n in d1:
            assert torch.allclose(d1[n], d2[n], rtol=1e-5, atol=1e-6), n
            assert torch.allclose(one.exp_avg_sq[n], many.exp_avg_sq[n], rtol=1e-6)
    assert one.step == many.step == 4


def test_float_learning_rate_scales_take_the_multi_tensor_update_to_the_same_weights():
    bank, spec = _bank(), LoopSpec(6, 3e-2, 16, 5e-4)
    finals = []
    for as_tensor in (False, True):
        model = Distillee(_model())
        params = dict(model.named_parameters())
        scales = {n: (torch.tensor(s, requires_grad=True) if as_tensor else s)
                  for n, s in zip(params, (2.0, 0.5, 1.0, 3.0, 2.0, 1.0))}
        finals.append(run_distillation(model.train(), params, bank, ObjectiveWeights(3.0, 0.6), [], spec, scales, seed=1))
    for n in finals[0]:
        assert torch.allclose(finals[0][n], finals[1][n].detach(), atol=1e-5), n


def test_fused_adam_equals_the_per_parameter_one_in_place():
    from fewshot_kd.distill.adam import AdamState, adam_direction, can_fuse, fused_adam_step_

    g = torch.Generator().manual_seed(1)
    start = {"a": torch.randn(3, 4, generator=g), "b": torch.randn(5, generator=g), "c": torch.randn(2, generator=g)}
    lrs = {"a": 1e-2, "b": 3e-2, "c": 1e-2}
    assert can_fuse(start) and not can_fuse({"a": torch.zeros(2, dtype=torch.int64)})
    reference, fused = dict(start), {n: t.clone() for n, t in start.items()}
    one, two = AdamState(), AdamState()
    for _ in range(5):
        grads = {"a": torch.randn(3, 4, generator=g), "b": torch.randn(5, generator=g), "c": None}
        d, one = adam_direction(reference, grads, one, 5e-4)
        reference = {n: reference[n] - lrs[n] * d[n] if n in d else reference[n] for n in reference}
        two = fused_adam_step_(fused, grads, two, lrs, 5e-4)
    for n in start:
        assert torch.allclose(reference[n], fused[n], atol=1e-6), n
    assert torch.equal(fused["c"], start["c"]) and two.step == 5
