"""Width pruning (``prune_(..., streams=True)``, ``Policy(structure="width")``): the residual
streams of option-A CIFAR ResNets narrow too, through the shortcut's own channel placement."""

from __future__ import annotations

import pytest
import torch

from fewshot_kd import create_model
from fewshot_kd.models.cifar_resnet import PadChannelsShortcut
from fewshot_kd.prune import load_pruned, prune_, save_pruned

DEAD = 0.25  # the fraction of every channel group made dead, then pruned


def test_shortcut_pruned_on_both_sides_equals_slicing_the_option_a_output():
    x = torch.randn(2, 6, 4, 4)
    shortcut = PadChannelsShortcut(pad=3, stride=2, in_channels=6)
    full = shortcut(x)  # 12 channels: 3 zeros, the 6 inputs, 3 zeros
    shortcut.prune_out_channels_([0, 4, 11])
    kept_out = [c for c in range(12) if c not in (0, 4, 11)]
    torch.testing.assert_close(shortcut(x), full[:, kept_out], rtol=0, atol=0)
    shortcut.prune_in_channels_([2, 5])  # inputs 2 and 5 fed outputs 5 and 8
    kept_in = [0, 1, 3, 4]
    expected = full[:, kept_out].clone()
    expected[:, kept_out.index(5)] = 0
    expected[:, kept_out.index(8)] = 0
    torch.testing.assert_close(shortcut(x[:, kept_in]), expected, rtol=0, atol=0)
    assert shortcut.out_channels == 9 and shortcut.in_channels == 4
    assert shortcut.gather_index.tolist() == [0, 0, 1, 0, 3, 4, 0, 0, 0]


def test_unpruned_shortcut_has_no_index_and_upstream_keys_stay():
    model = create_model("cifar_resnet20", num_classes=10)
    assert model.layer2[0].shortcut.gather_index is None
    assert not any("gather_index" in key for key in model.state_dict())


def _trained_like(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with non-trivial BatchNorm statistics and shifts, as after training."""
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
    return model


def _kill(model: torch.nn.Module) -> None:
    """Make the first quarter of every channel group of a ResNet-20 dead (zero weights into and
    out of it), choosing the stream channels so that the option-A shortcuts keep them dead: the
    L1 importance then ranks them last and a 25 % cut removes exactly them."""
    stages = (model.layer1, model.layer2, model.layer3)
    stream = {0: range(4), 1: list(range(4)) + list(range(8, 12)), 2: range(16)}  # pads and shifted dead inputs
    with torch.no_grad():
        for s, stage in enumerate(stages):
            dead = list(stream[s])
            producers = [(model.conv1, model.bn1)] if s == 0 else []
            producers += [(block.conv2, block.bn2) for block in stage]
            for conv, bn in producers:
                conv.weight[dead] = 0
                bn.weight[dead] = 0
                bn.bias[dead] = 0
            consumers = [block.conv1 for block in stage[1:]]
            consumers.append(stages[s + 1][0].conv1 if s < 2 else model.linear)
            for layer in consumers:
                layer.weight[:, dead] = 0
            for block in stage:
                inner = list(range(int(DEAD * block.conv1.out_channels)))
                block.conv1.weight[inner] = 0
                block.bn1.weight[inner] = 0
                block.bn1.bias[inner] = 0
                block.conv2.weight[:, inner] = 0
            if s == 0:
                stage[0].conv1.weight[:, dead] = 0


def test_width_pruning_removes_dead_stream_channels_and_keeps_the_function(tmp_path):
    model = _trained_like(create_model("cifar_resnet20", num_classes=10))
    _kill(model)
    model.eval()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(x)
    report = prune_(model, x[:1], DEAD, streams=True)
    assert report.frozen == ()
    widths = [(b.conv1.in_channels, b.conv1.out_channels, b.conv2.out_channels)
              for b in (model.layer1[0], model.layer2[0], model.layer3[0], model.layer3[2])]
    assert widths == [(12, 12, 12), (12, 24, 24), (24, 48, 48), (48, 48, 48)]
    assert model.linear.in_features == 48 and model.layer2[0].shortcut.out_channels == 24
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-5)

    path = save_pruned(model, tmp_path / "width.safetensors")
    again = load_pruned(path)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)
    assert again.layer3[0].shortcut.in_channels == 24
    prune_(again, x[:1], 0.25, streams=True)  # a reloaded student can be cut again
    assert again.layer2[0].shortcut.out_channels == 18 and again.layer2[0].shortcut.in_channels == 9


def test_streams_off_keeps_the_residual_widths():
    model = create_model("cifar_resnet20", num_classes=10).eval()
    report = prune_(model, torch.rand(1, 3, 32, 32), 0.5)
    assert set(report.frozen) == {"layer2.0.shortcut", "layer3.0.shortcut"}
    assert [b.conv2.out_channels for b in (model.layer1[0], model.layer2[0], model.layer3[0])] == [16, 32, 64]


def test_width_pruning_meets_a_macs_target_in_fewer_cut_channels():
    example = torch.rand(1, 3, 32, 32)
    by_width = prune_(create_model("cifar_resnet20", num_classes=10).eval(), example, target_macs=0.5,
                      tolerance=0.03, streams=True)
    inside = prune_(create_model("cifar_resnet20", num_classes=10).eval(), example, target_macs=0.5,
                    tolerance=0.03)
    assert abs(by_width.macs_after / by_width.macs_before - 0.5) <= 0.03
    assert by_width.ratio < 0.35 < inside.ratio  # both sides of every conv shrink


def test_width_policy_derives_a_narrow_student():
    from fewshot_kd.adapt.derive import derive_student
    from fewshot_kd.adapt.policy import Policy
    from fewshot_kd.adapt.target import Target
    from fewshot_kd.data.dataset import LabelledDataset
    from fewshot_kd.errors import FewShotKDError

    teacher = create_model("cifar_resnet20", num_classes=10).eval()
    shots = LabelledDataset(torch.rand(20, 3, 32, 32), torch.arange(20) % 10, tuple("abcdefghij"), name="random")
    policy = Policy(structure="width", prune_round_to=8)
    student, decisions = derive_student(teacher, shots, Target(macs=0.5), policy)
    assert decisions["prune"]["frozen"] == [] and decisions["macs_fraction"] <= 0.52  # within derive's tolerance
    assert all(block.conv2.out_channels % 8 == 0 for stage in (student.layer1, student.layer2, student.layer3)
               for block in stage)
    assert student.linear.in_features < 64
    with pytest.raises(FewShotKDError, match="'channels', 'width', 'blocks'"):
        Policy(structure="depth")


def test_width_pruned_student_exports_to_int8(tmp_path):
    pytest.importorskip("onnxruntime")
    from fewshot_kd.quant import to_integer_model

    model = _trained_like(create_model("cifar_resnet20", num_classes=10)).eval()
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    prune_(model, x[:1], 0.25, streams=True)
    int8 = to_integer_model(model, x, tmp_path / "width.int8.onnx")
    assert int8.integer_arithmetic and int8.op_counts["QLinearConv"] == 19 and int8.op_counts["Gather"] == 2
    with torch.no_grad():
        ref = model(x)
    out = int8(x)
    assert out.shape == ref.shape
    assert torch.corrcoef(torch.stack([out.flatten(), ref.flatten()]))[0, 1] > 0.9



@pytest.mark.gpu
def test_a_cuda_model_width_prunes_in_place():
    model = create_model("cifar_resnet20", num_classes=4).cuda().eval()
    prune_(model, torch.randn(1, 3, 32, 32), 0.25, streams=True)  # the shortcut's index is made on the CPU
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32, device="cuda"))
    assert out.device.type == "cuda" and model.layer2[0].shortcut.out_channels == 24
