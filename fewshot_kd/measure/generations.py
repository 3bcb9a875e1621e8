"""A few greedy continuations of a causal language model, to read beside its perplexity."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn


@torch.no_grad()
def greedy_generations(model: nn.Module, tokenizer, prompts: Sequence[str], max_new_tokens: int = 40) -> list[str]:
    """The greedy (argmax) continuation of every prompt, without the prompt. ``tokenizer``
    has ``encode(text) -> list[int]`` and ``decode(ids) -> str``; ``model`` is called as
    ``model(input_ids=[1, L])`` and returns logits or an output with ``.logits``."""
    device = next(model.parameters()).device
    limit = getattr(getattr(model, "config", None), "n_positions", None)
    was_training = model.training
    model.eval()
    outputs = []
    try:
        for prompt in prompts:
            ids = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long, device=device)
            start = ids.shape[1]
            for _ in range(max_new_tokens):
                context = ids if limit is None else ids[:, -limit:]
                out = model(input_ids=context)
                logits = out.logits if hasattr(out, "logits") else out
                ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
            outputs.append(tokenizer.decode(ids[0, start:].tolist()))
    finally:
        model.train(was_training)
    return outputs
