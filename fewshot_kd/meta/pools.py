"""Teacher pool and episode pool of a task family: disjoint, deterministic, recorded.

Meta-training's query loss should measure how a compressed student generalises, so episodes
never draw from images the teacher trained on:

* a recipe teacher trains on its recipe's teacher pool of the train split; the recipe's
  ``holdout`` (a seeded, stratified fraction of train) is the episode pool, or, for a recipe
  capped at ``max_train_examples`` (the text teachers), every train example beyond the cap;
* a pretrained teacher saw its whole train split, so the family's ``episodes`` names
  another split and the deployed-evaluation images to leave out of it: ``"<split>"`` (all
  of that split) or ``"<split>:<n>"`` (its stratified ``n``-image subset, seed 0, the one
  a benchmark suite's ``eval_limit: n`` evaluates on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from fewshot_kd.data._split import indices_digest, stratified_cap_indices
from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.errors import FewShotKDError
from fewshot_kd.task_family import TaskFamily

EVAL_SUBSET_SEED = 0  # the seed of the benchmark harness's stratified eval_limit subsets


@dataclass(frozen=True, eq=False)
class FamilyPools:
    """Indices the teacher trained on (``None``: its whole split) and the episode pool."""

    teacher_split: str
    teacher_indices: torch.Tensor | None
    episode_split: str
    episode_indices: torch.Tensor
    record: dict


def _row_map(dataset: str, source: str, target: str, data_root) -> torch.Tensor:
    """Row ``i`` of split ``source`` is row ``map[i]`` of split ``target``."""
    if (dataset, source, target) == ("cifar10", "test_exact", "test"):
        from fewshot_kd.data.local_files import CIFAR10_FILES, locate

        with np.load(locate(CIFAR10_FILES["test_exact"], data_root)) as fields:
            return torch.from_numpy(fields["jpeg_row"].astype(np.int64))
    raise FewShotKDError(f"{dataset}: no known mapping of {source} rows onto {target} rows to exclude them")


def _excluded(task: TaskFamily, splits: Mapping[str, LabelledDataset], split: str, data_root) -> torch.Tensor:
    rows = []
    for entry in task.episodes.get("exclude", []):
        name, _, limit = str(entry).partition(":")
        if name not in splits:
            raise FewShotKDError(f"task {task.name}: episodes.exclude names {name!r}, not a split of {task.dataset}")
        idx = stratified_cap_indices(splits[name].labels, int(limit) if limit else None, EVAL_SUBSET_SEED)
        rows.append(idx if name == split else _row_map(task.dataset, name, split, data_root)[idx])
    return torch.cat(rows).unique() if rows else torch.zeros(0, dtype=torch.long)


def _episode_record(split: str, indices: torch.Tensor, labels: torch.Tensor, num_classes: int, **extra) -> dict:
    per_class = torch.bincount(labels[indices], minlength=num_classes).tolist()
    return {"split": split, **extra, "count": len(indices), "per_class": per_class,
            "min_per_class": min(c for c in per_class if c) if len(indices) else 0,
            "indices_sha256": indices_digest(indices)}


def _capped_pools(labels: torch.Tensor, limit: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A recipe capped at ``limit`` examples trains on the stratified subset the teacher store
    draws (:func:`~fewshot_kd.data._split.stratified_cap_indices`, same seed); the rest of the
    train split is never seen by the teacher."""
    teacher = stratified_cap_indices(labels, limit, seed)
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[teacher] = False
    return teacher, torch.nonzero(keep).flatten()


def _without_repeats(inputs, teacher: torch.Tensor, episodes: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Text datasets repeat sentences (MPQA: 2,363 duplicate rows): episode rows whose text the
    teacher trained on are dropped, so a query never tests the teacher's own training data."""
    if not isinstance(inputs, (list, tuple)) or not inputs or not isinstance(inputs[0], str):
        return episodes, 0
    seen = {inputs[i] for i in teacher.tolist()}
    keep = [i for i in episodes.tolist() if inputs[i] not in seen]
    return torch.tensor(keep, dtype=torch.long), len(episodes) - len(keep)


def family_pools(task: TaskFamily, splits: Mapping[str, LabelledDataset], data_root=None) -> FamilyPools:
    """The teacher and episode pools of ``task`` over its loaded ``splits``."""
    record = {"family": task.name, "dataset": task.dataset}
    if "recipe" in task.teacher:
        from fewshot_kd.teachers.recipe import get_recipe

        recipe = get_recipe(task.teacher["recipe"])
        capped = recipe.holdout is None and recipe.max_train_examples is not None
        if (recipe.holdout is None and not capped) or task.episodes:
            raise FewShotKDError(
                f"task {task.name}: a recipe teacher's episode pool is its recipe's holdout (or the train examples "
                f"beyond its max_train_examples); recipe {recipe.name!r} needs holdout={{'fraction': f, 'seed': s}} "
                f"or max_train_examples, and the task no 'episodes' entry (got {task.episodes})")
        train = splits["train"]
        if capped:
            teacher, episodes = _capped_pools(train.labels, recipe.max_train_examples, recipe.train.seed)
            seed, fraction = int(recipe.train.seed), len(episodes) / len(train)
        else:
            teacher, episodes = recipe.pools(train.labels)
            seed, fraction = int(recipe.holdout["seed"]), float(recipe.holdout["fraction"])
        episodes, repeats = _without_repeats(train.inputs, teacher, episodes)
        record["teacher"] = {"source": f"recipe:{recipe.name}", "split": "train", "seed": seed,
                             "fraction": round(1 - fraction, 4), "count": len(teacher),
                             "indices_sha256": indices_digest(teacher)}
        record["episodes"] = _episode_record("train", episodes, train.labels, train.num_classes, seed=seed,
                                             fraction=round(fraction, 4), excluded=[],
                                             **({"repeats_of_teacher_texts_dropped": repeats} if repeats else {}))
        return FamilyPools("train", teacher, "train", episodes, record)
    split = task.episodes.get("split")
    if split is None or split == "train" or split not in splits:
        raise FewShotKDError(
            f"task {task.name}: its pretrained teacher saw the train split, so meta-training needs "
            f"episodes: {{split: <another split of {task.dataset}>, exclude: [...]}} (got {task.episodes})")
    data = splits[split]
    excluded = _excluded(task, splits, split, data_root)
    keep = torch.ones(len(data), dtype=torch.bool)
    keep[excluded] = False
    episodes = torch.nonzero(keep).flatten()
    record["teacher"] = {"source": f"pretrained:{task.teacher['model']}", "split": "train", "indices": "all",
                         "count": len(splits["train"]) if "train" in splits else None}
    record["episodes"] = _episode_record(split, episodes, data.labels, data.num_classes, seed=EVAL_SUBSET_SEED,
                                         excluded=list(task.episodes.get("exclude", [])),
                                         excluded_count=len(excluded))
    return FamilyPools("train", None, split, episodes, record)
