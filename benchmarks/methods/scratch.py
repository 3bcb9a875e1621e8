"""The task's student trained from scratch on the shots with cross-entropy (no teacher)."""

from dataclasses import dataclass

import torch

from fewshot_kd.files import save_tensors
from fewshot_kd.training import fit

from benchmarks.methods._few_shot_training import few_shot_config
from benchmarks.methods.base import MethodInput, MethodOutput, register_method
from benchmarks.methods.options import MethodOptions


@dataclass(frozen=True)
class ScratchOptions(MethodOptions):
    """``steps``: about that many Adam steps over the shots."""

    steps: int = 300


@register_method("scratch", "student from scratch on the shots, cross-entropy", ScratchOptions)
def run(inp: MethodInput, options: ScratchOptions) -> MethodOutput:
    torch.manual_seed(inp.seed)
    student = inp.make_student().to(inp.device)
    config = few_shot_config(len(inp.shots), inp.augment, steps=options.steps, seed=inp.seed)
    fit(student, inp.shots, config, progress=inp.progress, description="scratch")
    artifact = save_tensors(inp.workdir / "student.safetensors", student.state_dict())
    return MethodOutput(model=student.eval(), artifact=artifact)
