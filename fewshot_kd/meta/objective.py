"""The bilevel objective of one episode: the policy's decisions, a differentiable inner loop
of compressed distillation on the support views, and the compressed student's query loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call

from fewshot_kd.distill import FeatureCapture
from fewshot_kd.meta.episodes import MetaEpisode
from fewshot_kd.meta.inner import unroll
from fewshot_kd.meta.policy_net import Decisions, PolicyNet
from fewshot_kd.meta.relax import channel_quantiles, gate_params, quantize_params


@dataclass(frozen=True)
class InnerConfig:
    steps: int = 5
    lr: float = 1e-3
    backend: str = "func"
    order: str = "second"
    truncate: int = 1
    budget_weight: float = 50.0
    sharpness: float = 0.2


def soft_kd(student_logits, teacher_logits, labels, temperature, alpha) -> torch.Tensor:
    """Hinton KD with tensor ``temperature`` / ``alpha`` (so both receive meta-gradients)."""
    log_student = F.log_softmax(student_logits / temperature, -1)
    soft = F.kl_div(log_student, F.softmax(teacher_logits / temperature, -1), reduction="batchmean")
    return alpha * temperature**2 * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def hint(student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
    return (student_feature - teacher_feature).pow(2).mean() / teacher_feature.pow(2).mean().clamp_min(1e-8)


def layer_learning_rates(episode: MetaEpisode, decisions: Decisions, base_lr: float) -> dict[str, torch.Tensor]:
    """Meta-SGD: each Conv / Linear layer's parameters step at ``base_lr * global * layer``
    scale; every other parameter (norms) at ``base_lr * global``."""
    index = {name: i for i, name in enumerate(episode.description.layers)}
    lrs = {}
    for name, _ in episode.family.student.named_parameters():
        module = name.rpartition(".")[0]
        scale = decisions.lr_scale[index[module]] if module in index else 1.0
        lrs[name] = base_lr * decisions.inner_lr_scale * scale
    return lrs


def episode_loss(net: PolicyNet, episode: MetaEpisode, config: InnerConfig) -> tuple[torch.Tensor, dict]:
    """Meta-loss of one episode and its metrics (query accuracy, expected MACs fraction, bits)."""
    desc = episode.description
    decisions = net(desc, episode.task, episode.target_macs)
    student = episode.family.student.eval()
    classes = list(episode.classes)
    start = dict(student.named_parameters())
    quantiles = channel_quantiles(start, desc.groups)
    student_layers = [s for _, s in desc.pairs]

    def compress(params):
        params = gate_params(params, desc.groups, decisions.ratios, quantiles, config.sharpness)
        if episode.target_bits is not None:
            params = quantize_params(params, desc.layers, decisions.p8)
        return params

    def inner_loss(params):
        with FeatureCapture(student, student_layers) as capture:
            logits = functional_call(student, compress(params), (episode.support_x,))[:, classes]
            features = [capture.outputs[n] for n in student_layers]
        loss = soft_kd(logits, episode.teacher_logits, episode.support_y, decisions.temperature, decisions.alpha)
        if features:
            hints = sum(w * hint(f, t) for w, f, t in zip(decisions.pair_weights, features, episode.teacher_features))
            loss = loss + decisions.feature_weight * hints / len(features)
        return loss

    lrs = layer_learning_rates(episode, decisions, config.lr)
    adapted = unroll(student, inner_loss, lrs, config.steps, backend=config.backend, order=config.order,
                     truncate=config.truncate)
    query_logits = functional_call(student, compress(adapted), (episode.query_x,))[:, classes]
    query_ce = F.cross_entropy(query_logits, episode.query_y)
    over_macs = F.relu(decisions.macs_fraction - episode.target_macs) if desc.groups else torch.tensor(0.0)
    over_bits = F.relu(decisions.avg_bits - episode.target_bits) / 8 if episode.target_bits else torch.tensor(0.0)
    penalty = config.budget_weight * (over_macs.pow(2) + over_bits.pow(2))
    loss = query_ce + penalty
    metrics = {
        "meta_loss": loss.item(),
        "query_ce": query_ce.item(),
        "query_acc": (query_logits.argmax(-1) == episode.query_y).float().mean().item(),
        "macs_fraction": decisions.macs_fraction.item(),
        "avg_bits": decisions.avg_bits.item(),
        "compression": 32.0 / decisions.avg_bits.item() / max(decisions.macs_fraction.item(), 1e-6)
        if episode.target_bits else 1.0 / max(decisions.macs_fraction.item(), 1e-6),
        "temperature": decisions.temperature.item(),
        "alpha": decisions.alpha.item(),
    }
    return loss, metrics
