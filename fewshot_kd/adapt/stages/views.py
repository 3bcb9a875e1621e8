"""Stage 2: augmented, mixed and synthetic views of the shots, with the teacher's outputs cached."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn as nn

from fewshot_kd.adapt.derive import distilled_layers
from fewshot_kd.adapt.policy import Policy
from fewshot_kd.adapt.stages.job import Job
from fewshot_kd.distill.views import ViewBank, add_unlabelled, append_soft_only, build_bank, make_views, mixed_views

IMAGE_ONLY = "mix_views / synthetic_inputs apply to image inputs only"


@dataclass(frozen=True)
class Views:
    """The cached ``bank`` (its first ``real_rows`` rows are views of real inputs), the distilled
    teacher/student layer ``pairs``, and what was added beside the shots' views."""

    bank: ViewBank
    pairs: list[tuple[str, str]]
    real_rows: int
    seconds: float
    unlabelled_inputs: int | None = None
    image_only_views_skipped: str | None = None
    mixed_views: int | None = None
    synthetic: object | None = None  # deep_inversion.InversionResult

    @property
    def real_inputs(self):
        return self.bank.inputs[: self.real_rows]


def cache_views(job: Job, student: nn.Module, policy: Policy) -> Views:
    """Views of the shots (and unlabelled inputs), image extras, and the teacher's outputs on them."""
    tick = time.perf_counter()
    inputs, labels = make_views(job.support, policy.views_per_shot, policy.crop_padding, policy.flip,
                                policy.text_word_dropout, job.seed)
    unlabelled = None
    if job.unlabelled is not None:
        inputs, labels = add_unlabelled(inputs, labels, job.unlabelled, policy.unlabelled_views, policy.crop_padding,
                                        policy.flip, policy.text_word_dropout, job.seed)
        unlabelled = len(job.unlabelled)
    if isinstance(inputs, torch.Tensor):
        inputs = inputs.to(job.device)
    real_rows = len(labels)  # BatchNorm is recalibrated on real images only, not mixed or synthetic ones
    extras: dict = {}
    if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
        inputs, labels = _stretch_images(job, inputs, labels, policy, extras)
    elif policy.mix_views or policy.synthetic_inputs:
        extras["image_only_views_skipped"] = IMAGE_ONLY
    example = job.support.input_batch(slice(0, 1))
    example = example.to(job.device) if isinstance(example, torch.Tensor) else example
    pairs = distilled_layers(job.teacher, student, policy, example)
    bank = build_bank(job.teacher, inputs, labels.to(job.device), [t for t, _ in pairs])
    return Views(bank, pairs, real_rows, time.perf_counter() - tick, unlabelled_inputs=unlabelled, **extras)


def _stretch_images(job: Job, inputs, labels, policy: Policy, extras: dict):
    """Add the policy's mixed (mixup / cutmix) and DeepInversion views of image shots."""
    if policy.mix_views:
        shot_views = inputs[: len(job.support) * policy.views_per_shot]
        mixed = mixed_views(shot_views, policy.mix_views, len(job.support), policy.mix, policy.mix_alpha, job.seed)
        inputs, labels = append_soft_only(inputs, labels, mixed)
        extras["mixed_views"] = len(mixed)
    if policy.synthetic_inputs:
        from fewshot_kd.adapt.deep_inversion import invert_teacher

        made = invert_teacher(job.teacher, job.support.all_inputs().to(job.device), job.support.num_classes,
                              policy.synthetic_inputs, steps=policy.synthetic_steps, seed=job.seed, progress=job.progress)
        inputs, labels = append_soft_only(inputs, labels, made.inputs)
        extras["synthetic"] = made
    return inputs, labels
