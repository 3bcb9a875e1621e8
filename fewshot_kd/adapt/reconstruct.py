"""Closed-form repair of a pruned student: least-squares reconstruction of the layers whose
input channels were cut, from a few hundred images and the teacher.

After channel pruning, a layer that *reads* pruned channels (the second conv of a residual
block) no longer sees what the teacher's copy saw. Each such conv / linear is re-solved, in
forward order, so that on the student's own (already repaired) inputs it reproduces the
teacher's output of the same layer: ridge regression pulled towards the pruned weights
(the few-sample reconstruction of ThiNet, FSKD and cross distillation). One teacher pass and
one student pass: every layer is solved in a pre-forward hook, just before it runs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from fewshot_kd.distill import FeatureCapture


@dataclass
class Reconstruction:
    """What :func:`reconstruct_` did: per layer, the relative squared error of its output
    against the teacher's (``||y_s - y_t||^2 / ||y_t||^2``) before and after the solve."""

    layers: dict[str, dict[str, float]] = field(default_factory=dict)
    images: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _solvable(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return (isinstance(module, nn.Conv2d) and module.groups == 1 and module.padding_mode == "zeros"
            and not isinstance(module.padding, str))


def pruned_readers(teacher: nn.Module, student: nn.Module) -> list[str]:
    """Convs / linears of ``student`` (same name, same kind in ``teacher``) that kept every
    output channel but lost input channels: the layers reconstruction re-solves."""
    teacher_modules = dict(teacher.named_modules())
    names = []
    for name, module in student.named_modules():
        source = teacher_modules.get(name)
        if source is None or type(source) is not type(module) or not _solvable(module):
            continue
        out_s, in_s = module.weight.shape[:2]
        out_t, in_t = source.weight.shape[:2]
        if out_s == out_t and in_s < in_t:
            names.append(name)
    return names


def _rows(module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The layer's input as a design matrix: one row per output position."""
    if isinstance(module, nn.Linear):
        return inputs.reshape(-1, inputs.shape[-1])
    cols = F.unfold(inputs, module.kernel_size, dilation=module.dilation, padding=module.padding, stride=module.stride)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _target_rows(module: nn.Module, outputs: torch.Tensor) -> torch.Tensor:
    if isinstance(module, nn.Linear):
        return outputs.reshape(-1, outputs.shape[-1])
    return outputs.permute(0, 2, 3, 1).reshape(-1, outputs.shape[1])


def _flat_weight(module: nn.Module) -> torch.Tensor:
    """``(fan_in [+1 for the bias], out)``: the weights as the design matrix multiplies them."""
    weight = module.weight.detach().reshape(module.weight.shape[0], -1).t()
    if module.bias is not None:
        weight = torch.cat([weight, module.bias.detach()[None]])
    return weight


def _set_flat_weight_(module: nn.Module, flat: torch.Tensor) -> None:
    if module.bias is not None:
        module.bias.data.copy_(flat[-1])
        flat = flat[:-1]
    module.weight.data.copy_(flat.t().reshape(module.weight.shape))


def _relative_error(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor) -> float:
    return float(((x @ w - y).pow(2).sum() / y.pow(2).sum().clamp_min(1e-12)).item())


def solve_layer_(module: nn.Module, inputs: torch.Tensor, teacher_outputs: torch.Tensor, ridge: float,
                 max_rows: int, generator: torch.Generator) -> dict[str, float]:
    """Re-solve ``module``'s weights (in place) so that ``module(inputs)`` ≈ ``teacher_outputs``;
    the ridge term pulls the solution towards the current weights, scaled to the data."""
    x, y = _rows(module, inputs.detach()), _target_rows(module, teacher_outputs)
    if len(x) > max_rows:
        keep = torch.randperm(len(x), generator=generator)[:max_rows].to(x.device)
        x, y = x[keep], y[keep]
    x, y = x.double(), y.double()
    if module.bias is not None:
        x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype, device=x.device)], dim=1)
    w0 = _flat_weight(module).double()
    gram = x.t() @ x
    strength = ridge * float(gram.diagonal().mean()) + 1e-12
    eye = torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
    w = torch.linalg.solve(gram + strength * eye, x.t() @ y + strength * w0)
    before, after = _relative_error(x, w0, y), _relative_error(x, w, y)
    if after < before:
        _set_flat_weight_(module, w.to(module.weight.dtype))
    return {"before": before, "after": min(before, after)}


@torch.no_grad()
def reconstruct_(student: nn.Module, teacher: nn.Module, inputs: torch.Tensor, ridge: float = 1e-3,
                 max_rows: int = 65536, seed: int = 0) -> Reconstruction:
    """Re-solve every layer :func:`pruned_readers` finds, in place, on ``inputs`` (a batch of
    images or features both models take). Layers the solve would not improve are kept, and a
    layer that runs more than once per forward (shared weights) is skipped."""
    start = time.perf_counter()
    names = pruned_readers(teacher, student)
    result = Reconstruction(images=len(inputs))
    if not names:
        return result
    with FeatureCapture(teacher, names, detach=True) as capture:
        teacher.eval()(inputs)
        # a layer run more than once per forward (shared weights) has no single target: skip it
        targets = {n: capture.outputs[n] for n in names if capture.calls.get(n) == 1}
    modules = dict(student.named_modules())
    generator = torch.Generator().manual_seed(seed)
    handles = []

    def hook(name):
        def solve(module, args):
            if name in targets:
                result.layers[name] = solve_layer_(module, args[0], targets.pop(name), ridge, max_rows, generator)
        return solve

    was_training = student.training
    try:
        for name in targets:
            handles.append(modules[name].register_forward_pre_hook(hook(name)))
        student.eval()(inputs)
    finally:
        for handle in handles:
            handle.remove()
        student.train(was_training)
    result.seconds = time.perf_counter() - start
    return result
