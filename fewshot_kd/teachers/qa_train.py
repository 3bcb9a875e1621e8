"""Fine-tune an extractive QA model on tokenised windows: cross-entropy on the gold start and
end tokens (averaged), AdamW with linear warm-up then cosine decay, gradient clipping."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from fewshot_kd.models.qa_features import QAFeatures
from fewshot_kd.progress import format_metrics, progress_bar
from fewshot_kd.teachers.lm_train import warmup_cosine
from fewshot_kd.teachers.qa_recipe import QATrainConfig
from fewshot_kd.training import check_finite


def span_loss(model: nn.Module, batch: dict, starts: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """Mean of the start and end cross-entropies of one batch of windows."""
    out = model(**batch)
    return (F.cross_entropy(out.start_logits, starts) + F.cross_entropy(out.end_logits, ends)) / 2


def train_qa_model(model: nn.Module, features: QAFeatures, config: QATrainConfig, progress: bool = True,
                   description: str = "training") -> list[dict]:
    """Train ``model`` in place on ``features`` (labelled windows) by ``config``; the loss every 20 steps."""
    device = next(model.parameters()).device
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    per_epoch = math.ceil(len(features) / config.batch_size)
    steps = config.epochs * per_epoch
    warmup = max(1, round(config.warmup_fraction * steps))
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict] = []
    model.train()
    with progress_bar(progress) as bar:
        task = bar.add_task(description, total=steps, metrics="")
        step = 0
        for _ in range(config.epochs):
            order = torch.randperm(len(features), generator=generator)
            for begin in range(0, len(order), config.batch_size):
                index = order[begin:begin + config.batch_size]
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * warmup_cosine(step, steps, warmup)
                batch = {name: tensor.to(device) for name, tensor in features.batch(index).items()}
                loss = span_loss(model, batch, features.start_positions[index].to(device),
                                 features.end_positions[index].to(device))
                check_finite(loss, description)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                if step % 20 == 0 or step == steps - 1:
                    history.append({"step": step + 1, "loss": round(loss.item(), 4)})
                bar.update(task, advance=1, metrics=format_metrics(loss=loss.item()))
                step += 1
    model.eval()
    return history
