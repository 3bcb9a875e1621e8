"""Turn adapt()'s ``data`` argument into a labelled pool and draw the shots from it."""

from __future__ import annotations

import torch

from fewshot_kd.data.catalog import load_dataset
from fewshot_kd.data.dataset import DatasetSplits, LabelledDataset, model_ready
from fewshot_kd.errors import ClassCountMismatchError, FewShotKDError
from fewshot_kd.model_io import model_device, to_device


def resolve_pool(data, data_root=None) -> tuple[LabelledDataset, LabelledDataset | None]:
    """``(pool, default_eval)`` from a dataset name, a ``DatasetSplits``, a ``LabelledDataset``
    or an ``(inputs, labels)`` pair. A ``DatasetSplits`` evaluates on its test split by default."""
    if data is None:
        raise FewShotKDError("adapt() needs data=: a dataset name, a LabelledDataset, a DatasetSplits or (inputs, labels)")
    if isinstance(data, str):
        data = load_dataset(data, data_root=data_root)
    if isinstance(data, DatasetSplits):
        return data.train, data.test
    if isinstance(data, LabelledDataset):
        return data, None
    if isinstance(data, (tuple, list)) and len(data) == 2:
        inputs, labels = data
        try:
            labels = torch.as_tensor(labels, dtype=torch.long)
        except (TypeError, ValueError, RuntimeError):
            raise FewShotKDError("data=(inputs, labels) needs labels as class indices 0..C-1 (ints); map class "
                                 "names to indices first") from None
        if len(labels) == 0:
            raise FewShotKDError("adapt() got empty data: no labelled examples to draw shots from")
        names = tuple(str(c) for c in range(int(labels.max()) + 1))
        return LabelledDataset(inputs, labels, names, name="data"), None
    raise FewShotKDError(f"adapt() cannot use data of type {type(data).__name__}; pass a dataset name, "
                         f"LabelledDataset, DatasetSplits or (inputs, labels)")


def check_classes(model, shots: LabelledDataset, role: str) -> None:
    """The model's logits must have one entry per class of the data."""
    with torch.no_grad():
        out = model.eval()(to_device(shots.input_batch(slice(0, 2)), model_device(model)))
    if out.shape[-1] != shots.num_classes:
        raise ClassCountMismatchError(
            f"the {role} outputs {out.shape[-1]} classes but the data has {shots.num_classes} "
            f"({', '.join(shots.class_names[:5])}{', ...' if shots.num_classes > 5 else ''}); "
            f"give the {role} a {shots.num_classes}-way head or pass data with matching classes"
        )


def resolve_unlabelled(unlabelled, pool: LabelledDataset, shots: int, seed: int):
    """adapt()'s ``unlabelled`` argument as model-ready inputs (or ``None``)."""
    if unlabelled is None:
        return None
    if isinstance(unlabelled, int) and not isinstance(unlabelled, bool):
        return pool.unlabelled_inputs(unlabelled, shots, seed)
    if isinstance(unlabelled, LabelledDataset):
        unlabelled = unlabelled.all_inputs()
    if isinstance(unlabelled, torch.Tensor):
        unlabelled = model_ready(unlabelled)
    elif isinstance(unlabelled, (list, tuple)) and all(isinstance(t, str) for t in unlabelled):
        unlabelled = list(unlabelled)
    else:
        raise FewShotKDError(f"unlabelled must be a tensor, a list of strings, a dataset or a count, "
                             f"got {type(unlabelled).__name__}")
    if len(unlabelled) == 0:
        raise FewShotKDError("unlabelled is empty; pass some inputs or leave it out")
    return unlabelled
