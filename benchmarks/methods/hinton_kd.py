"""Hinton knowledge distillation with the seed-003 settings: T=4, alpha=0.7, Adam 1e-3."""

from dataclasses import dataclass

import torch

from fewshot_kd.distill import kd_loss
from fewshot_kd.files import save_tensors
from fewshot_kd.training import fit

from benchmarks.methods._few_shot_training import few_shot_config
from benchmarks.methods.base import MethodInput, MethodOutput, register_method
from benchmarks.methods.options import MethodOptions

TEMPERATURE, ALPHA, LR, WEIGHT_DECAY = 4.0, 0.7, 1e-3, 1e-4


@dataclass(frozen=True)
class HintonKDOptions(MethodOptions):
    """``steps``: about that many Adam steps over the shots."""

    steps: int = 300


@register_method("hinton_kd", "student distilled from teacher logits, T=4, alpha=0.7, Adam 1e-3 (seed 003)",
                 HintonKDOptions)
def run(inp: MethodInput, options: HintonKDOptions) -> MethodOutput:
    torch.manual_seed(inp.seed)
    student = inp.make_student().to(inp.device)
    config = few_shot_config(len(inp.shots), inp.augment, steps=options.steps,
                             lr=LR, weight_decay=WEIGHT_DECAY, seed=inp.seed)

    def criterion(student_logits, teacher_logits, labels):
        return kd_loss(student_logits, teacher_logits, labels, temperature=TEMPERATURE, alpha=ALPHA)

    fit(student, inp.shots, config, progress=inp.progress, description="hinton-kd",
        criterion=criterion, teacher=inp.teacher)
    artifact = save_tensors(inp.workdir / "student.safetensors", student.state_dict())
    return MethodOutput(model=student.eval(), artifact=artifact,
                        notes={"temperature": TEMPERATURE, "alpha": ALPHA, "lr": LR})
