"""The bilevel objective of one episode: the policy's decisions, the deployed distillation
loop (:func:`fewshot_kd.distill.loop.run_distillation`: Adam, cosine schedule, batches of
views, BatchNorm in train mode, hints through adaptors) on the relaxed-compressed student,
BatchNorm recalibration, relaxed quantization, and the compressed student's query loss.

It mirrors adapt() step for step: prune (here: sharp gates ranked like the deployed pruner),
distil, recalibrate, quantize. Only the horizon is shorter (``InnerConfig.steps``), and the
meta-gradient is first order over the whole horizon for the learning rates and the starting
weights, second order through the last ``truncate`` steps for the loss's hyperparameters.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from fewshot_kd.distill.views import ViewBank
from fewshot_kd.adapt.policy import HAND_SET, HAND_SET_TEXT
from fewshot_kd.distill.loop import Distillee, LoopSpec, distilled_parameters, recalibrate_batchnorm_, run_distillation
from fewshot_kd.distill.objective import ObjectiveWeights
from fewshot_kd.meta.augment_views import strength_views
from fewshot_kd.meta.episodes import MetaEpisode
from fewshot_kd.meta.layer_choice import gated_blocks, last_gates
from fewshot_kd.meta.policy_net import Decisions
from fewshot_kd.meta.relax import channel_quantiles, gate_params, quantize_params

ORDERS = ("first", "truncated", "second")
PREFIX = "student."


@dataclass(frozen=True)
class InnerConfig:
    """``steps`` deployed-loop steps per episode at adapt()'s learning rate (``text_lr`` for
    text students), batch size and weight decay; ``order``: ``"truncated"`` (second order through the last ``truncate``
    steps), ``"second"`` (through all) or ``"first"`` (none: the loss's hyperparameters then
    get no meta-gradient). ``batchnorm="train"`` is adapt()'s handling (batch statistics in
    the loop, then recalibrated on the views; the statistics carry no meta-gradient);
    ``"eval"`` holds the running statistics fixed, for exact gradient checks. ``adam_eps``:
    Adam's epsilon (adapt()'s 1e-8 makes early steps sign-like, so the loss is only piecewise
    smooth in the loss's knobs; a large epsilon makes Adam a smooth, scaled SGD)."""

    steps: int = 60
    lr: float = HAND_SET.lr
    text_lr: float = HAND_SET_TEXT.lr
    batch_size: int = HAND_SET.batch_size
    weight_decay: float = HAND_SET.weight_decay
    order: str = "truncated"
    truncate: int = 5
    budget_weight: float = 50.0
    sharpness: float = 0.2
    batchnorm: str = "train"
    adam_eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"unknown order {self.order!r}; choose one of {ORDERS}")
        if self.batchnorm not in ("train", "eval"):
            raise ValueError(f"batchnorm must be 'train' (as adapt(): batch statistics, then recalibrated) or 'eval' "
                             f"(running statistics held fixed: every meta-gradient is exact), got {self.batchnorm!r}")

    @property
    def differentiable_steps(self) -> int:
        return {"first": 0, "second": self.steps, "truncated": min(self.truncate, self.steps)}[self.order]


def _adaptors(student: nn.Module, desc, ratios: torch.Tensor, seed: int) -> list[nn.Module]:
    """A 1x1 convolution per distilled layer whose channels the policy prunes (the deployed
    student has fewer channels there, so adapt() builds one), else an identity."""
    gated = {module for g, r in zip(desc.groups, ratios) if _value(r) > 0 for module, _ in g.gated}
    modules = dict(student.named_modules())
    torch.manual_seed(seed)
    out = []
    for _, s in desc.pairs:
        channels = _out_channels(modules[s])
        out.append(nn.Conv2d(channels, channels, 1) if s in gated and channels else nn.Identity())
    return out


def _out_channels(module: nn.Module) -> int:
    for attr in ("out_channels", "num_features", "out_features"):
        if hasattr(module, attr):
            return int(getattr(module, attr))
    return 0


def _value(t) -> float:
    return float(t.detach()) if isinstance(t, torch.Tensor) else float(t)


def _unprefixed(params: dict, fn) -> dict:
    inner = {k[len(PREFIX):]: v for k, v in params.items() if k.startswith(PREFIX)}
    return {**params, **{PREFIX + k: v for k, v in fn(inner).items()}}


def _recalibrated(model: Distillee, params: dict, buffers: dict, inputs: torch.Tensor) -> dict:
    """Fresh buffers whose BatchNorm statistics are re-estimated on ``inputs`` at ``params``
    (the fixed embedding tables among ``buffers`` are passed through, not copied)."""
    own = dict(model.named_buffers())
    fresh = {n: b.clone() if n in own else b for n, b in buffers.items()}
    recalibrate_batchnorm_(model, inputs, {**fresh, **{k: v.detach() for k, v in params.items()}})
    return fresh


def lr_scales(model: Distillee, desc, decisions: Decisions) -> dict[str, torch.Tensor]:
    """Per parameter: ``inner_lr_scale * layer scale`` (adapt(): ``policy.lr`` x
    ``layer_lr_scale``); adaptors step at ``inner_lr_scale``, norms at ``inner_lr_scale``."""
    index = {name: i for i, name in enumerate(desc.layers)}
    scales = {}
    for name, _ in model.named_parameters():
        module = name[len(PREFIX):].rpartition(".")[0] if name.startswith(PREFIX) else None
        layer = decisions.lr_scale[index[module]] if module in index else 1.0
        scales[name] = decisions.inner_lr_scale * layer
    return scales


def episode_loss(net_or_decisions, episode: MetaEpisode, config: InnerConfig) -> tuple[torch.Tensor, dict]:
    """Meta-loss of one episode and its metrics. ``net_or_decisions``: a :class:`PolicyNet`
    (called on the episode) or fixed :class:`Decisions` (e.g. a hand-set policy's)."""
    desc = episode.description
    decisions = policy_decisions(net_or_decisions, episode)
    student = episode.family.student
    model = Distillee(student, _adaptors(student, desc, decisions.ratios, episode.index))
    model.to(episode.support_y.device)
    params = distilled_parameters(model)
    fixed = {n: p.detach() for n, p in model.named_parameters() if n not in params}  # embedding tables
    buffers = {**fixed, **{n: b.clone() for n, b in model.named_buffers()}}
    quantiles = channel_quantiles({k[len(PREFIX):]: v for k, v in params.items() if k.startswith(PREFIX)},
                                  desc.groups, getattr(episode.family.structure, "scores", None))
    classes = list(episode.classes) or None  # None: rows over positions (question windows) or tokens, not classes
    layers = [s for _, s in desc.pairs]

    def gates(p):
        return _unprefixed(p, lambda q: gate_params(q, desc.groups, decisions.ratios, quantiles, config.sharpness))

    if episode.bank is not None:  # question windows or token sequences: no augmentation, the episode's bank
        views, bank = None, episode.bank
    else:
        views, teacher_logits, teacher_features = strength_views(episode, decisions.augment_strength)
        bank = ViewBank(views, episode.support_y, teacher_logits, teacher_features)
    weights = ObjectiveWeights(decisions.temperature, decisions.alpha, decisions.feature_weight, decisions.pair_weights,
                               teacher_grad=True)  # the views (and so the teacher's outputs) carry the strength's graph
    lr = episode.family.lr or (config.text_lr if episode.family.text else config.lr)  # adapt()'s hand-set lr
    batch_size = episode.family.batch_size or config.batch_size
    spec = LoopSpec(config.steps, lr, batch_size, config.weight_decay, eps=config.adam_eps)
    model.train(config.batchnorm == "train")
    torch.manual_seed(episode.index)  # dropout (text encoders) draws the same masks for every policy
    blocks = kept_blocks(episode, decisions)
    with blocks(skip_dropped=True):  # the loop trains the student adapt() derives: skipped blocks cost nothing
        adapted = run_distillation(model, params, bank, weights, layers, spec, lr_scales(model, desc, decisions),
                                   seed=episode.index, buffers=buffers, differentiable_steps=config.differentiable_steps,
                                   compress=gates if desc.groups else None, classes=classes, stop=decisions.stop_fraction)
    compressed = gates(adapted) if desc.groups else adapted
    recalibrate = config.batchnorm == "train" and views is not None  # a transformer has no BatchNorm to recalibrate
    recalibrated = _recalibrated(model, compressed, buffers, views) if recalibrate else buffers
    if episode.target_bits is not None and episode.target_bits < 32:
        compressed = _unprefixed(compressed, lambda q: quantize_params(q, desc.layers, decisions.p8, desc.transposed))
    model.eval()
    with blocks(skip_dropped=False):  # every block runs: the query loss reaches every block's gate
        query_logits = functional_call(model, {**recalibrated, **compressed}, (episode.query_x,))
    if classes is not None:
        query_logits = query_logits[:, classes]
    return outer_loss(decisions, episode, query_logits, config)


def kept_blocks(episode: MetaEpisode, decisions: Decisions):
    """A context factory gating the text student's encoder blocks as ``decisions`` chose (a
    policy without a block choice keeps the last ones, as adapt() derives); a no-op for a
    family that keeps every block."""
    keep = episode.family.keep_blocks
    if keep is None or not episode.description.blocks:
        return lambda skip_dropped: nullcontext()
    from fewshot_kd.models._text_layers import encoder_layers

    gates = decisions.block_gates
    if gates is None:
        gates = last_gates(len(episode.description.blocks), keep, episode.support_y.device)
    blocks = list(encoder_layers(episode.family.student.encoder))
    return lambda skip_dropped: gated_blocks(blocks, gates, skip_dropped)


def policy_decisions(net_or_decisions, episode: MetaEpisode) -> Decisions:
    """``net_or_decisions`` itself if it is :class:`Decisions`, else the policy net's on ``episode``."""
    if isinstance(net_or_decisions, Decisions):
        return net_or_decisions
    if episode.family.keep_blocks is None:
        return net_or_decisions(episode.description, episode.task, episode.budget_macs, episode.target_bits)
    return net_or_decisions(episode.description, episode.task, episode.budget_macs, episode.target_bits,
                            keep_blocks=episode.family.keep_blocks)


def outer_loss(decisions: Decisions, episode: MetaEpisode, query_logits: torch.Tensor,
               config: InnerConfig) -> tuple[torch.Tensor, dict]:
    """The meta-loss (query cross-entropy + budget penalty) and metrics, from the compressed
    student's ``query_logits`` on the episode's classes."""
    desc = episode.description
    query_ce = F.cross_entropy(query_logits, episode.query_y)
    over_macs = F.relu(decisions.macs_fraction - episode.budget_macs) if desc.groups else query_ce.new_zeros(())
    over_bits = F.relu(decisions.avg_bits - episode.target_bits) / 8 if episode.target_bits else query_ce.new_zeros(())
    penalty = config.budget_weight * (over_macs.pow(2) + over_bits.pow(2))
    loss = query_ce + penalty
    metrics = {
        "meta_loss": loss.item(),
        "query_ce": query_ce.item(),
        "query_acc": (query_logits.argmax(-1) == episode.query_y).float().mean().item(),
        "macs_fraction": _value(decisions.macs_fraction),
        "avg_bits": _value(decisions.avg_bits),
        "compression": 32.0 / _value(decisions.avg_bits) / max(_value(decisions.macs_fraction), 1e-6)
        if episode.target_bits else 1.0 / max(_value(decisions.macs_fraction), 1e-6),
        "temperature": _value(decisions.temperature),
        "alpha": _value(decisions.alpha),
        "stop_fraction": 1.0 if decisions.stop_fraction is None else _value(decisions.stop_fraction),
        "augment_strength": 1.0 if decisions.augment_strength is None else _value(decisions.augment_strength),
        "penalty": penalty.item(),
    }
    return loss, metrics

