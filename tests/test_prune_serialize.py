"""Saving and reloading pruned models without pickled code (fewshot_kd.prune.serialize)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open

from fewshot_kd.prune import attach_soft_masks, harden_, load_pruned, prune_, read_architecture, save_pruned


class TinyNet(nn.Module):
    def __init__(self, width: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.norm = nn.GroupNorm(2, 2 * width)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.norm(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


def build(name: str, **kwargs) -> nn.Module:
    """A registry stand-in for models the zoo does not know."""
    if name != "tiny_net":
        raise KeyError(name)
    return TinyNet(**kwargs)


X = torch.rand(2, 3, 8, 8)
ARCH = {"name": "tiny_net", "width": 8, "classes": 3, "pretrained": True}


def _outputs(model):
    with torch.no_grad():
        return model.eval()(X)


def test_pruned_model_reloads_with_identical_outputs_and_a_smaller_file(tmp_path):
    full = TinyNet().eval()
    save_pruned(full, tmp_path / "full.safetensors", ARCH)
    model = TinyNet().eval()
    prune_(model, X, 0.5)
    path = save_pruned(model, tmp_path / "pruned.safetensors", ARCH)
    again = load_pruned(path, build=build)
    torch.testing.assert_close(_outputs(again), _outputs(model), rtol=0, atol=0)
    assert again.conv1.out_channels == 4 and again.norm.num_channels == 8 and again.fc.in_features == 8
    assert type(again.conv2) is nn.Conv2d
    assert path.stat().st_size < 0.5 * (tmp_path / "full.safetensors").stat().st_size


def test_file_is_plain_safetensors_with_a_json_architecture(tmp_path):
    model = TinyNet()
    prune_(model, X, 0.5)
    path = save_pruned(model, tmp_path / "m.safetensors", ARCH)
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == set(model.state_dict())
        json.loads(f.metadata()["architecture"])
    description = read_architecture(path)
    assert description["arch"] == {"name": "tiny_net", "width": 8, "classes": 3}  # no 'pretrained'
    assert description["modules"]["conv2"] == {"type": "Conv2d", "in_channels": 4, "out_channels": 8, "groups": 1}
    assert path.read_bytes()[:2] != b"\x80\x04"  # not a pickle stream


def test_hardened_masked_model_round_trips(tmp_path):
    model = TinyNet().eval()
    masks = attach_soft_masks(model, X[:1])
    masks["conv1"].logits.data = torch.linspace(-3, 3, 8)
    harden_(model, masks)
    again = load_pruned(save_pruned(model, tmp_path / "h.safetensors", ARCH), build=build)
    torch.testing.assert_close(_outputs(again), _outputs(model), rtol=0, atol=0)


def test_registry_models_rebuild_from_their_arch(tmp_path):
    from fewshot_kd.models.catalog import create_model

    model = create_model("small_cnn", num_classes=5, width=4).eval()
    x = torch.rand(2, 3, 32, 32)
    prune_(model, x, 0.5)
    again = load_pruned(save_pruned(model, tmp_path / "s.safetensors"))
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)


def test_bert_heads_are_restored(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(hidden_size=64, num_attention_heads=4, intermediate_size=128,
                                     num_hidden_layers=2, vocab_size=100, max_position_embeddings=32)

    def build_bert(name, config):
        return transformers.BertModel(transformers.BertConfig(**config))

    model = transformers.BertModel(config).eval()
    ids = {"input_ids": torch.randint(0, 100, (2, 10))}
    prune_(model, ids, 0.5)
    path = save_pruned(model, tmp_path / "bert.safetensors", {"name": "bert", "config": config.to_dict()})
    again = load_pruned(path, build=build_bert)
    assert again.encoder.layer[1].attention.self.num_attention_heads == 2
    with torch.no_grad():
        torch.testing.assert_close(again(**ids).last_hidden_state, model(**ids).last_hidden_state, rtol=0, atol=0)


def test_missing_arch_and_foreign_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="arch"):
        save_pruned(TinyNet(), tmp_path / "x.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not written by save_pruned"):
        load_pruned(tmp_path / "plain.safetensors", build=build)
