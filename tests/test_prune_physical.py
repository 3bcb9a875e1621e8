"""Physical structured pruning (fewshot_kd.prune.prune_) on tiny models with hand counts."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fewshot_kd.errors import UnsupportedLayerError
from fewshot_kd.prune import PruneTargetError, count_macs, prune_


class TinyNet(nn.Module):
    """conv3x3(3->c1)-BN-ReLU, conv3x3(c1->c2)-BN-ReLU, global mean, Linear(c2->3)."""

    def __init__(self, c1: int = 8, c2: int = 16, scale: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, c1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.scale = scale if scale is not None else nn.Identity()
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.fc = nn.Linear(c2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.scale(F.relu(self.bn1(self.conv1(x))))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


def tiny_macs(c1: int, c2: int, hw: int = 64, batch: int = 2) -> int:
    """Hand count on a batch of 8x8 inputs: two 3x3 convs (padding 1) and the classifier."""
    return batch * (3 * c1 * 9 * hw + c1 * c2 * 9 * hw + c2 * 3)


def tiny_params(c1: int, c2: int) -> int:
    return 3 * c1 * 9 + 2 * c1 + c1 * c2 * 9 + 2 * c2 + c2 * 3 + 3


X = torch.rand(2, 3, 8, 8)


def test_half_ratio_halves_every_group_and_matches_hand_counts():
    model = TinyNet().eval()
    report = prune_(model, X, 0.5)
    assert (model.conv1.out_channels, model.conv2.out_channels, model.bn1.num_features) == (4, 8, 4)
    assert model.fc.out_features == 3 and model.fc.in_features == 8  # classifier kept by default
    assert report.params_before == tiny_params(8, 16) == 1467
    assert report.params_after == tiny_params(4, 8) == sum(p.numel() for p in model.parameters())
    assert report.macs_before == tiny_macs(8, 16) == 2 * 87_600
    assert report.macs_after == tiny_macs(4, 8) == count_macs(model, X)
    assert report.channels["conv1"] == (8, 4) and report.channels["fc"] == (3, 3)
    assert model(X).shape == (2, 3)
    assert all(type(m) in (TinyNet, nn.Conv2d, nn.BatchNorm2d, nn.Identity, nn.Linear) for m in model.modules())


def test_per_layer_mapping_overrides_the_global_ratio():
    model = TinyNet()
    prune_(model, X, 0.0, per_layer={"conv1": 0.25, model.conv2: 0.75})
    assert model.conv1.out_channels == 6 and model.conv2.in_channels == 6
    assert model.conv2.out_channels == 4 and model.fc.in_features == 4


def test_per_layer_callable_is_asked_per_layer():
    model = TinyNet()
    asked = []

    def rule(name, module):
        asked.append(name)
        return 0.5 if name == "conv2" else None

    prune_(model, X, 0.0, per_layer=rule)
    assert set(asked) == {"conv1", "conv2", "fc"}
    assert model.conv1.out_channels == 8 and model.conv2.out_channels == 8


def test_ignored_layers_by_name_stay_whole():
    model = TinyNet()
    prune_(model, X, 0.5, ignored_layers=["conv1", "fc"])
    assert model.conv1.out_channels == 8 and model.conv2.out_channels == 8


def test_global_pruning_removes_half_of_all_prunable_channels():
    model = TinyNet()
    prune_(model, X, 0.5, global_pruning=True)
    assert model.conv1.out_channels + model.conv2.out_channels == 12
    assert model(X).shape == (2, 3)


def test_round_to_keeps_multiples():
    model = TinyNet()
    prune_(model, X, 0.3, round_to=4)  # int(16 * 0.7) = 11 -> 8, int(8 * 0.7) = 5 -> 4
    assert (model.conv1.out_channels, model.conv2.out_channels) == (4, 8)


def _two_channel_net() -> nn.Sequential:
    """conv_a (1->2, 2x2): channel 0 = [1, 1, 1, 1] (L1 4, sum of squares 4),
    channel 1 = [3, 0, 0, 0] (L1 3, sum of squares 9); the next conv weighs both alike."""
    net = nn.Sequential(nn.Conv2d(1, 2, 2, bias=False), nn.ReLU(), nn.Conv2d(2, 2, 1, bias=False),
                        nn.Flatten(), nn.Linear(2 * 3 * 3, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]], [[[3.0, 0.0], [0.0, 0.0]]]]))
        net[2].weight.fill_(1.0)
    return net


@pytest.mark.parametrize("importance, kept", [("l1", [1.0, 1.0, 1.0, 1.0]), ("l2", [3.0, 0.0, 0.0, 0.0])])
def test_l1_and_l2_rank_by_their_own_norm(importance, kept):
    net = _two_channel_net()
    prune_(net, torch.rand(1, 1, 4, 4), per_layer={"0": 0.5}, ratio=0.0, importance=importance)
    assert net[0].out_channels == 1
    assert net[0].weight.flatten().tolist() == kept


def test_bn_scale_keeps_the_largest_gammas():
    model = TinyNet()
    gammas = torch.tensor([0.1, 5.0, 0.2, 4.0, 0.3, 3.0, 0.4, 2.0])
    rows = model.conv1.weight.detach().clone()
    with torch.no_grad():
        model.bn1.weight.copy_(gammas)
    prune_(model, X, 0.0, per_layer={"conv1": 0.5}, importance="bn_scale")
    assert model.bn1.weight.tolist() == [5.0, 4.0, 3.0, 2.0]
    assert torch.equal(model.conv1.weight, rows[[1, 3, 5, 7]])


def test_taylor_uses_the_shots_and_drops_dead_channels_that_l1_keeps():
    def dead_half() -> TinyNet:
        torch.manual_seed(1)
        model = TinyNet()
        with torch.no_grad():
            model.conv1.weight[:4] *= 10.0  # large weights ...
            model.conv2.weight[:, :4] = 0.0  # ... whose output nothing reads
        return model

    shots = [(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]))]
    taylor, l1 = dead_half(), dead_half()
    rows = taylor.conv1.weight.detach().clone()
    prune_(taylor, X, 0.0, per_layer={"conv1": 0.5}, importance="taylor", data=shots)
    prune_(l1, X, 0.0, per_layer={"conv1": 0.5}, importance="l1")
    assert torch.equal(taylor.conv1.weight, rows[4:])
    assert torch.equal(l1.conv1.weight, rows[:4])
    assert all(p.grad is None for p in taylor.parameters())


def test_taylor_without_data_is_refused():
    with pytest.raises(ValueError, match="data"):
        prune_(TinyNet(), X, 0.5, importance="taylor")


class ChannelScale(nn.Module):
    """A custom layer with its own per-channel parameter (unknown to the pruner)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1)


def test_unsupported_layer_is_named_and_can_be_ignored():
    with pytest.raises(UnsupportedLayerError, match="'scale'.*ChannelScale"):
        prune_(TinyNet(scale=ChannelScale(8)), X, 0.5)
    model = TinyNet(scale=ChannelScale(8))
    report = prune_(model, X, 0.5, ignored_layers=["scale", "fc"])
    assert model.conv1.out_channels == 8 and model.scale.weight.numel() == 8  # frozen with it
    assert model.conv2.out_channels == 8
    assert "scale" in report.frozen
    assert model(X).shape == (2, 3)


def test_option_a_resnet_prunes_inner_block_channels_only():
    from fewshot_kd.models.cifar_resnet import CifarResNet

    model = CifarResNet(20).eval()
    x = torch.rand(1, 3, 32, 32)
    report = prune_(model, x, 0.5)
    assert set(report.frozen) == {"layer2.0.shortcut", "layer3.0.shortcut"}
    for stage, width in ((model.layer1, 16), (model.layer2, 32), (model.layer3, 64)):
        for block in stage:
            assert block.conv1.out_channels == width // 2 == block.conv2.in_channels
            assert block.conv2.out_channels == width  # residual stream untouched
    assert model.conv1.out_channels == 16 and model.linear.in_features == 64
    assert model(x).shape == (1, 10)
    assert report.macs_after < 0.55 * report.macs_before


@pytest.mark.slow
def test_mobilenet_v2_inverted_residuals_stay_consistent():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.25).eval()
    x = torch.rand(1, 3, 32, 32)
    report = prune_(model, x, 0.4)
    assert report.params_after < 0.7 * report.params_before
    assert report.macs_after < 0.7 * report.macs_before
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.groups > 1:
            assert m.groups == m.in_channels == m.out_channels  # depthwise kept depthwise
    assert model(x).shape == (1, 10) and model.classifier[1].out_features == 10


def wide_net() -> TinyNet:
    return TinyNet(c1=32, c2=64)


@pytest.mark.parametrize("kind", ["macs", "params"])
def test_budget_is_met_within_tolerance(kind):
    model = wide_net()
    before = tiny_macs(32, 64) if kind == "macs" else tiny_params(32, 64)
    budget = before // 2
    arg = {"target_macs": budget} if kind == "macs" else {"target_params": budget}
    report = prune_(model, X, tolerance=0.03, **arg)
    after = report.macs_after if kind == "macs" else report.params_after
    assert abs(after - budget) <= 0.03 * budget
    assert after == (count_macs(model, X) if kind == "macs" else sum(p.numel() for p in model.parameters()))
    assert 0.0 < report.ratio < 0.9


def test_budget_given_as_fraction():
    model = wide_net()
    report = prune_(model, X, target_macs=0.5, tolerance=0.03)
    assert abs(report.macs_after / report.macs_before - 0.5) <= 0.03 * 0.5


def test_unreachable_budget_raises_a_clear_error():
    model = wide_net()
    with pytest.raises(PruneTargetError, match="cannot reach"):
        prune_(model, X, target_macs=1_000)
    assert model.conv2.out_channels == 64  # left untouched


def test_budget_between_channel_counts_takes_the_closest_below_when_asked():
    model = TinyNet(c1=8, c2=8)  # one channel moves the MACs by 10-20 %: 0.5 lies between 0.455 and 0.614
    before = count_macs(model, X)
    budget = int(before * 0.5)
    with pytest.raises(PruneTargetError, match="closest below"):
        prune_(copy.deepcopy(model), X, target_macs=budget, tolerance=1e-4, max_ratio=0.8)
    report = prune_(model, X, target_macs=budget, tolerance=1e-4, max_ratio=0.8, below_ok=True)
    assert report.macs_after <= budget and report.macs_after == count_macs(model, X)
    assert report.macs_after > 0.4 * before  # the closest count below (0.455), not a deeper cut


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        prune_(TinyNet(), X, 1.5)
    with pytest.raises(ValueError, match="not both"):
        prune_(TinyNet(), X, target_macs=0.5, target_params=0.5)
    with pytest.raises(KeyError, match="no submodule named 'nope'"):
        prune_(TinyNet(), X, ignored_layers=["nope"])


def test_training_mode_is_kept_and_importance_objects_are_accepted():
    import torch_pruning as tp

    model = TinyNet().train()
    report = prune_(model, X, 0.5, importance=tp.importance.GroupMagnitudeImportance(p=1))
    assert model.training and all(m.training for m in model.modules())
    assert report.importance == "GroupMagnitudeImportance" and model.conv2.out_channels == 8


def test_a_frozen_model_is_pruned_and_stays_frozen():
    model = wide_net()
    for p in model.parameters():
        p.requires_grad_(False)  # e.g. a teacher; DepGraph sees no autograd graph without this handled
    report = prune_(model, X, 0.5)
    assert model.conv1.out_channels == 16 and report.macs_after < report.macs_before
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.gpu
def test_a_cuda_model_prunes_with_cpu_examples_and_data():
    from fewshot_kd.models.catalog import create_model

    model = create_model("cifar_resnet20", num_classes=4).cuda()
    example = torch.randn(1, 3, 32, 32)  # the shots stay on the CPU
    data = [(torch.randn(8, 3, 32, 32), torch.randint(4, (8,)))]
    report = prune_(model, example, target_macs=0.5, importance="taylor", data=data, below_ok=True)
    assert report.macs_after < 0.55 * report.macs_before
    assert all(p.device.type == "cuda" for p in model.parameters())
