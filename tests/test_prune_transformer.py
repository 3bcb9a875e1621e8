"""Attention-head and FFN-neuron pruning of BERT-family encoders (fewshot_kd.prune.transformer)."""

from __future__ import annotations

import pytest
import torch

from fewshot_kd.prune import find_transformer_layers, head_counts, prune_, prune_transformer_

transformers = pytest.importorskip("transformers")

IDS = {"input_ids": torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(0))}


def tiny_bert() -> torch.nn.Module:
    config = transformers.BertConfig(hidden_size=64, num_attention_heads=4, intermediate_size=128,
                                     num_hidden_layers=2, vocab_size=100, max_position_embeddings=32)
    torch.manual_seed(0)
    return transformers.BertModel(config).eval()


def hidden(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(**IDS).last_hidden_state


def test_layers_are_found_by_structure():
    layers = find_transformer_layers(tiny_bert())
    assert [layer.name for layer in layers] == ["encoder.layer.0", "encoder.layer.1"]
    assert layers[0].num_heads == 4 and layers[0].head_size == 16


def test_half_ratio_halves_heads_and_ffn_and_forward_still_works():
    model = tiny_bert()
    report = prune_(model, IDS, 0.5)
    assert report.heads == {"encoder.layer.0.attention.self": (4, 2), "encoder.layer.1.attention.self": (4, 2)}
    for layer in find_transformer_layers(model):
        assert layer.attention.num_attention_heads == 2 and layer.attention.all_head_size == 32
        assert layer.query.weight.shape == (32, 64) and layer.attention_output.weight.shape == (64, 32)
        assert layer.ffn_in.out_features == 64 and layer.ffn_out.in_features == 64
    assert model.config.num_attention_heads == 4  # the shared config is left alone
    assert hidden(model).shape == (2, 12, 64)
    # hand count per layer and sentence: 12 tokens x (4 projections of 64x32 + FFN 2x64x64)
    # + attention (QK^T and AV over 2 heads of 16); 2 layers, the pooler, 2 sentences
    t = 12
    per_layer = t * (4 * 64 * 32 + 2 * 64 * 64) + 2 * t * t * 32
    assert report.macs_after == 2 * (2 * per_layer + 64 * 64)
    assert report.params_after < report.params_before


def _silence_(model, heads=(1, 3), neurons=range(0, 128, 2)) -> None:
    """Zero the value and output weights of ``heads`` and the weights of FFN ``neurons``:
    they contribute exactly nothing, so removing them must not change the output."""
    with torch.no_grad():
        for layer in find_transformer_layers(model):
            d = layer.head_size
            for h in heads:
                layer.value.weight[h * d:(h + 1) * d] = 0
                layer.value.bias[h * d:(h + 1) * d] = 0
                layer.attention_output.weight[:, h * d:(h + 1) * d] = 0
            for j in neurons:
                layer.ffn_in.weight[j] = 0
                layer.ffn_in.bias[j] = 0  # GELU(0) = 0
                layer.ffn_out.weight[:, j] = 0


@pytest.mark.parametrize("importance", ["l1", "l2"])
def test_silent_heads_and_neurons_are_the_ones_removed(importance):
    model = tiny_bert()
    _silence_(model)
    before = hidden(model)
    query = find_transformer_layers(model)[0].query.weight.detach().clone()
    prune_transformer_(model, IDS, head_ratio=0.5, ffn_ratio=0.5, importance=importance)
    torch.testing.assert_close(hidden(model), before, atol=1e-5, rtol=1e-5)
    kept = find_transformer_layers(model)[0].query.weight
    assert torch.equal(kept, torch.cat([query[0:16], query[32:48]]))  # heads 0 and 2 remain


def test_taylor_needs_data_and_uses_it():
    model = tiny_bert()
    _silence_(model)
    before = hidden(model)

    def loss_fn(output, labels):
        return torch.nn.functional.cross_entropy(output.last_hidden_state[:, 0, :2], labels)

    with pytest.raises(ValueError, match="data"):
        prune_(model, IDS, 0.5, importance="taylor")
    prune_transformer_(model, IDS, head_ratio=0.5, ffn_ratio=0.5, importance="taylor",
                       data=[(IDS, torch.tensor([0, 1]))], loss_fn=loss_fn)
    torch.testing.assert_close(hidden(model), before, atol=1e-5, rtol=1e-5)
    assert all(p.grad is None for p in model.parameters())


def test_per_layer_ratios_for_heads_and_ffn():
    model = tiny_bert()
    prune_transformer_(model, head_ratio=0.0, ffn_ratio=0.0,
                       per_layer={"encoder.layer.0": 0.75, "encoder.layer.1.intermediate.dense": 0.5})
    assert head_counts(model) == {"encoder.layer.0.attention.self": 1, "encoder.layer.1.attention.self": 4}
    layers = find_transformer_layers(model)
    assert layers[0].ffn_in.out_features == 32 and layers[1].ffn_in.out_features == 64
    assert hidden(model).shape == (2, 12, 64)
    with pytest.raises(ValueError, match="for transformers"):
        prune_transformer_(model, per_layer={"embeddings": 0.5})


def test_bn_scale_is_refused_for_transformers():
    with pytest.raises(ValueError, match="BatchNorm"):
        prune_transformer_(tiny_bert(), importance="bn_scale")


def test_channel_only_options_are_refused_for_transformers():
    with pytest.raises(ValueError, match="per_layer"):
        prune_(tiny_bert(), IDS, 0.5, ignored_layers=["pooler.dense"])


def test_zoo_text_classifier_prunes_saves_and_reloads(tmp_path):
    from fewshot_kd.models.catalog import create_model
    from fewshot_kd.prune import load_pruned, save_pruned

    torch.manual_seed(0)
    model = create_model("tiny_transformer", num_classes=2).eval()
    texts = ["a good movie", "terrible acting and a dull plot"]
    report = prune_(model, texts, 0.5)
    assert set(report.heads.values()) == {(2, 1)}
    assert report.macs_after < 0.55 * report.macs_before
    again = load_pruned(save_pruned(model, tmp_path / "text.safetensors"))
    with torch.no_grad():
        torch.testing.assert_close(again(texts), model(texts), rtol=0, atol=0)
