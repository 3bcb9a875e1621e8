"""Sliding-window perplexity on a tiny random GPT-2, against direct computations, and greedy
generations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers", reason="the causal LMs need transformers")

from fewshot_kd.measure.generations import greedy_generations  # noqa: E402
from fewshot_kd.measure.perplexity import IGNORE, sliding_window_perplexity, window_labels  # noqa: E402
from fewshot_kd.models.byte_tokenizer import ByteTokenizer  # noqa: E402
from fewshot_kd.models.causal_lm import gpt2_lm, small_gpt2_config  # noqa: E402


@pytest.fixture(scope="module")
def tiny_lm():
    torch.manual_seed(0)
    return gpt2_lm(small_gpt2_config(vocab_size=50, n_positions=64, n_embd=32, n_layer=2, n_head=2)).eval()


@pytest.fixture
def ids():
    return torch.randint(0, 50, (50,), generator=torch.Generator().manual_seed(1))


def test_windows_score_every_token_once_after_the_first():
    ids = torch.arange(30)
    scored = []
    for inputs, labels in window_labels(ids, window=10, stride=4):
        assert len(inputs) <= 10
        scored += [int(t) for t in labels[1:] if t != IGNORE]
    assert scored == list(range(1, 30))


def test_stride_equal_to_window_is_the_mean_nll_of_disjoint_chunks(tiny_lm, ids):
    total, count = 0.0, 0
    with torch.no_grad():
        for begin in range(0, len(ids), 16):
            chunk = ids[begin:begin + 16]
            logits = tiny_lm(input_ids=chunk[None]).logits[0]
            total += float(F.cross_entropy(logits[:-1], chunk[1:], reduction="sum"))
            count += len(chunk) - 1
    result = sliding_window_perplexity(tiny_lm, ids, window=16, stride=16)
    assert result["tokens"] == count == 46
    assert result["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-5)


def test_a_window_over_the_whole_stream_is_the_models_own_loss(tiny_lm, ids):
    with torch.no_grad():
        loss = float(tiny_lm(input_ids=ids[None], labels=ids[None]).loss)
    result = sliding_window_perplexity(tiny_lm, ids, window=64, stride=32)
    assert result["nll"] == pytest.approx(loss, rel=1e-5) and result["tokens"] == len(ids) - 1


def test_overlapping_windows_score_each_token_once_with_more_context(tiny_lm, ids):
    overlapping = sliding_window_perplexity(tiny_lm, ids, window=16, stride=8)
    assert overlapping["tokens"] == len(ids) - 1 and math.isfinite(overlapping["perplexity"])
    assert overlapping["perplexity"] != pytest.approx(sliding_window_perplexity(tiny_lm, ids, 16, 16)["perplexity"])
    with pytest.raises(ValueError):
        sliding_window_perplexity(tiny_lm, ids, window=8, stride=9)


def test_greedy_generations_continue_each_prompt():
    torch.manual_seed(0)
    model = gpt2_lm(small_gpt2_config(n_positions=16, n_embd=32, n_layer=1, n_head=2, dropout=0.0))
    tokenizer = ByteTokenizer()
    outputs = greedy_generations(model, tokenizer, ["ROMEO:", "To be"], max_new_tokens=20)
    assert len(outputs) == 2 and all(len(tokenizer.encode(o)) >= 1 for o in outputs)
    assert outputs == greedy_generations(model, tokenizer, ["ROMEO:", "To be"], max_new_tokens=20)
    assert model.training  # the mode is restored (past the 16 positions the context is cropped)
    ids = torch.tensor([tokenizer.encode("ROMEO:")])
    with torch.no_grad():
        first = int(model(input_ids=ids).logits[0, -1].argmax())
    assert tokenizer.encode(outputs[0])[0] == first or first >= 128  # non-ASCII bytes decode to U+FFFD
