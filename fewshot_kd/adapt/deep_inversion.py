"""Synthetic inputs inverted from a teacher's BatchNorm statistics (DeepInversion, Yin et al. 2020).

Noise images are optimised so that the batch statistics every BatchNorm layer sees match its
running mean / variance, the teacher assigns each image its intended class, and a total-variation
prior keeps them smooth. They add views the student distils the teacher's soft targets on."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from fewshot_kd.errors import FewShotKDError
from fewshot_kd.progress import format_metrics, progress_bar


@dataclass
class InversionResult:
    """``inputs`` with their intended ``classes``; ``teacher_agreement`` is the share the teacher
    assigns to the intended class; ``bn_loss`` the BatchNorm-statistics loss at the first / last step."""

    inputs: torch.Tensor
    classes: torch.Tensor
    teacher_agreement: float
    bn_loss: tuple[float, float]
    seconds: float


class _BatchStatLoss:
    """Forward hooks summing ``||mean - running_mean|| + ||var - running_var||`` over BatchNorm inputs."""

    def __init__(self, norms: list[nn.modules.batchnorm._BatchNorm]):
        self.terms: list[torch.Tensor] = []
        self.handles = [m.register_forward_hook(self._hook) for m in norms]

    def _hook(self, module, inputs, _output):
        x = inputs[0]
        dims = [0] + list(range(2, x.dim()))
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        self.terms.append(torch.norm(mean - module.running_mean, 2) + torch.norm(var - module.running_var, 2))

    def pop(self) -> torch.Tensor:
        total, self.terms = sum(self.terms), []
        return total

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (the image prior)."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def invert_teacher(
    teacher: nn.Module,
    reference: torch.Tensor,
    num_classes: int,
    count: int,
    *,
    steps: int = 200,
    lr: float = 0.05,
    bn_weight: float = 1.0,
    tv_weight: float = 0.1,
    jitter: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> InversionResult:
    """``count`` synthetic inputs for ``teacher`` (classes spread evenly), started from noise with
    the per-channel mean / std of ``reference`` (the shots) and kept inside its value range.
    Each step sees the images randomly shifted by up to ``jitter`` pixels (default a sixteenth
    of the side: 2 for 32x32, none for 8x8) and mirrored, as DeepInversion does."""
    if reference.dim() != 4:
        raise FewShotKDError("synthetic inputs need image teachers (inputs of shape N x C x H x W); set synthetic_inputs=0")
    norms = [m for m in teacher.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        raise FewShotKDError(f"DeepInversion needs BatchNorm layers with running statistics; the teacher "
                             f"({type(teacher).__name__}) has none. Set the policy's synthetic_inputs=0")
    start = time.perf_counter()
    jitter = min(reference.shape[-2:]) // 16 if jitter is None else jitter
    reference = reference.float()
    mean = reference.mean((0, 2, 3), keepdim=True)
    std = reference.std((0, 2, 3), keepdim=True).clamp_min(1e-3)
    low, high = reference.amin(), reference.amax()
    generator = torch.Generator().manual_seed(seed)
    classes = torch.arange(count) % num_classes
    was_training = teacher.training
    teacher.eval()
    requires = [p.requires_grad for p in teacher.parameters()]
    for p in teacher.parameters():
        p.requires_grad_(False)
    stats = _BatchStatLoss(norms)
    chunks, first_bn, last_bn = [], [], []
    try:
        with progress_bar(progress) as bar:
            task = bar.add_task("inverting BatchNorm statistics", total=steps * ((count + batch_size - 1) // batch_size),
                                metrics="")
            for begin in range(0, count, batch_size):
                y = classes[begin : begin + batch_size].to(reference.device)
                noise = torch.randn((len(y), *reference.shape[1:]), generator=generator).to(reference.device)
                x = (mean + std * noise).clamp(low, high).requires_grad_(True)
                optimizer = torch.optim.Adam([x], lr=lr * float(std.mean()))
                for step in range(steps):
                    dx, dy = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator))
                    shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
                    if bool(torch.rand((), generator=generator) < 0.5):
                        shifted = shifted.flip(-1)
                    stats.terms = []
                    ce = F.cross_entropy(teacher(shifted), y)
                    bn = stats.pop()
                    loss = ce + bn_weight * bn + tv_weight * total_variation(x)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    with torch.no_grad():
                        x.clamp_(low, high)
                    if step == 0:
                        first_bn.append(bn.item())
                    bar.update(task, advance=1, metrics=format_metrics(ce=ce.item(), bn=bn.item()))
                last_bn.append(bn.item())
                chunks.append(x.detach())
    finally:
        stats.close()
        for p, r in zip(teacher.parameters(), requires):
            p.requires_grad_(r)
        teacher.train(was_training)
    inputs = torch.cat(chunks)
    with torch.no_grad():
        agreement = (teacher.eval()(inputs).argmax(-1).cpu() == classes).float().mean().item()
    teacher.train(was_training)
    return InversionResult(inputs, classes, agreement, (sum(first_bn) / len(first_bn), sum(last_bn) / len(last_bn)),
                           time.perf_counter() - start)
