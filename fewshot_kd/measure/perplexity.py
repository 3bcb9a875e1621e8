"""Perplexity of a causal language model over a long token stream, by a sliding window.

The Hugging Face "perplexity of fixed-length models" method: windows of ``window`` tokens
start every ``stride`` tokens; each window scores only the tokens no earlier window scored
(the others are context, their labels set to -100), with up to ``window - stride`` tokens of
context before the window's new part. No token is scored twice; a window's first token has
nothing before it and is not scored, so ``stride == window`` (disjoint chunks) scores every
token but each chunk's first.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE = -100


def window_labels(token_ids: torch.Tensor, window: int, stride: int):
    """Yield ``(inputs, labels)`` per window (1-D tensors), labels -100 where already scored."""
    if window < 2 or not 1 <= stride <= window:
        raise ValueError(f"need window >= 2 and 1 <= stride <= window, got window={window}, stride={stride}")
    length, scored_until = len(token_ids), 0
    for begin in range(0, length, stride):
        end = min(begin + window, length)
        inputs = token_ids[begin:end]
        labels = inputs.clone()
        labels[: len(inputs) - (end - scored_until)] = IGNORE
        yield inputs, labels
        scored_until = end
        if end == length:
            break


def _logits(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    out = model(input_ids=inputs)
    return (out.logits if hasattr(out, "logits") else out)[0]


@torch.no_grad()
def sliding_window_perplexity(model: nn.Module, token_ids: torch.Tensor, window: int = 256,
                              stride: int = 128) -> dict[str, float]:
    """``perplexity = exp(mean NLL)`` of ``token_ids`` (1-D) under ``model`` (called as
    ``model(input_ids=[1, L])``, returning logits or an output with ``.logits``), by the
    sliding window of the module docstring; also the mean NLL and the tokens scored."""
    ids = torch.as_tensor(token_ids).flatten().long()
    if len(ids) < 2:
        raise ValueError("perplexity needs at least 2 tokens")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_nll, total_tokens = 0.0, 0
    try:
        for inputs, labels in window_labels(ids, window, stride):
            logits = _logits(model, inputs.unsqueeze(0).to(device)).float()
            targets = labels[1:].to(device)
            nll = F.cross_entropy(logits[:-1], targets, ignore_index=IGNORE, reduction="sum")
            total_nll += float(nll)
            total_tokens += int((targets != IGNORE).sum())
    finally:
        model.train(was_training)
    mean = total_nll / total_tokens
    return {"perplexity": math.exp(mean), "nll": mean, "tokens": total_tokens, "window": window, "stride": stride}
