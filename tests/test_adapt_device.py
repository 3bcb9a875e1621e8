"""adapt(device=...) trains on that device: the student's tensors live there and no backward
op runs elsewhere; MetaPolicy.decide takes a teacher on a GPU (CUDA parts skip without one)."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn as nn

from device_audit import BackwardDeviceAudit
from fewshot_kd import Policy, adapt
from fewshot_kd.meta import MetaPolicy, PolicyNet

FAST = Policy(steps=15, views_per_shot=2, flip=False, prune_importance="l1")


def test_audit_sees_training_off_the_asked_device():
    model = nn.Linear(4, 2)
    with BackwardDeviceAudit("cuda") as audit:
        model(torch.randn(3, 4)).sum().backward()
    assert audit.backward_ops > 0 and audit.off_device  # CPU backward ops, where CUDA was asked
    with BackwardDeviceAudit("cpu") as audit:
        model(torch.randn(3, 4)).sum().backward()
    assert audit.backward_ops > 0 and not audit.off_device


@pytest.mark.gpu
def test_adapt_on_cuda_keeps_the_student_and_its_training_there(teacher, digits):
    with BackwardDeviceAudit("cuda") as audit:
        result = adapt(copy.deepcopy(teacher), shots=5, data=digits, target={"macs": 0.5}, policy=FAST,
                       device="cuda", progress=False)
    tensors = itertools.chain(result.student.parameters(), result.student.buffers())
    assert all(t.device.type == "cuda" for t in tensors)
    assert audit.backward_ops > 0 and audit.off_device == []


@pytest.mark.gpu
def test_meta_policy_decides_for_a_teacher_on_cuda(teacher, digits):
    from fewshot_kd.adapt.target import Target

    torch.manual_seed(0)
    policy = MetaPolicy(PolicyNet())
    support = digits.train.few_shot(5, seed=0)
    target = Target.parse({"macs": 0.5})
    on_cpu, _ = policy.decide(copy.deepcopy(teacher).cpu(), support, target)
    on_gpu, _ = policy.decide(copy.deepcopy(teacher).cuda(), support, target)
    assert on_gpu.per_layer_prune.keys() == on_cpu.per_layer_prune.keys()
    for name, ratio in on_cpu.per_layer_prune.items():
        assert on_gpu.per_layer_prune[name] == pytest.approx(ratio, abs=1e-3)
