"""Train a teacher from its recipe once, cache it (safetensors + JSON), reload it after."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import torch.nn as nn

from fewshot_kd.data._split import indices_digest, stratified_cap_indices
from fewshot_kd.data.catalog import load_dataset
from fewshot_kd.data.class_subset import class_subset
from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.data.roots import cache_dir
from fewshot_kd.files import load_tensors, read_json, save_tensors, write_json
from fewshot_kd.models.catalog import create_model
from fewshot_kd.teachers.lm_recipe import LMTeacherRecipe
from fewshot_kd.teachers.qa_recipe import QATeacherRecipe
from fewshot_kd.teachers.recipe import TeacherRecipe, get_recipe
from fewshot_kd.training import fit, predict_logits


def teacher_dir(recipe: TeacherRecipe | LMTeacherRecipe | QATeacherRecipe, root: str | os.PathLike | None = None) -> Path:
    return Path(root or cache_dir() / "teachers") / f"{recipe.name}-{recipe.fingerprint()}"


def stratified_cap(data: LabelledDataset, limit: int | None, seed: int) -> LabelledDataset:
    """At most ``limit`` examples with class proportions kept, deterministic in ``seed``."""
    if limit is None or len(data) <= limit:
        return data
    return data.subset(stratified_cap_indices(data.labels, limit, seed))


def test_accuracy(model: nn.Module, data: LabelledDataset) -> float:
    logits = predict_logits(model, data)
    return (logits.argmax(-1) == data.labels).float().mean().item()


def _build(recipe: TeacherRecipe, data_root) -> nn.Module:
    """The recipe's model, untrained (a pretrained backbone reads its weights from ``data_root``)."""
    kwargs = dict(recipe.model_kwargs)
    if kwargs.get("pretrained"):
        kwargs.setdefault("data_root", data_root)
    return create_model(recipe.model, **kwargs)


def _own_classes(recipe: TeacherRecipe, data: LabelledDataset) -> LabelledDataset:
    """``data`` cut to a specialist recipe's classes (relabelled in its output order)."""
    return data if recipe.classes is None else class_subset(data, recipe.classes)


def load_or_train_teacher(
    recipe: TeacherRecipe | LMTeacherRecipe | QATeacherRecipe | str,
    data_root: str | os.PathLike | None = None,
    store_root: str | os.PathLike | None = None,
    progress: bool = True,
    retrain: bool = False,
) -> tuple[nn.Module, dict]:
    """The teacher a recipe describes: loaded from the cache when present, else trained (on
    the recipe's teacher pool of the train split), evaluated on the dataset's test split and
    cached atomically. Returns ``(model, info)``. A causal-LM recipe
    (:class:`~fewshot_kd.teachers.lm_recipe.LMTeacherRecipe`) goes to
    :func:`~fewshot_kd.teachers.lm_store.load_or_train_lm_teacher`, an extractive-QA recipe
    (:class:`~fewshot_kd.teachers.qa_recipe.QATeacherRecipe`) to
    :func:`~fewshot_kd.teachers.qa_store.load_or_train_qa_teacher`."""
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if isinstance(recipe, LMTeacherRecipe):
        from fewshot_kd.teachers.lm_store import load_or_train_lm_teacher

        return load_or_train_lm_teacher(recipe, data_root, store_root, progress, retrain)
    if isinstance(recipe, QATeacherRecipe):
        from fewshot_kd.teachers.qa_store import load_or_train_qa_teacher

        return load_or_train_qa_teacher(recipe, data_root, store_root, progress, retrain)
    folder = teacher_dir(recipe, store_root)
    weights, info_path = folder / "model.safetensors", folder / "teacher.json"
    model = _build(recipe, data_root)
    if weights.is_file() and info_path.is_file() and not retrain:
        model.load_state_dict(load_tensors(weights), strict=True)
        return model.eval(), read_json(info_path)
    splits = load_dataset(recipe.dataset, data_root=data_root)
    pool, _ = recipe.pools(splits.train.labels)
    train, test = _own_classes(recipe, splits.train.subset(pool)), _own_classes(recipe, splits.test)
    train = stratified_cap(train, recipe.max_train_examples, recipe.train.seed)
    torch.manual_seed(recipe.train.seed)
    model = _build(recipe, data_root)
    start = time.perf_counter()
    history = fit(model, train, recipe.train, progress=progress, description=f"teacher {recipe.name}")
    info = {
        "recipe": recipe.to_dict(),
        "fingerprint": recipe.fingerprint(),
        "train_examples": len(train),
        "teacher_pool": {"split": "train", "holdout": recipe.holdout, "count": len(pool), "indices_sha256": indices_digest(pool)},
        "train_seconds": round(time.perf_counter() - start, 2),
        "history": history,
        "test_accuracy": test_accuracy(model, test),
        "test_split_size": len(test),
    }
    save_tensors(weights, model.state_dict(), metadata={"recipe": recipe.name, "fingerprint": recipe.fingerprint()})
    write_json(info_path, info)
    return model.eval(), info
