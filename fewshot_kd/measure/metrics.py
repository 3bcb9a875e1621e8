"""Classification metrics (accuracy, macro precision/recall/F1, confusion matrix) and
evaluation of a model on a :class:`~fewshot_kd.data.dataset.LabelledDataset`."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.errors import ClassCountMismatchError
from fewshot_kd.model_io import call_model, eval_mode, logits_of, placed, to_device

METRIC_NAMES = ("accuracy", "macro_precision", "macro_recall", "macro_f1")


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> torch.Tensor:
    """``int64 [C, C]`` counts; row = true class, column = predicted class (as scikit-learn)."""
    y_true, y_pred = _labels(y_true, y_pred)
    if num_classes is None:
        num_classes = int(max(y_true.max(), y_pred.max())) + 1 if len(y_true) else 0
    if len(y_true) and (min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= num_classes):
        raise ClassCountMismatchError(
            f"labels must lie in 0..{num_classes - 1}, got {int(min(y_true.min(), y_pred.min()))}"
            f"..{int(max(y_true.max(), y_pred.max()))}; pass the right num_classes"
        )
    flat = y_true * num_classes + y_pred
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def classification_metrics(y_true, y_pred, num_classes: int | None = None) -> dict[str, Any]:
    """Accuracy and macro-averaged precision, recall and F1, plus the confusion matrix.

    Macro averages are unweighted means over the classes that occur in ``y_true`` or
    ``y_pred`` (scikit-learn's default); a class with no predictions has precision 0,
    as with ``zero_division=0``. Macro F1 is the mean of per-class F1 scores.
    """
    y_true, y_pred = _labels(y_true, y_pred)
    if len(y_true) == 0:
        raise ValueError("cannot compute metrics on zero examples")
    matrix = confusion_matrix(y_true, y_pred, num_classes).double()
    hits = matrix.diagonal()
    support = matrix.sum(dim=1)
    predicted = matrix.sum(dim=0)
    precision = _safe_divide(hits, predicted)
    recall = _safe_divide(hits, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    present = (support > 0) | (predicted > 0)
    return {
        "accuracy": float(hits.sum() / len(y_true)),
        "macro_precision": float(precision[present].mean()),
        "macro_recall": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
        "num_examples": int(len(y_true)),
        "confusion_matrix": matrix.long().tolist(),
    }


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = _labels(y_true, y_pred)
    return float((y_true == y_pred).double().mean())


def macro_f1(y_true, y_pred, num_classes: int | None = None) -> float:
    return classification_metrics(y_true, y_pred, num_classes)["macro_f1"]


def predict(model: nn.Module, dataset: LabelledDataset, batch_size: int = 256, device=None) -> torch.Tensor:
    """Predicted class indices (``int64 [N]`` on CPU) of ``model`` on every example."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    model, device = placed(model, device)
    predictions = []
    with eval_mode(model), torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            inputs = to_device(dataset.input_batch(slice(start, start + batch_size)), device)
            logits = logits_of(call_model(model, inputs))
            if logits.dim() != 2 or logits.shape[1] != dataset.num_classes:
                raise ClassCountMismatchError(
                    f"model returned logits of shape {tuple(logits.shape)} but {dataset.name} has "
                    f"{dataset.num_classes} classes; give the model a {dataset.num_classes}-way head"
                )
            predictions.append(logits.argmax(dim=1).cpu())
    return torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.long)


def evaluate(model: nn.Module, dataset: LabelledDataset, batch_size: int = 256, device=None) -> dict[str, Any]:
    """:func:`classification_metrics` of ``model`` on ``dataset`` (eval mode, no gradients).

    ``device=None`` evaluates where the model is; another device evaluates a copy there.
    """
    predictions = predict(model, dataset, batch_size=batch_size, device=device)
    return classification_metrics(dataset.labels, predictions, dataset.num_classes)


def _labels(y_true, y_pred) -> tuple[torch.Tensor, torch.Tensor]:
    y_true = torch.as_tensor(y_true).long().flatten().cpu()
    y_pred = torch.as_tensor(y_pred).long().flatten().cpu()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions; they must match")
    return y_true, y_pred


def _safe_divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    return torch.where(denominator > 0, numerator / denominator.clamp(min=1e-300), torch.zeros_like(numerator))
