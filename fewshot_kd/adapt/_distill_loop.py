"""The distillation loop adapt() runs: logit KD plus block-wise feature hints on the view bank."""

from __future__ import annotations

import torch
import torch.nn as nn

from fewshot_kd.adapt._views import UNLABELLED, ViewBank
from fewshot_kd.distill import FeatureCapture, HintLoss, kd_loss, soft_target_kl
from fewshot_kd.distill.losses import hard_label_ce
from fewshot_kd.progress import format_metrics, progress_bar
from fewshot_kd.training import check_finite


def build_hint_loss(student: nn.Module, bank: ViewBank, student_layers: list[str], weights) -> HintLoss | None:
    if not student_layers:
        return None
    probe = bank.batch(torch.arange(min(2, len(bank))))
    with torch.no_grad(), FeatureCapture(student, student_layers, detach=True) as capture:
        student.eval()(probe[0])
        student_features = [capture.outputs[name] for name in student_layers]
    return HintLoss.from_features(student_features, probe[3], weights=weights)


def bank_kd_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, temperature: float,
                 alpha: float) -> torch.Tensor:
    """``kd_loss`` on a batch that may hold unlabelled views: the soft term covers every row,
    the ``1 - alpha`` cross-entropy only the rows with a label."""
    known = labels != UNLABELLED
    if bool(known.all()):
        return kd_loss(logits, teacher_logits, labels, temperature=temperature, alpha=alpha)
    loss = alpha * temperature**2 * soft_target_kl(logits, teacher_logits, temperature)
    if alpha < 1.0 and bool(known.any()):
        loss = loss + (1.0 - alpha) * hard_label_ce(logits[known], labels[known])
    return loss


def param_groups(model: nn.Module, lr: float, layer_lr_scale: dict) -> list[dict]:
    """Adam parameter groups: a layer named in ``layer_lr_scale`` steps at ``lr * scale``."""
    by_scale: dict[float, list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            by_scale.setdefault(float(layer_lr_scale.get(name.rpartition(".")[0], 1.0)), []).append(p)
    return [{"params": ps, "lr": lr * scale} for scale, ps in by_scale.items()]


def distill_(
    student: nn.Module,
    bank: ViewBank,
    student_layers: list[str],
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    temperature: float,
    alpha: float,
    feature_weight: float,
    layer_weights=None,
    layer_lr_scale: dict | None = None,
    seed: int = 0,
    progress: bool = True,
    description: str = "distilling",
) -> list[dict]:
    """``steps`` Adam steps (cosine schedule) on random batches of the bank, in place.
    Loss: ``kd_loss(T, alpha)`` on logits + ``feature_weight`` x hint loss on the layers;
    ``layer_lr_scale`` multiplies the learning rate of the layers it names."""
    hint = build_hint_loss(student, bank, student_layers, layer_weights) if feature_weight > 0 else None
    groups = param_groups(student, lr, layer_lr_scale or {})
    if hint is not None:
        groups.append({"params": [p for p in hint.parameters() if p.requires_grad], "lr": lr})
    optimizer = torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    layers = student_layers if hint is not None else []
    history: list[dict] = []
    student.train()
    with progress_bar(progress) as bar, FeatureCapture(student, layers) as capture:
        task = bar.add_task(description, total=steps, metrics="")
        for step in range(steps):
            index = torch.randint(len(bank), (min(batch_size, len(bank)),), generator=generator)
            inputs, labels, teacher_logits, teacher_features = bank.batch(index)
            logits = student(inputs)
            loss_kd = bank_kd_loss(logits, teacher_logits, labels, temperature, alpha)
            loss = loss_kd
            if hint is not None:
                loss = loss + feature_weight * hint([capture.outputs[n] for n in layers], teacher_features)
            check_finite(loss, description)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            record = {"step": step + 1, "loss": loss.item(), "kd": loss_kd.item(),
                      "agree": (logits.argmax(-1) == teacher_logits.argmax(-1)).float().mean().item()}
            history.append(record)
            bar.update(task, advance=1, metrics=format_metrics(loss=record["loss"], agree=record["agree"]))
    student.eval()
    return history


@torch.no_grad()
def recalibrate_batchnorm_(model: nn.Module, inputs, batch_size: int = 128) -> int:
    """Re-estimate every BatchNorm's running statistics on ``inputs`` (cumulative average);
    returns how many BatchNorm layers were reset."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for start in range(0, len(inputs), batch_size):
        model(inputs[start : start + batch_size])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()
    return len(norms)


def agreement(student: nn.Module, bank: ViewBank) -> float:
    """Top-1 agreement with the teacher on the bank (a cheap fidelity check, no labels used)."""
    with torch.no_grad():
        logits = torch.cat([student.eval()(bank.batch(torch.arange(s, min(s + 256, len(bank))))[0])
                            for s in range(0, len(bank), 256)])
    return (logits.argmax(-1) == bank.teacher_logits.argmax(-1)).float().mean().item()

