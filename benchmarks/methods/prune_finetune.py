"""Prune the teacher to the task's MACs target (L1 magnitude) and fine-tune with cross-entropy
on the shots: the classic prune-then-retrain baseline, no distillation."""

from dataclasses import dataclass

import torch

from fewshot_kd.model_io import trainable_copy
from fewshot_kd.prune import prune_
from fewshot_kd.prune.serialize import save_pruned
from fewshot_kd.training import fit

from benchmarks.methods._few_shot_training import few_shot_config
from benchmarks.methods.base import MethodInput, MethodOutput, register_method
from benchmarks.methods.options import MethodOptions


@dataclass(frozen=True)
class FineTuneOptions(MethodOptions):
    """Fine-tuning after pruning: about ``steps`` Adam steps over the shots at ``lr``."""

    steps: int = 300
    lr: float = 5e-4


@register_method("prune_finetune", "teacher pruned to the MACs target (L1), fine-tuned with cross-entropy",
                 FineTuneOptions)
def run(inp: MethodInput, options: FineTuneOptions) -> MethodOutput:
    torch.manual_seed(inp.seed)
    student = trainable_copy(inp.teacher)
    report = prune_(student, inp.example_inputs, importance="l1", target_macs=inp.target.get("macs", 0.5))
    config = few_shot_config(len(inp.shots), inp.augment, steps=options.steps, lr=options.lr, seed=inp.seed)
    history = fit(student, inp.shots, config, progress=inp.progress, description="prune+finetune")
    artifact = save_pruned(student, inp.workdir / "pruned.safetensors", arch=getattr(inp.teacher, "arch", None))
    return MethodOutput(model=student.eval(), artifact=artifact,
                        notes={"prune_ratio": report.ratio, "history": history})
