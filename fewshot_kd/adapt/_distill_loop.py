"""adapt()'s distillation stage: the shared loop of :mod:`fewshot_kd.distill.loop` on the view bank,
with a progress bar, and a teacher-agreement check (BatchNorm recalibration is the loop module's)."""

from __future__ import annotations

import torch
import torch.nn as nn

from fewshot_kd.distill.views import UNLABELLED, ViewBank
from fewshot_kd.distill import FeatureCapture, HintLoss
from fewshot_kd.distill.loop import Distillee, LoopSpec, distilled_parameters, run_distillation
from fewshot_kd.distill.objective import ObjectiveWeights
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


def layer_lr_scales(student: nn.Module, layer_lr_scale: dict, prefix: str = "student.") -> dict[str, float]:
    """Per trainable parameter of ``student`` (named with ``prefix``), the multiplier of the
    base learning rate: ``layer_lr_scale[layer]`` for a layer it names, else 1."""
    return {prefix + name: float(layer_lr_scale.get(name.rpartition(".")[0], 1.0))
            for name in distilled_parameters(student)}


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
    channels_last: bool = False,
) -> list[dict]:
    """``steps`` Adam steps (cosine schedule) on random batches of the bank, in place, through
    :func:`fewshot_kd.distill.loop.run_distillation` (the loop the meta-learner trains for).
    Loss: :func:`~fewshot_kd.distill.objective.distillation_objective` with ``temperature``,
    ``alpha``, ``feature_weight`` x hints through 1x1 adaptors on ``student_layers``;
    ``layer_lr_scale`` multiplies the learning rate of the layers it names; ``channels_last``
    trains a convolutional student in channels-last format (handed back in the default one)."""
    hint = build_hint_loss(student, bank, student_layers, layer_weights) if feature_weight > 0 else None
    layers = student_layers if hint is not None else []
    model = Distillee(student, hint.adaptors if hint is not None else ())
    channels_last = channels_last and any(isinstance(m, nn.Conv2d) for m in student.modules())
    if channels_last:
        model.to(memory_format=torch.channels_last)
    params = distilled_parameters(model)
    scales = layer_lr_scales(student, layer_lr_scale or {})
    weights = ObjectiveWeights(temperature, alpha, feature_weight if hint is not None else 0.0,
                               hint.layer_weights if hint is not None else None)
    history: list[dict] = []
    model.train()
    with progress_bar(progress) as bar:
        task = bar.add_task(description, total=steps, metrics="")

        def record(step, loss, parts, logits, teacher_logits):
            check_finite(loss, description)
            entry = {"step": step + 1, "loss": loss.item(), "kd": parts["kd"].item(),
                     "agree": (logits.argmax(-1) == teacher_logits.argmax(-1)).float().mean().item()}
            history.append(entry)
            bar.update(task, advance=1, metrics=format_metrics(loss=entry["loss"], agree=entry["agree"]))

        final = run_distillation(model, params, bank, weights, layers,
                                 LoopSpec(steps, lr, batch_size, weight_decay), scales, seed=seed, on_step=record)
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(final[name])
    if channels_last:
        student.to(memory_format=torch.contiguous_format)
    student.eval()
    return history


def agreement(student: nn.Module, bank: ViewBank) -> float:
    """Top-1 agreement with the teacher on the bank (a cheap fidelity check, no labels used)."""
    with torch.no_grad():
        logits = torch.cat([student.eval()(bank.batch(torch.arange(s, min(s + 256, len(bank))))[0])
                            for s in range(0, len(bank), 256)])
    return (logits.argmax(-1) == bank.teacher_logits.argmax(-1)).float().mean().item()

