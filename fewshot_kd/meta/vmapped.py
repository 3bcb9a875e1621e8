"""First-order meta-losses of several same-shaped episodes in one ``torch.func.vmap`` call.

Episodes of one image family with equal support and query sizes (equal K), the same
quantization switch and the same adaptor layout run one student architecture on tensors of
one shape, so they stack: start weights, support views, teacher logits and features, query,
classes, batch schedules and the policy's decisions get a leading episode dimension. Inside
the vmap each episode runs :func:`~fewshot_kd.distill.loop.run_distillation`'s detached Adam
steps (``torch.func.grad`` in place of ``torch.autograd.grad``), then the first-order
reattachment of the learning rates, the relaxed gates, BatchNorm recalibration on the views,
relaxed quantization and the query logits; the meta-loss is then
:func:`~fewshot_kd.meta.objective.outer_loss` per episode. Every random draw (views, batch
schedules) happens outside the vmap, per episode as the loop draws it, so the result equals
:func:`~fewshot_kd.meta.objective.episode_loss` under ``order="first"`` up to rounding (batched
convolutions round differently; adapt()'s sign-like early Adam steps and CUDA's TF32
convolutions amplify that, see tests/meta/test_meta_vmap.py). Text families (string inputs)
and students with dropout are left to the loop (:func:`stack_key` is None). fp32 only: under
bf16 autocast, vmap's BatchNorm backward fails on bf16 inputs with fp32 weights.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn as nn
from torch.func import functional_call, grad, vmap

from fewshot_kd.distill.adam import AdamState, adam_direction, cosine_factor
from fewshot_kd.distill.loop import Distillee, LoopSpec, batch_loss, batch_schedule, distilled_parameters, \
    recalibrate_batchnorm_, stop_schedule, stopped_steps
from fewshot_kd.distill.objective import ObjectiveWeights
from fewshot_kd.meta.augment_views import strength_views
from fewshot_kd.meta.episodes import MetaEpisode
from fewshot_kd.meta.objective import PREFIX, InnerConfig, _adaptors, _unprefixed, episode_loss, lr_scales, \
    outer_loss, policy_decisions
from fewshot_kd.meta.policy_net import Decisions
from fewshot_kd.meta.relax import channel_quantiles, gate_params, quantize_params


class _EpisodeDistillee(Distillee):
    """A :class:`Distillee` whose logits are cut to the episode's classes, held in a buffer
    so that each stacked episode picks its own."""

    def __init__(self, student: nn.Module, adaptors, classes: torch.Tensor) -> None:
        super().__init__(student, adaptors)
        self.register_buffer("episode_classes", classes)

    def forward(self, inputs):
        return self.student(inputs).index_select(-1, self.episode_classes)


def stack_key(episode: MetaEpisode, decisions: Decisions) -> tuple | None:
    """Episodes with equal keys stack into one vmap call; None: run this one in the loop."""
    student = episode.family.student
    if episode.family.text or not isinstance(episode.support_x, torch.Tensor):
        return None
    if any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in student.modules()):
        return None
    adapted = tuple(float(r.detach()) > 0 for r in decisions.ratios)
    quantized = episode.target_bits is not None and episode.target_bits < 32
    return (id(episode.family), tuple(episode.support_x.shape), tuple(episode.query_x.shape), quantized, adapted)


def _norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class _NoRunningStats:
    """BatchNorm layers in train mode use batch statistics and write no running statistics
    (the loop's are discarded by the recalibration anyway, and in-place writes do not vmap)."""

    def __init__(self, model: nn.Module) -> None:
        self.norms = _norms(model)

    def __enter__(self):
        self.saved = [m.track_running_stats for m in self.norms]
        for m in self.norms:
            m.track_running_stats = False

    def __exit__(self, *exc) -> None:
        for m, saved in zip(self.norms, self.saved):
            m.track_running_stats = saved


def _stack(tensors) -> torch.Tensor:
    return torch.stack([t.detach() for t in tensors])


def _stack_dicts(dicts: list[dict]) -> dict:
    return {k: torch.stack([d[k] for d in dicts]) for k in dicts[0]}


def _stacked_decisions(decisions: list[Decisions], scales: list[dict], names: list[str], device) -> dict:
    """The decisions the loop reads, one row per episode (``scales``: per-parameter lr scales)."""
    knobs = {k: torch.stack([getattr(d, k) for d in decisions])
             for k in ("ratios", "p8", "temperature", "alpha", "feature_weight", "pair_weights")}
    knobs["scales"] = {n: torch.stack([torch.as_tensor(s[n], device=device) for s in scales]) for n in names}
    if decisions[0].stop_fraction is not None:  # one policy decides a whole group: all or none have it
        knobs["stop"] = torch.stack([d.stop_fraction for d in decisions])
    return knobs


def _stacked_episodes(episodes: list[MetaEpisode], decisions: list[Decisions], spec: LoopSpec, device) -> dict:
    """Views at each episode's augmentation strength (first order: no meta-gradient reaches it),
    teacher outputs on them, query, classes and each episode's own batch schedule (drawn here,
    outside the vmap, as ``run_distillation`` draws it), one row per episode."""
    views = [strength_views(e, None if d.augment_strength is None else d.augment_strength.detach())
             for e, d in zip(episodes, decisions)]
    return {
        "support_x": _stack([v[0] for v in views]), "support_y": _stack([e.support_y for e in episodes]),
        "teacher_logits": _stack([v[1] for v in views]),
        "teacher_features": [_stack(f) for f in zip(*[v[2] for v in views])],
        "query_x": _stack([e.query_x for e in episodes]),
        "classes": torch.stack([torch.tensor(e.classes, device=device) for e in episodes]),
        "schedule": torch.stack([torch.stack(batch_schedule(len(e.support_y), spec.steps, spec.batch_size, e.index))
                                 for e in episodes]).to(device),
    }


def vmapped_episode_losses(net_or_decisions, episodes: list[MetaEpisode], config: InnerConfig
                           ) -> list[tuple[torch.Tensor, dict]]:
    """``[(meta-loss, metrics)]`` of ``episodes`` (all with one :func:`stack_key`) under
    ``config.order == "first"``, as :func:`~fewshot_kd.meta.objective.episode_loss` gives them.
    ``net_or_decisions``: a :class:`PolicyNet` or one :class:`Decisions` per episode. Other
    orders raise a ValueError (they differentiate through the steps, which this path detaches)."""
    if config.order != "first":
        raise ValueError(f"vmapped episodes are first order only, got order {config.order!r}")
    decisions = [policy_decisions(net_or_decisions[i] if isinstance(net_or_decisions, (list, tuple))
                                  else net_or_decisions, e) for i, e in enumerate(episodes)]
    first, family = episodes[0], episodes[0].family
    desc = first.description
    device = first.support_y.device
    models = [Distillee(family.student, _adaptors(family.student, e.description, d.ratios, e.index)).to(device)
              for e, d in zip(episodes, decisions)]
    classes = torch.tensor(first.classes, device=device)
    model = _EpisodeDistillee(family.student, models[0].adaptors, classes)
    start = _stack_dicts([{n: p.detach() for n, p in distilled_parameters(m).items()} for m in models])
    fixed = {n: p.detach() for n, p in model.named_parameters() if n not in start}
    counters = {n: b.clone() for n, b in model.named_buffers() if n.endswith("num_batches_tracked")}
    stats = {n: b for n, b in model.named_buffers() if n not in counters and n != "episode_classes"}
    stats = {n: b.expand(len(episodes), *b.shape).clone() for n, b in stats.items()}
    quantiles = channel_quantiles({k[len(PREFIX):]: v for k, v in distilled_parameters(models[0]).items()
                                   if k.startswith(PREFIX)}, desc.groups, getattr(family.structure, "scores", None))
    lr = config.text_lr if family.text else config.lr
    spec = LoopSpec(config.steps, lr, config.batch_size, config.weight_decay, eps=config.adam_eps)
    scales = [lr_scales(m, e.description, d) for m, e, d in zip(models, episodes, decisions)]
    knobs = _stacked_decisions(decisions, scales, list(start), device)
    data = _stacked_episodes(episodes, decisions, spec, device)
    layers = [s for _, s in desc.pairs]
    quantize = first.target_bits is not None and first.target_bits < 32

    def gates(params, ratios):
        if not desc.groups:
            return params
        return _unprefixed(params, lambda q: gate_params(q, desc.groups, ratios, quantiles, config.sharpness))

    # each episode stops at its own step; the later ones run on with a factor of 0
    steps = spec.steps if "stop" not in knobs else \
        max(stopped_steps(float(d.stop_fraction.detach()), spec.steps) for d in decisions)
    d0, rows = decisions[0], data["schedule"][0, 0]
    unused = _unused(model, {n: p[0] for n, p in start.items()},
                     {**fixed, **counters, **{n: s[0] for n, s in stats.items()}, "episode_classes": classes},
                     (first.support_x[rows], first.support_y[rows], first.teacher_logits[rows],
                      [f[rows] for f in first.teacher_features]),
                     ObjectiveWeights(d0.temperature.detach(), d0.alpha.detach(), d0.feature_weight.detach(),
                                      d0.pair_weights.detach()), layers, lambda p: gates(p, d0.ratios.detach()),
                     config.batchnorm)

    def one(start, stats, data, knobs):
        base = {**fixed, **counters, "episode_classes": data["classes"]}
        detached = {k: v.detach() for k, v in knobs.items() if k != "scales"}
        weights = ObjectiveWeights(detached["temperature"], detached["alpha"], detached["feature_weight"],
                                   detached["pair_weights"])

        def step_loss(params, batch):
            return batch_loss(model, params, batch, weights, layers, lambda p: gates(p, detached["ratios"]),
                              None, {**base, **stats})[0]

        step_grad = grad(step_loss)
        current, state, carried, carried_stop = dict(start), AdamState(), {}, {}
        stop = knobs.get("stop")
        model.train(config.batchnorm == "train")
        with _NoRunningStats(model):
            for step in range(steps):
                factor, slope = (cosine_factor(step, spec.steps), None) if stop is None else \
                    stop_schedule(step, spec.steps, stop.detach())
                index = data["schedule"][step]
                batch = (data["support_x"][index], data["support_y"][index], data["teacher_logits"][index],
                         [f[index] for f in data["teacher_features"]])
                grads = {n: None if n in unused else g for n, g in step_grad(current, batch).items()}
                directions, state = adam_direction(current, grads, state, spec.weight_decay, spec.betas, spec.eps)
                for n, d in directions.items():
                    # the loop's step size is a Python float: the same product, in float64
                    scale = knobs["scales"][n].detach().double()
                    step_size = (spec.lr * scale * factor).to(d.dtype)
                    current[n] = current[n] - step_size * d
                    carried[n] = carried.get(n, 0.0) - torch.as_tensor(factor).to(d.dtype) * d
                    if stop is not None:
                        carried_stop[n] = carried_stop.get(n, 0.0) - (spec.lr * scale * slope).to(d.dtype) * d
        # first order (run_distillation's _attach): the value stays, d w / d scale = lr * carried
        adapted = {n: w + spec.lr * (knobs["scales"][n] - knobs["scales"][n].detach()) * carried[n]
                   if n in carried else w for n, w in current.items()}
        if stop is not None:  # d w / d stop = carried_stop
            adapted = {n: w + (stop - stop.detach()) * carried_stop[n] if n in carried_stop else w
                       for n, w in adapted.items()}
        compressed = gates(adapted, knobs["ratios"])
        if config.batchnorm == "train":
            stats = {n: s.clone() for n, s in stats.items()}
            base = {**base, **{n: c.clone() for n, c in counters.items()}}
            recalibrate_batchnorm_(model, data["support_x"], {**base, **stats,
                                                              **{k: v.detach() for k, v in compressed.items()}})
        if quantize:
            compressed = _unprefixed(compressed, lambda q: quantize_params(q, desc.layers, knobs["p8"]))
        model.eval()
        return functional_call(model, {**base, **stats, **compressed}, (data["query_x"],))

    logits = vmap(one, randomness="error")(start, stats, data, knobs)
    return [outer_loss(d, e, logits[i], config) for i, (e, d) in enumerate(zip(episodes, decisions))]


def _unused(model: Distillee, params: dict, state: dict, batch, weights: ObjectiveWeights, layers, compress,
            batchnorm: str) -> set[str]:
    """The parameters the loop's loss does not reach (``run_distillation`` leaves them
    unstepped, where ``torch.func.grad`` would give zeros that weight decay then moves)."""
    probe = {n: p.detach().requires_grad_() for n, p in params.items()}
    model.train(batchnorm == "train")
    with _NoRunningStats(model):
        loss = batch_loss(model, probe, batch, weights, layers, compress, None, state)[0]
    grads = torch.autograd.grad(loss, list(probe.values()), allow_unused=True)
    return {n for n, g in zip(probe, grads) if g is None}


def grouped_meta_losses(net, episodes: list[MetaEpisode], config: InnerConfig, loop=episode_loss
                        ) -> Iterator[list[tuple[MetaEpisode, torch.Tensor, dict]]]:
    """``[(episode, meta-loss, metrics)]`` per group of ``episodes``: those sharing a
    :func:`stack_key` in one vmap call, every other one alone through ``loop`` (a backend of
    :data:`~fewshot_kd.meta.backends.INNER_BACKENDS`, given the episode's decisions)."""
    groups: dict = {}
    for episode in episodes:
        decisions = policy_decisions(net, episode)
        key = stack_key(episode, decisions)
        groups.setdefault(("loop", episode.index) if key is None else key, []).append((episode, decisions))
    for group in groups.values():
        members, decisions = [e for e, _ in group], [d for _, d in group]
        results = vmapped_episode_losses(decisions, members, config) if len(group) > 1 \
            else [loop(decisions[0], members[0], config)]
        yield [(e, loss, metrics) for e, (loss, metrics) in zip(members, results)]
