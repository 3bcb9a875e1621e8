"""A plain supervised training loop (cross-entropy) for teachers and baselines."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.errors import ClassCountMismatchError, FewShotKDError, NonFiniteLossError
from fewshot_kd.model_io import model_device, to_device
from fewshot_kd.optimizers import OPTIMIZERS
from fewshot_kd.progress import format_metrics, progress_bar


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of :func:`fit`. ``optimizer`` names one of
    :data:`~fewshot_kd.optimizers.OPTIMIZERS` (``"adam"``, ``"adamw"``, ``"sgd"``)."""

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    optimizer: str = "adam"
    momentum: float = 0.9
    cosine_schedule: bool = True
    augment: str = "none"
    seed: int = 0
    version: int = 1


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``config.optimizer`` names (see :data:`~fewshot_kd.optimizers.OPTIMIZERS`)."""
    return OPTIMIZERS.get(config.optimizer)(params, lr=config.lr, weight_decay=config.weight_decay,
                                            momentum=config.momentum)


def check_finite(loss: torch.Tensor, where: str) -> None:
    if not torch.isfinite(loss):
        raise NonFiniteLossError(
            f"{where}: loss became {loss.item()}; lower the learning rate, check the inputs for NaN, "
            f"or enable gradient clipping"
        )


Criterion = Callable[[torch.Tensor, "torch.Tensor | None", torch.Tensor], torch.Tensor]


def cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(student_logits, labels)


def fit(
    model: nn.Module,
    train: LabelledDataset,
    config: TrainConfig = TrainConfig(),
    progress: bool = True,
    description: str = "training",
    on_epoch_end: Callable[[int, dict], None] | None = None,
    criterion: Criterion = cross_entropy,
    teacher: nn.Module | None = None,
) -> list[dict]:
    """Train ``model`` on ``train``; returns one metrics dict per epoch.

    ``criterion(student_logits, teacher_logits, labels)`` defaults to cross-entropy. With a
    ``teacher``, its logits on the same (augmented) batch are computed without gradients and
    passed in; the teacher stays frozen in eval mode.
    """
    from fewshot_kd.augment import get_augmentation

    if len(train) == 0:
        raise FewShotKDError(f"{train.name} is empty: nothing to train on")
    augment = get_augmentation(config.augment)
    device = model_device(model)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], config)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total) if config.cosine_schedule else None
    history = []
    model.train()
    with progress_bar(progress) as bar:
        task = bar.add_task(description, total=total, metrics="")
        for epoch in range(config.epochs):
            order = torch.randperm(len(train), generator=generator)
            seen, loss_sum, correct = 0, 0.0, 0
            for start in range(0, len(train), config.batch_size):
                idx = order[start : start + config.batch_size]
                inputs = to_device(train.input_batch(idx), device)
                labels = train.labels[idx].to(device)
                if augment is not None and isinstance(inputs, torch.Tensor):
                    inputs = augment(inputs, generator=generator)
                teacher_logits = None
                if teacher is not None:
                    with torch.no_grad():
                        teacher_logits = teacher.eval()(inputs)
                logits = model(inputs)
                if logits.shape[-1] != train.num_classes:
                    raise ClassCountMismatchError(
                        f"model outputs {logits.shape[-1]} classes but {train.name} has {train.num_classes}; "
                        f"build the model with num_classes={train.num_classes}"
                    )
                loss = criterion(logits, teacher_logits, labels)
                check_finite(loss, description)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                seen += len(idx)
                loss_sum += loss.item() * len(idx)
                correct += (logits.argmax(-1) == labels).sum().item()
                bar.update(task, advance=1, metrics=format_metrics(epoch=epoch + 1, loss=loss_sum / seen, acc=correct / seen))
            record = {"epoch": epoch + 1, "loss": loss_sum / seen, "train_accuracy": correct / seen}
            history.append(record)
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
    model.eval()
    return history


@torch.inference_mode()
def predict_logits(model: nn.Module, data: LabelledDataset, batch_size: int = 256) -> torch.Tensor:
    """Logits of ``model`` on every example of ``data``, in order (eval mode, no grad)."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    out = [model(to_device(data.input_batch(slice(s, s + batch_size)), device)).float().cpu() for s in range(0, len(data), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, data.num_classes)
