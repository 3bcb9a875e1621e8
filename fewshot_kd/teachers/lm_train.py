"""Train a causal language model on one long token stream: random windows, next-token
cross-entropy, AdamW with linear warm-up then cosine decay, gradient clipping."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from fewshot_kd.errors import NotEnoughExamplesError
from fewshot_kd.progress import format_metrics, progress_bar
from fewshot_kd.teachers.lm_recipe import LMTrainConfig
from fewshot_kd.training import check_finite


def random_windows(token_ids: torch.Tensor, count: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """``[count, length]`` windows of ``token_ids`` starting at random offsets."""
    if len(token_ids) <= length:
        raise NotEnoughExamplesError(f"the text holds {len(token_ids)} tokens, fewer than one window of {length + 1}")
    starts = torch.randint(len(token_ids) - length, (count,), generator=generator)
    return torch.stack([token_ids[s:s + length] for s in starts.tolist()])


def warmup_cosine(step: int, steps: int, warmup: int) -> float:
    """The learning-rate factor at ``step``: linear from 0 over ``warmup`` steps, then cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))


def next_token_loss(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of every position's prediction of the next token."""
    logits = model(input_ids=ids).logits[:, :-1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def train_causal_lm(model: nn.Module, token_ids: torch.Tensor, config: LMTrainConfig, progress: bool = True,
                    description: str = "training") -> list[dict]:
    """Train ``model`` in place on ``token_ids`` (1-D) by ``config`` (windows of ``sequence_length``
    tokens, each position predicting the next); the loss every 50 steps."""
    device = next(model.parameters()).device
    ids = torch.as_tensor(token_ids).long()
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.99))
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict] = []
    model.train()
    with progress_bar(progress) as bar:
        task = bar.add_task(description, total=config.steps, metrics="")
        for step in range(config.steps):
            for group in optimizer.param_groups:
                group["lr"] = config.lr * warmup_cosine(step, config.steps, config.warmup_steps)
            batch = random_windows(ids, config.batch_size, config.sequence_length, generator).to(device)
            loss = next_token_loss(model, batch)
            check_finite(loss, description)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if step % 50 == 0 or step == config.steps - 1:
                history.append({"step": step + 1, "loss": round(loss.item(), 4)})
            bar.update(task, advance=1, metrics=format_metrics(loss=loss.item()))
    model.eval()
    return history
