"""Soft channel masks and their hardening into physical pruning (fewshot_kd.prune.masks)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fewshot_kd.prune import SoftChannelMask, attach_soft_masks, harden_


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.conv2(x))  # no BatchNorm: the gate folds into the conv itself
        return self.fc(x.mean((2, 3)))


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 12), nn.ReLU(), nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 3))


def resnet20() -> nn.Module:
    from fewshot_kd.models.cifar_resnet import CifarResNet

    return CifarResNet(20)


def mobilenet() -> nn.Module:
    torchvision = pytest.importorskip("torchvision")
    return torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.25)


def _randomise_(model: nn.Module, masks) -> None:
    """Non-trivial BatchNorm statistics and gate logits around 0 (about half below 0.5)."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
            m.bias.data.uniform_(-0.5, 0.5, generator=g)
    for _, mask in masks.items():
        mask.logits.data.normal_(0.0, 2.0, generator=g)


def test_mask_gate_is_a_differentiable_sigmoid():
    mask = SoftChannelMask(3, init_logit=0.0, temperature=2.0)
    mask.logits.data = torch.tensor([0.0, 2.0, -2.0])
    assert torch.allclose(mask.gate(), torch.sigmoid(torch.tensor([0.0, 1.0, -1.0])))
    y = mask(torch.ones(2, 3, 4, 4))
    assert torch.allclose(y[0, :, 0, 0], mask.gate())
    y.sum().backward()
    assert mask.logits.grad is not None and mask.logits.grad.abs().sum() > 0


def test_attach_keeps_types_and_state_dict_and_trains_the_logits():
    model = TinyNet()
    keys = list(model.state_dict())
    masks = attach_soft_masks(model, torch.rand(1, 3, 8, 8))
    assert list(masks) == ["conv1", "conv2"]  # fc is the classifier
    assert [masks[r].num_channels for r in masks] == [8, 16]
    assert list(model.state_dict()) == keys and isinstance(model.bn1, nn.BatchNorm2d)
    x = torch.rand(2, 3, 8, 8)
    model(x).sum().backward()
    assert all(mask.logits.grad.abs().sum() > 0 for _, mask in masks.items())
    assert 0 < masks.penalty().item() < 1
    masks.remove()
    assert not masks.attached


def test_zero_gate_silences_its_channel():
    model = TinyNet().eval()
    masks = attach_soft_masks(model, torch.rand(1, 3, 8, 8))
    seen = {}
    model.conv2.register_forward_pre_hook(lambda m, i: seen.update(x=i[0]))
    masks["conv1"].keep[2] = 0.0
    model(torch.rand(1, 3, 8, 8))
    assert torch.count_nonzero(seen["x"][:, 2]) == 0 and torch.count_nonzero(seen["x"][:, 3]) > 0


@pytest.mark.parametrize("build, shape", [(TinyNet, (3, 8, 8)), (mlp, (3, 8, 8)), (resnet20, (3, 32, 32)),
                                          pytest.param(mobilenet, (3, 32, 32), marks=pytest.mark.slow)])
def test_hardened_model_equals_the_masked_model(build, shape):
    torch.manual_seed(0)
    model = build().eval()
    x = torch.rand(4, *shape)
    masks = attach_soft_masks(model, x[:1])
    _randomise_(model, masks)
    kept = masks.decide_(threshold=0.5)
    with torch.no_grad():
        masked = model(x)
    report = harden_(model, masks, threshold=0.5)
    with torch.no_grad():
        hard = model(x)
    torch.testing.assert_close(hard, masked, atol=1e-5, rtol=1e-5)
    assert report.params_after < report.params_before and report.macs_after < report.macs_before
    modules = dict(model.named_modules())
    for root, count in kept.items():
        width = getattr(modules[root], "out_channels", None) or modules[root].out_features
        assert width == count
    assert not masks.attached


def test_option_a_resnet_masks_only_inner_block_channels():
    model = resnet20()
    masks = attach_soft_masks(model, torch.rand(1, 3, 32, 32))
    assert sorted(masks) == sorted(f"layer{s}.{b}.conv1" for s in (1, 2, 3) for b in range(3))


@pytest.mark.parametrize("decide_first", [False, True])
def test_keep_ratio_keeps_the_largest_gates(decide_first):
    model = TinyNet().eval()
    masks = attach_soft_masks(model, torch.rand(1, 3, 8, 8))
    masks["conv1"].logits.data = torch.arange(8.0) - 4.0  # gates below 0.5 for channels 0..3
    model.bn1.bias.data = torch.arange(8.0) + 1.0
    bias = model.bn1.bias.detach().clone()
    if decide_first:
        masks.decide_(keep_ratio=0.25)
        harden_(model, masks)  # uses that decision, not the 0.5 threshold
    else:
        harden_(model, masks, keep_ratio=0.25)
    assert model.conv1.out_channels == 2 and model.conv2.out_channels == 4
    gates = torch.sigmoid(torch.tensor([2.0, 3.0]))
    torch.testing.assert_close(model.bn1.bias, bias[6:] * gates)  # channels 6, 7, gates folded


def test_hardening_twice_or_bad_decisions_raise():
    model = TinyNet()
    masks = attach_soft_masks(model, torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="exactly one"):
        masks.decide_(threshold=0.5, keep_ratio=0.5)
    with pytest.raises(ValueError, match="keep_ratio"):
        masks.decide_(keep_ratio=0.0)
    harden_(model, masks)
    with pytest.raises(RuntimeError, match="not attached"):
        harden_(model, masks)


def test_a_group_keeps_at_least_one_channel():
    model = TinyNet().eval()
    masks = attach_soft_masks(model, torch.rand(1, 3, 8, 8))
    masks["conv1"].logits.data = torch.full((8,), -10.0)
    masks["conv1"].logits.data[5] = -9.0
    harden_(model, masks, threshold=0.5)
    assert model.conv1.out_channels == 1
