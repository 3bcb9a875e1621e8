"""GPT-2 blocks (transformers' Conv1D, fused q/k/v) lose whole heads and FFN neurons: the
weights shrink, the saved file with them, and the kept units compute what they did."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="GPT-2 is transformers' model")

from fewshot_kd.files import save_tensors  # noqa: E402
from fewshot_kd.models.causal_lm import gpt2_lm, small_gpt2_config  # noqa: E402
from fewshot_kd.prune import find_gpt2_layers, head_counts, prune_transformer_  # noqa: E402


def tiny_gpt2(n_layer=2):
    torch.manual_seed(0)
    return gpt2_lm(small_gpt2_config(n_positions=16, n_embd=32, n_layer=n_layer, n_head=4, dropout=0.0)).eval()


def test_every_gpt2_block_is_found():
    layers = find_gpt2_layers(tiny_gpt2(3))
    assert [layer.name for layer in layers] == ["transformer.h.0", "transformer.h.1", "transformer.h.2"]
    assert layers[0].num_heads == 4 and layers[0].head_size == 8 and layers[0].ffn_width == 128


def test_pruning_a_head_equals_zeroing_its_output_rows():
    model = tiny_gpt2(1)
    ids = torch.randint(0, 256, (2, 11))
    layer = find_gpt2_layers(model)[0]
    reference = tiny_gpt2(1)
    with torch.no_grad():  # head 1's contribution removed by zeroing its c_proj rows and value columns
        reference.transformer.h[0].attn.c_proj.weight[8:16] = 0
    layer.prune_heads_([0, 2, 3])
    attention = model.transformer.h[0].attn
    assert attention.num_heads == 3 and attention.split_size == 24
    assert attention.c_attn.weight.shape == (32, 72) and attention.c_proj.weight.shape == (24, 32)
    assert torch.allclose(model(input_ids=ids).logits, reference(input_ids=ids).logits, atol=1e-5)


def test_pruning_ffn_neurons_equals_zeroing_them():
    model, reference = tiny_gpt2(1), tiny_gpt2(1)
    ids = torch.randint(0, 256, (2, 11))
    keep = list(range(0, 128, 2))
    with torch.no_grad():
        reference.transformer.h[0].mlp.c_proj.weight[1::2] = 0
    find_gpt2_layers(model)[0].prune_ffn_(keep)
    assert model.transformer.h[0].mlp.c_fc.weight.shape == (32, 64) and model.transformer.h[0].mlp.c_proj.nx == 64
    assert torch.allclose(model(input_ids=ids).logits, reference(input_ids=ids).logits, atol=1e-5)


def untied_state(model):
    return {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}  # the head is the embedding


def test_prune_transformer_shrinks_gpt2_and_its_saved_file(tmp_path):
    model = tiny_gpt2(2)
    ids = torch.randint(0, 256, (1, 12))
    before = save_tensors(tmp_path / "before.safetensors", untied_state(model)).stat().st_size
    report = prune_transformer_(model, {"input_ids": ids}, head_ratio=0.5, ffn_ratio=0.5)
    after = save_tensors(tmp_path / "after.safetensors", untied_state(model)).stat().st_size
    assert head_counts(model) == {"transformer.h.0.attn": 2, "transformer.h.1.attn": 2}
    assert report.heads["transformer.h.0.attn"] == (4, 2) and report.channels["transformer.h.1.mlp.c_fc"] == (128, 64)
    assert report.params_after < report.params_before and report.macs_after < report.macs_before
    assert after < before
    assert model(input_ids=ids).logits.shape == (1, 12, 256)
    generated = model.generate(ids[:, :4], max_new_tokens=3, do_sample=False, pad_token_id=0)  # the KV cache still fits
    assert generated.shape == (1, 7)


def test_per_layer_ratios_name_a_gpt2_block_or_its_parts():
    model = tiny_gpt2(2)
    prune_transformer_(model, head_ratio=0.0, ffn_ratio=0.0,
                       per_layer={"transformer.h.0.attn": 0.75, "transformer.h.1.mlp.c_fc": 0.25})
    assert head_counts(model) == {"transformer.h.0.attn": 1, "transformer.h.1.attn": 4}
    assert model.transformer.h[1].mlp.c_fc.nf == 96 and model.transformer.h[0].mlp.c_fc.nf == 128
