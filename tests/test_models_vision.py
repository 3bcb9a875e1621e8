"""The vision model zoo: CIFAR ResNets (with the upstream weights), torchvision 32x32
adaptations, and the small students."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.fx

from fewshot_kd.errors import DataNotFoundError
from fewshot_kd.models import cifar_resnet, small_cnn, torchvision_32  # noqa: F401  (registers)
from fewshot_kd.models._normalize import CIFAR10_MEAN, CIFAR10_STD, Normalize
from fewshot_kd.models.catalog import MODELS
from fewshot_kd.models.cifar_resnet import PadChannelsShortcut
from fewshot_kd.models.small_cnn import example_inputs

VISION_MODELS = [
    "cifar_resnet20", "cifar_resnet32", "cifar_resnet44", "cifar_resnet56",
    "mobilenetv2_32", "resnet18_32", "small_cnn", "tiny_cnn", "mlp",
]


def build(name: str, **kwargs) -> torch.nn.Module:
    return MODELS.get(name)(**kwargs)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_vision_model_is_registered():
    assert set(VISION_MODELS) <= set(MODELS.names())


@pytest.mark.parametrize(
    "name, kwargs, shape",
    [
        ("cifar_resnet20", {"num_classes": 7}, (3, 32, 32)),
        ("cifar_resnet56", {}, (3, 32, 32)),
        ("mobilenetv2_32", {"num_classes": 100, "width_mult": 0.5}, (3, 32, 32)),
        ("resnet18_32", {"num_classes": 5}, (3, 32, 32)),
        ("resnet18_32", {"num_classes": 5, "in_channels": 1}, (1, 28, 28)),
        ("small_cnn", {}, (3, 32, 32)),
        ("small_cnn", {"in_channels": 1, "num_classes": 5}, (1, 28, 28)),
        ("small_cnn", {"in_channels": 1, "num_classes": 5}, (1, 8, 8)),
        ("tiny_cnn", {}, (1, 8, 8)),
        ("tiny_cnn", {"in_channels": 3, "num_classes": 4}, (3, 32, 32)),
        ("tiny_cnn", {"num_classes": 3}, (1, 28, 28)),
        ("mlp", {}, (1, 8, 8)),
        ("mlp", {"input_shape": (3, 32, 32), "hidden": (32, 16), "num_classes": 4}, (3, 32, 32)),
    ],
)
def test_forward_shape(name, kwargs, shape):
    model = build(name, **kwargs).eval()
    with torch.no_grad():
        out = model(torch.rand(3, *shape))
    assert out.shape == (3, kwargs.get("num_classes", 10))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "name, expected",
    # CIFAR ResNets: the upstream counts (0.27M / 0.46M / 0.66M / 0.85M).
    [("cifar_resnet20", 269_722), ("cifar_resnet32", 464_154), ("cifar_resnet44", 658_586), ("cifar_resnet56", 853_018)],
)
def test_cifar_resnet_param_counts(name, expected):
    assert n_params(build(name)) == expected


def test_small_model_param_counts():
    # small_cnn, width 16, 3->16->32->64->128 convs (with bias) + BN, head 128->64->10.
    convs = sum(9 * a * b + b + 2 * b for a, b in [(3, 16), (16, 32), (32, 64), (64, 128)])
    head = 128 * 64 + 64 + 64 * 10 + 10
    assert n_params(build("small_cnn")) == convs + head == 106_826
    assert abs(n_params(build("small_cnn")) - 100_000) <= 15_000
    # tiny_cnn on digits: conv 1->8 + BN, conv 8->16 + BN, linear 16->10.
    assert n_params(build("tiny_cnn")) == 9 * 8 + 16 + 9 * 8 * 16 + 32 + 16 * 10 + 10
    assert n_params(build("mlp")) == 64 * 64 + 64 + 64 * 10 + 10
    assert n_params(build("small_cnn", width=8)) < n_params(build("small_cnn")) / 3


def test_torchvision_32_param_counts_follow_torchvision():
    from torchvision.models import mobilenet_v2, resnet18

    # Same layers as torchvision except the 3x3 stem: 7x7x3x64 weights -> 3x3x3x64.
    assert n_params(build("resnet18_32")) == n_params(resnet18(num_classes=10)) - (49 - 9) * 3 * 64
    # Strides change no parameter count.
    assert n_params(build("mobilenetv2_32", width_mult=0.5)) == n_params(mobilenet_v2(num_classes=10, width_mult=0.5))


def test_torchvision_32_keep_a_4x4_final_map_on_32x32():
    x = torch.rand(1, 3, 32, 32)
    resnet = build("resnet18_32").eval()
    mobilenet = build("mobilenetv2_32").eval()
    with torch.no_grad():
        r = resnet.normalize(x)
        r = resnet.layer4(resnet.layer3(resnet.layer2(resnet.layer1(resnet.relu(resnet.bn1(resnet.conv1(r)))))))
        m = mobilenet.features(mobilenet.normalize(x))
    assert r.shape == (1, 512, 4, 4)
    assert m.shape == (1, 1280, 4, 4)


def test_cifar_resnet_stage_shapes():
    model = build("cifar_resnet20").eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = torch.relu(model.bn1(model.conv1(model.normalize(x))))
        shapes = []
        for stage in (model.layer1, model.layer2, model.layer3):
            out = stage(out)
            shapes.append(tuple(out.shape[1:]))
        assert shapes == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
        assert model.features(x).shape == (2, 64)


def test_pad_channels_shortcut_matches_option_a_by_hand():
    x = torch.arange(1 * 16 * 4 * 4, dtype=torch.float32).view(1, 16, 4, 4)
    out = PadChannelsShortcut(pad=8, stride=2)(x)
    assert out.shape == (1, 32, 2, 2)
    assert torch.equal(out[:, :8], torch.zeros(1, 8, 2, 2))
    assert torch.equal(out[:, 24:], torch.zeros(1, 8, 2, 2))
    assert torch.equal(out[:, 8:24], x[:, :, 0::2, 0::2])
    assert out[0, 8, 1, 1].item() == x[0, 0, 2, 2].item() == 10.0


def test_only_shape_changing_blocks_use_the_pad_shortcut():
    model = build("cifar_resnet32")
    pads = [name for name, m in model.named_modules() if isinstance(m, PadChannelsShortcut)]
    assert pads == ["layer2.0.shortcut", "layer3.0.shortcut"]
    assert all(isinstance(m, torch.nn.Module) for m in model.modules())


def test_normalize_by_hand_and_kept_out_of_state_dict():
    norm = Normalize((0.5, 0.25), (0.5, 0.25))
    x = torch.tensor([[[[1.0]], [[0.0]]]])
    assert torch.allclose(norm(x), torch.tensor([[[[1.0]], [[-1.0]]]]))
    assert list(norm.parameters()) == [] and norm.state_dict() == {}
    assert norm.to(torch.float64).mean.dtype == torch.float64
    with pytest.raises(ValueError, match="std"):
        Normalize((0.5,), (0.0,))
    with pytest.raises(ValueError, match="equal length"):
        Normalize((0.5, 0.5), (0.5,))


def test_models_normalise_inside_with_their_statistics():
    resnet = build("cifar_resnet20")
    assert torch.allclose(resnet.normalize.mean.flatten(), torch.tensor((0.485, 0.456, 0.406)))
    assert torch.allclose(resnet.normalize.std.flatten(), torch.tensor((0.229, 0.224, 0.225)))
    student = build("small_cnn")
    assert torch.allclose(student.normalize.mean.flatten(), torch.tensor(CIFAR10_MEAN))
    assert torch.allclose(student.normalize.std.flatten(), torch.tensor(CIFAR10_STD))
    digits = build("tiny_cnn")
    assert digits.normalize.mean.flatten().tolist() == [0.5]


@pytest.mark.parametrize("name", VISION_MODELS)
def test_arch_rebuilds_the_same_model(name):
    model = build(name, num_classes=6)
    arch = dict(model.arch)
    assert arch.pop("name") == name and arch["num_classes"] == 6
    clone = build(name, **arch)
    clone.load_state_dict(model.state_dict(), strict=True)
    model.eval()
    clone.eval()
    x = example_inputs(model, batch_size=2)
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))


def test_models_pickle_and_fx_trace():
    model = build("cifar_resnet20").eval()
    x = torch.rand(2, 3, 32, 32)
    copy = pickle.loads(pickle.dumps(model))
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        assert torch.equal(copy(x), model(x))
        assert torch.allclose(traced(x), model(x))


def test_example_inputs_shape_range_and_determinism():
    model = build("tiny_cnn")
    x = example_inputs(model, batch_size=4)
    assert x.shape == (4, 1, 8, 8) and x.dtype == torch.float32
    assert 0.0 <= x.min().item() and x.max().item() <= 1.0
    assert torch.equal(x, example_inputs(model, batch_size=4))
    assert not torch.equal(x, example_inputs(model, batch_size=4, seed=1))
    assert example_inputs(build("small_cnn", in_channels=1, input_size=28)).shape == (2, 1, 28, 28)
    with pytest.raises(AttributeError, match="input_shape"):
        example_inputs(torch.nn.Linear(2, 2))


def test_cifar_resnet_state_dict_has_the_upstream_layout():
    # Upstream: 97 / 157 / 217 / 277 tensors, no num_batches_tracked (old PyTorch).
    for depth, expected in [(20, 97), (32, 157), (44, 217), (56, 277)]:
        keys = [k for k in build(f"cifar_resnet{depth}").state_dict() if not k.endswith("num_batches_tracked")]
        assert len(keys) == expected
    keys = build("cifar_resnet20").state_dict()
    assert keys["conv1.weight"].shape == (16, 3, 3, 3)
    assert keys["layer3.2.conv2.weight"].shape == (64, 64, 3, 3)
    assert keys["linear.weight"].shape == (10, 64)


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("small_cnn", {"width": 0}, "width"),
        ("tiny_cnn", {"num_classes": 0}, "num_classes"),
        ("mlp", {"input_shape": (8, 8)}, "input_shape"),
        ("cifar_resnet20", {"num_classes": 0}, "num_classes"),
        ("small_cnn", {"pretrained": True}, "pretrained"),
        ("resnet18_32", {"pretrained": True}, "internet"),
        ("mobilenetv2_32", {"pretrained": True}, "internet"),
    ],
)
def test_bad_arguments_raise_clear_errors(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(name, **kwargs)


def test_invalid_depth_is_rejected():
    with pytest.raises(ValueError, match="depth"):
        cifar_resnet.CifarResNet(depth=21)


def test_missing_weights_raise_data_not_found_with_the_path(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        build("cifar_resnet20", pretrained=True, data_root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "weights" / "resnet20-12fca82f.th") in message
    assert "akamaster" in message


def test_wrong_hash_raises_data_not_found_with_the_path(tmp_path):
    path = tmp_path / "weights" / "resnet56-4bfd9763.th"
    path.parent.mkdir()
    path.write_bytes(b"not the checkpoint")
    with pytest.raises(DataNotFoundError) as info:
        build("cifar_resnet56", pretrained=True, data_root=tmp_path)
    message = str(info.value)
    assert str(path) in message and "4bfd9763" in message
    assert cifar_resnet.sha256_prefix(path) in message


# --- real weights and data (skipped without ../shared/data or FEWSHOT_KD_DATA) ------------


@pytest.fixture(scope="module")
def cifar_first1000(shared_data_root):
    path = shared_data_root / "cifar10" / "cifar10_test_first1000_lossless.npz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    data = np.load(path)
    x = torch.from_numpy(data["x"]).permute(0, 3, 1, 2).float().div(255.0)
    y = torch.from_numpy(data["y"])
    assert x.shape == (1000, 3, 32, 32) and y.shape == (1000,)
    return x, y


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 200) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(x[start : start + batch_size])
            correct += (logits.argmax(1) == y[start : start + batch_size]).sum().item()
    return correct / len(x)


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "depth, low, high",
    # Measured on the exact first 1,000 test images: 91.5 % (20) and 92.6 % (56).
    [(20, 0.910, 0.920), (32, 0.90, 1.0), (44, 0.90, 1.0), (56, 0.921, 0.931)],
)
def test_pretrained_cifar_resnet_accuracy(cifar_first1000, shared_data_root, depth, low, high):
    model = build(f"cifar_resnet{depth}", pretrained=True, data_root=shared_data_root)
    acc = accuracy(model, *cifar_first1000)
    assert low <= acc <= high, f"cifar_resnet{depth}: {acc:.3f} not in [{low}, {high}]"


@pytest.mark.shared_data
def test_pretrained_with_other_class_count_keeps_backbone_and_new_head(shared_data_root):
    path = cifar_resnet.pretrained_weights_path(20, shared_data_root)
    state = cifar_resnet.load_upstream_state_dict(path)
    assert not any(k.startswith("module.") for k in state)
    model = build("cifar_resnet20", num_classes=5, pretrained=True, data_root=shared_data_root)
    assert model.linear.out_features == 5
    assert torch.equal(model.conv1.weight, state["conv1.weight"])
    assert torch.equal(model.layer3[2].bn2.running_var, state["layer3.2.bn2.running_var"])
    assert not torch.equal(model.linear.weight, state["linear.weight"][:5])
