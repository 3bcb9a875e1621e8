"""TinyBERT-style losses: hand computations on small tensors, then small random BERTs."""

from __future__ import annotations

import math

import pytest
import torch

from fewshot_kd.distill import (
    TinyBertConfig,
    TinyBertLoss,
    attention_probs_loss,
    embedding_loss,
    hidden_state_mse,
    resolve_transformer_layer_map,
)
from fewshot_kd.errors import NonFiniteLossError

S_ATT = torch.tensor([[[[0.5, 0.5], [0.2, 0.8]]]])  # [N=1, heads=1, L=2, L=2]
T_ATT = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])


def test_hidden_state_mse_by_hand_with_padding_mask():
    student = torch.tensor([[[1.0], [5.0]]])
    teacher = torch.zeros(1, 2, 1)
    assert hidden_state_mse(student, teacher).item() == pytest.approx((1 + 25) / 2)
    assert hidden_state_mse(student, teacher, attention_mask=torch.tensor([[1, 0]])).item() == pytest.approx(1.0)
    assert embedding_loss(student, teacher, attention_mask=torch.tensor([[0, 1]])).item() == pytest.approx(25.0)


def test_hidden_state_projection_and_grads():
    projection = torch.nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        projection.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    student = torch.tensor([[[1.0, 2.0]]], requires_grad=True)
    teacher = torch.tensor([[[1.0, 2.0, 0.0]]], requires_grad=True)
    loss = hidden_state_mse(student, teacher, projection)
    assert loss.item() == pytest.approx(9.0 / 3)  # projected [1, 2, 3] vs [1, 2, 0]
    loss.backward()
    assert student.grad is not None and projection.weight.grad is not None and teacher.grad is None
    with pytest.raises(ValueError, match="projection"):
        hidden_state_mse(torch.zeros(1, 2, 4), torch.zeros(1, 2, 8))


def test_attention_mse_by_hand_and_masking():
    # squared errors: row 0: .25 .25, row 1: .04 .04 -> mean .145
    assert attention_probs_loss(S_ATT, T_ATT).item() == pytest.approx(0.145)
    # only (query 0, key 0) is real
    assert attention_probs_loss(S_ATT, T_ATT, torch.tensor([[1, 0]])).item() == pytest.approx(0.25)


def test_attention_kl_by_hand():
    teacher = torch.tensor([[[[0.9, 0.1], [0.3, 0.7]]]])
    student = torch.tensor([[[[0.6, 0.4], [0.5, 0.5]]]])
    row0 = 0.9 * math.log(0.9 / 0.6) + 0.1 * math.log(0.1 / 0.4)
    row1 = 0.3 * math.log(0.3 / 0.5) + 0.7 * math.log(0.7 / 0.5)
    assert attention_probs_loss(student, teacher, mode="kl").item() == pytest.approx((row0 + row1) / 2, rel=1e-5)
    # teacher rows with zeros (padding keys) give finite values
    assert math.isfinite(attention_probs_loss(S_ATT, T_ATT, mode="kl").item())


def test_padding_positions_do_not_matter():
    mask = torch.tensor([[1, 1, 0]])
    student, teacher = torch.rand(1, 2, 3, 3).softmax(-1), torch.rand(1, 2, 3, 3).softmax(-1)
    changed = teacher.clone()
    changed[:, :, 2, :] = 0.3  # padded query row
    changed[:, :, :, 2] = 0.7  # padded key column
    for mode in ("mse", "kl"):
        a = attention_probs_loss(student, teacher, mask, mode=mode)
        b = attention_probs_loss(student, changed, mask, mode=mode)
        assert a.item() == pytest.approx(b.item(), rel=1e-6)


def test_attention_errors_and_head_averaging():
    with pytest.raises(ValueError, match="average_heads"):
        attention_probs_loss(torch.rand(1, 2, 3, 3), torch.rand(1, 4, 3, 3))
    two_heads = torch.cat([S_ATT, T_ATT], dim=1)  # mean of the heads
    averaged = attention_probs_loss(two_heads, ((S_ATT + T_ATT) / 2).repeat(1, 4, 1, 1), average_heads=True)
    assert averaged.item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="unknown attention loss mode 'l1'.*kl, mse"):
        attention_probs_loss(S_ATT, T_ATT, mode="l1")
    with pytest.raises(ValueError, match="every token as padding"):
        attention_probs_loss(S_ATT, T_ATT, torch.tensor([[0, 0]]))
    with pytest.raises(ValueError, match="does not match the batch"):
        attention_probs_loss(S_ATT, T_ATT, torch.tensor([[1, 1, 1]]))
    with pytest.raises(NonFiniteLossError):
        attention_probs_loss(S_ATT * math.nan, T_ATT)


def test_layer_map_resolution():
    assert resolve_transformer_layer_map("uniform", 3, 6) == [1, 3, 5]  # teacher layers 2, 4, 6
    assert resolve_transformer_layer_map("last", 2, 6) == [4, 5]
    assert resolve_transformer_layer_map([0, 0, 5], 3, 6) == [0, 0, 5]
    with pytest.raises(ValueError, match="outside"):
        resolve_transformer_layer_map([0, 6, 1], 3, 6)
    with pytest.raises(ValueError, match="3 student layers"):
        resolve_transformer_layer_map([0, 1], 3, 6)
    with pytest.raises(ValueError, match="unknown layer map"):
        resolve_transformer_layer_map("middle", 3, 6)


def _fake_outputs(layers: int, width: int, batch: int = 2, length: int = 4, heads: int = 2):
    hidden = [torch.randn(batch, length, width) for _ in range(layers + 1)]
    attentions = [torch.rand(batch, heads, length, length).softmax(-1) for _ in range(layers)]
    return hidden, attentions


def test_tinybert_components_by_hand_with_fake_outputs():
    s_hidden, s_att = _fake_outputs(3, 8)
    t_hidden, t_att = _fake_outputs(6, 8)
    loss_fn = TinyBertLoss(8, 8, 3, 6, hidden_weights=[1.0, 2.0, 0.0], config=TinyBertConfig(attention_weight=0.5))
    assert sum(p.numel() for p in loss_fn.parameters()) == 0  # equal widths: no projections
    parts = loss_fn.components(s_hidden, t_hidden, s_att, t_att)
    hidden = [hidden_state_mse(s_hidden[j + 1], t_hidden[t + 1]) for j, t in enumerate([1, 3, 5])]
    attention = [attention_probs_loss(s_att[j], t_att[t]) for j, t in enumerate([1, 3, 5])]
    assert parts["embedding"].item() == pytest.approx(hidden_state_mse(s_hidden[0], t_hidden[0]).item())
    assert parts["hidden"].item() == pytest.approx((hidden[0] + 2 * hidden[1]).item() / 3, rel=1e-6)
    assert parts["attention"].item() == pytest.approx(0.5 * sum(a.item() for a in attention) / 3, rel=1e-6)
    total = parts["embedding"] + parts["hidden"] + parts["attention"]
    assert parts["total"].item() == pytest.approx(total.item())
    assert loss_fn(s_hidden, t_hidden, s_att, t_att).item() == pytest.approx(total.item())
    # layer 3 has weight 0: its teacher layer (6) does not matter
    t_hidden[6] = t_hidden[6] + 100.0
    assert loss_fn.components(s_hidden, t_hidden)["hidden"].item() == pytest.approx(parts["hidden"].item(), rel=1e-6)


def test_tinybert_count_errors():
    loss_fn = TinyBertLoss(8, 8, 3, 6)
    s_hidden, s_att = _fake_outputs(3, 8)
    t_hidden, t_att = _fake_outputs(6, 8)
    with pytest.raises(ValueError, match="embedding output first"):
        loss_fn(s_hidden[1:], t_hidden)
    with pytest.raises(ValueError, match="both student and teacher attentions"):
        loss_fn(s_hidden, t_hidden, s_att, None)
    with pytest.raises(ValueError, match="expected 6 teacher attentions"):
        loss_fn(s_hidden, t_hidden, s_att, t_att[:5])
    with pytest.raises(ValueError, match="non-negative"):
        TinyBertConfig(hidden_weight=-1.0)


def _bert(layers: int, width: int):
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=100,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=2 * width,
        attn_implementation="eager",
    )
    return BertModel(config)


@pytest.mark.slow  # importing transformers' BERT takes several seconds on a busy 2-core machine
def test_tinybert_on_small_random_berts():
    pytest.importorskip("transformers")
    teacher, student = _bert(6, 64).eval(), _bert(3, 32)
    ids = torch.randint(0, 100, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    with torch.no_grad():
        t_out = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    s_out = student(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    loss_fn = TinyBertLoss(32, 64, 3, 6, config=TinyBertConfig(attention_mode="kl"))
    assert [type(p).__name__ for p in loss_fn.hidden_projections] == ["Linear"]
    parts = loss_fn.components(s_out.hidden_states, t_out.hidden_states, s_out.attentions, t_out.attentions, mask)
    assert set(parts) == {"embedding", "hidden", "attention", "total"}
    assert all(math.isfinite(v.item()) and v.item() > 0 for v in parts.values())
    parts["total"].backward()
    assert student.encoder.layer[2].output.dense.weight.grad is not None
    assert loss_fn.hidden_projections[0].weight.grad is not None
    assert loss_fn.embedding_projection.weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())
    # a student that is a copy of the teacher's first three layers (and embeddings) is distilled with zero
    # loss when mapped to those layers, and not when mapped to others or when one weight differs
    copy = _bert(3, 64).eval()
    copy.load_state_dict({k: v for k, v in teacher.state_dict().items()
                          if not k.startswith(("encoder.layer.3.", "encoder.layer.4.", "encoder.layer.5."))})
    with torch.no_grad():
        c_out = copy(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)

    def loss(layer_map, student_out=c_out):
        fn = TinyBertLoss(64, 64, 3, 6, layer_map=layer_map)
        return fn(student_out.hidden_states, t_out.hidden_states, student_out.attentions, t_out.attentions, mask).item()

    assert loss([0, 1, 2]) == pytest.approx(0.0, abs=1e-10)
    assert loss("uniform") > 1e-3  # layers 2, 4, 6 of the teacher are not what the copy computes
    with torch.no_grad():
        weight = copy.encoder.layer[1].output.dense.weight
        weight.add_(0.05 * torch.randn_like(weight))  # not a constant: LayerNorm would remove that
        changed = copy(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    assert loss([0, 1, 2], changed) > 1e-6
