"""Layer specs and teacher-student layer mapping for CNNs and BERT-family encoders."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision

from fewshot_kd.distill import (
    Stage,
    find_stages,
    last_layer_map,
    map_layers,
    resolve_layers,
    transformer_blocks,
    uniform_layer_map,
)
from fewshot_kd.errors import UnknownNameError, UnsupportedLayerError


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class TinyResNetLike(nn.Module):
    """CIFAR-ResNet layout (stem, layer1..3, functional pooling, linear) at any depth."""

    def __init__(self, blocks: int, width: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = nn.Sequential(*[_block(width, width, 1) for _ in range(blocks)])
        self.layer2 = nn.Sequential(_block(width, 2 * width, 2), *[_block(2 * width, 2 * width, 1) for _ in range(blocks - 1)])
        self.layer3 = nn.Sequential(_block(2 * width, 4 * width, 2), *[_block(4 * width, 4 * width, 1) for _ in range(blocks - 1)])
        self.linear = nn.Linear(4 * width, 10)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(torch.relu(self.bn1(self.conv1(x))))))
        return self.linear(x.mean(dim=(2, 3)))


class PlainCNN(nn.Module):
    """Stages at 16x16 (ending at features.1) and 8x8 for a 32x32 input, then global pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(_block(3, 4, 2), _block(4, 4, 1), _block(4, 8, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


X32 = torch.rand(1, 3, 32, 32)


def _bert(layers: int):
    from transformers import BertConfig, BertModel

    return BertModel(
        BertConfig(vocab_size=50, hidden_size=64, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=128)
    )


def test_uniform_and_last_maps():
    assert uniform_layer_map(3, 6) == [1, 3, 5]  # student layers 1..3 <- teacher layers 2, 4, 6
    assert uniform_layer_map(4, 12) == [2, 5, 8, 11]
    assert uniform_layer_map(6, 6) == list(range(6))
    assert uniform_layer_map(4, 2) == [0, 0, 1, 1]
    assert last_layer_map(2, 6) == [4, 5]
    with pytest.raises(ValueError, match="no deeper"):
        last_layer_map(4, 2)
    with pytest.raises(ValueError, match="positive"):
        uniform_layer_map(0, 3)


def test_stages_of_resnet_like_models_and_stage_matched_pairs():
    teacher, student = TinyResNetLike(blocks=3), TinyResNetLike(blocks=1, width=2)
    stages = find_stages(teacher, X32)
    assert stages == [Stage("layer1", (32, 32), 4), Stage("layer2", (16, 16), 8), Stage("layer3", (8, 8), 16)]
    assert map_layers(teacher, student, "auto", X32) == [("layer1", "layer1"), ("layer2", "layer2"), ("layer3", "layer3")]
    assert map_layers(teacher, student, "last:2", X32) == [("layer2", "layer2"), ("layer3", "layer3")]


def test_torchvision_resnet18_stages_and_resolution_matching():
    resnet = torchvision.models.resnet18(num_classes=10)
    x = torch.rand(1, 3, 64, 64)
    stages = find_stages(resnet, x)
    assert [(s.name, s.spatial_size, s.channels) for s in stages] == [
        ("relu", (32, 32), 64),  # stem before the max-pool
        ("layer1", (16, 16), 64),
        ("layer2", (8, 8), 128),
        ("layer3", (4, 4), 256),
        ("layer4", (2, 2), 512),
    ]  # the global average pool is left out
    # the plain CNN has stages at 32 and 16 for a 64x64 input: matched by spatial size
    assert map_layers(resnet, PlainCNN(), "resolution", x) == [("relu", "features.1"), ("layer1", "features.2")]
    assert resolve_layers(resnet, "last:2") == ["layer3", "layer4"]  # by name, no input needed
    assert resolve_layers(resnet, "last 3", x) == ["layer2", "layer3", "layer4"]


def test_torchvision_mobilenetv2_stages_are_block_outputs():
    model = torchvision.models.mobilenet_v2(num_classes=10)
    names = resolve_layers(model, "auto", X32)
    # the inverted residuals before each stride-2 block, as torchvision's detection backbones use
    assert names == ["features.1", "features.3", "features.6", "features.13", "features.18"]
    assert resolve_layers(model, "last:2", X32) == ["features.13", "features.18"]


def test_stage_search_restores_training_mode_and_batchnorm_statistics():
    model = TinyResNetLike(blocks=1)
    model.train()
    model.layer2.eval()
    before = model.bn1.running_mean.clone()
    find_stages(model, torch.rand(4, 3, 32, 32) * 10)
    assert model.training and model.layer1.training and not model.layer2.training
    assert torch.equal(model.bn1.running_mean, before)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_explicit_names_and_errors():
    model = TinyResNetLike(blocks=1)
    assert resolve_layers(model, ["layer1", "layer3.0"]) == ["layer1", "layer3.0"]
    with pytest.raises(UnknownNameError, match="Did you mean .layer3."):
        resolve_layers(model, ["layer4"])
    with pytest.raises(ValueError, match="unknown layer spec"):
        resolve_layers(model, "first 2")
    with pytest.raises(ValueError, match="asks for 5 layers"):
        resolve_layers(model, "last:5", X32)
    with pytest.raises(ValueError, match="pass example_inputs"):
        map_layers(model, TinyResNetLike(blocks=1))
    with pytest.raises(UnsupportedLayerError, match="pass example_inputs"):
        resolve_layers(PlainCNN(), "auto")
    with pytest.raises(UnsupportedLayerError, match="no \\[N, C, H, W\\] outputs"):
        find_stages(nn.Sequential(nn.Linear(4, 2)), torch.rand(1, 4))
    with pytest.raises(ValueError, match="no teacher stage has the spatial size"):
        map_layers(model, PlainCNN(), "resolution", torch.rand(1, 3, 4, 4), torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="unknown mapping spec"):
        map_layers(model, PlainCNN(), "deepest")
    pairs = map_layers(model, PlainCNN(), [("layer1", "features.0")])
    assert pairs == [("layer1", "features.0")]
    with pytest.raises(UnknownNameError, match="student"):
        map_layers(model, PlainCNN(), [("layer1", "features.9")])


def test_order_based_mapping_for_cnns_with_different_resolutions():
    teacher, student = TinyResNetLike(blocks=2), PlainCNN()
    pairs = map_layers(teacher, student, "uniform", X32)
    assert pairs == [("layer2", "features.1"), ("layer3", "features.2")]


@pytest.mark.slow  # importing transformers' BERT takes several seconds on a busy 2-core machine
def test_bert_family_blocks_and_uniform_mapping():
    pytest.importorskip("transformers")
    teacher, student = _bert(6), _bert(3)
    assert transformer_blocks(student) == ["encoder.layer.0", "encoder.layer.1", "encoder.layer.2"]
    assert resolve_layers(teacher, "auto") == [f"encoder.layer.{i}" for i in range(6)]
    assert resolve_layers(teacher, "last:2") == ["encoder.layer.4", "encoder.layer.5"]
    assert map_layers(teacher, student) == [
        ("encoder.layer.1", "encoder.layer.0"),
        ("encoder.layer.3", "encoder.layer.1"),
        ("encoder.layer.5", "encoder.layer.2"),
    ]
    assert map_layers(teacher, student, "last") == [
        ("encoder.layer.3", "encoder.layer.0"),
        ("encoder.layer.4", "encoder.layer.1"),
        ("encoder.layer.5", "encoder.layer.2"),
    ]
    with pytest.raises(UnsupportedLayerError, match="one model is a transformer"):
        map_layers(teacher, TinyResNetLike(blocks=1), example_inputs=X32)
    with pytest.raises(UnsupportedLayerError, match="resolution matching is for CNNs"):
        map_layers(teacher, student, "resolution")


def _zoo(name: str, **kwargs):
    from fewshot_kd.models.catalog import create_model

    try:
        return create_model(name, **kwargs)
    except (ImportError, KeyError) as error:  # the zoo is optional for these tests
        pytest.skip(f"model zoo entry {name!r} unavailable: {error}")


def test_zoo_cifar_resnet20_stages_without_example_inputs():
    model = _zoo("cifar_resnet20")
    stages = find_stages(model)  # uses model.input_shape
    assert [(s.name, s.spatial_size, s.channels) for s in stages] == [
        ("layer1", (32, 32), 16),
        ("layer2", (16, 16), 32),
        ("layer3", (8, 8), 64),
    ]


@pytest.mark.slow  # ResNet-56 forward plus model building, a few seconds on a busy CPU
def test_zoo_resnet56_to_resnet20_and_mobilenetv2_pairs():
    teacher, student = _zoo("cifar_resnet56"), _zoo("cifar_resnet20")
    assert map_layers(teacher, student) == [("layer1", "layer1"), ("layer2", "layer2"), ("layer3", "layer3")]
    mobilenet = _zoo("mobilenetv2_32", num_classes=10)
    pairs = map_layers(teacher, mobilenet)
    assert [t for t, _ in pairs] == ["layer1", "layer2", "layer3"]
    assert all(s.startswith("features.") for _, s in pairs)
