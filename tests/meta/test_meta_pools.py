"""Teacher pool vs episode pool: disjoint, deterministic, stratified, recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from fewshot_kd import load_dataset
from fewshot_kd.data._split import stratified_cap_indices
from fewshot_kd.data.local_files import CIFAR10_FILES, load_image_npz
from fewshot_kd.errors import FewShotKDError, NotEnoughExamplesError
from fewshot_kd.meta.episodes import EpisodeSpec, load_family, make_episode
from fewshot_kd.meta.pools import family_pools
from fewshot_kd.task_family import TaskFamily, find_task_family
from fewshot_kd.teachers.recipe import get_recipe
from fewshot_kd.teachers.store import stratified_cap

SUITES = Path(__file__).resolve().parents[2] / "benchmarks" / "suites"


def _check_recipe_pools(name: str, splits, teacher_per_class: int | None = None):
    task = find_task_family(name)
    pools = family_pools(task, splits)
    again = family_pools(task, splits)
    assert torch.equal(pools.teacher_indices, again.teacher_indices)
    assert torch.equal(pools.episode_indices, again.episode_indices)
    assert pools.record == again.record
    teacher, episodes = set(pools.teacher_indices.tolist()), set(pools.episode_indices.tolist())
    assert not teacher & episodes and teacher | episodes == set(range(len(splits["train"])))
    labels = splits["train"].labels
    counts = torch.bincount(labels)
    held = torch.bincount(labels[pools.episode_indices], minlength=len(counts))
    fraction = get_recipe(task.teacher["recipe"]).holdout["fraction"]
    assert ((held - counts * fraction).abs() <= 0.5 + 1e-6).all()  # round(n_c * fraction) per class
    if teacher_per_class is not None:
        assert (counts - held).unique().tolist() == [teacher_per_class]
    return pools


def test_digits_pools_disjoint_deterministic_stratified():
    pools = _check_recipe_pools("digits", load_dataset("digits"))
    record = pools.record
    assert record["teacher"]["split"] == record["episodes"]["split"] == "train"
    assert record["teacher"]["count"] + record["episodes"]["count"] == 1258


def test_omniglot_pools(shared_data_root):
    _check_recipe_pools("omniglot", load_dataset("omniglot28", data_root=shared_data_root), teacher_per_class=5)


def test_cifar10_episodes_avoid_the_teachers_data_and_deployed_evaluation(shared_data_root):
    import numpy as np

    splits = {s: load_image_npz(CIFAR10_FILES[s], data_root=shared_data_root) for s in ("test", "test_exact")}
    task = find_task_family("cifar10-resnet56")
    pools = family_pools(task, splits, shared_data_root)
    assert pools.episode_split == "test" and pools.teacher_split == "train" and pools.teacher_indices is None
    assert torch.equal(pools.episode_indices, family_pools(task, splits, shared_data_root).episode_indices)
    test = splits["test"]
    # the subset benchmark suites evaluate on (harness: stratified_cap(test, eval_limit, seed=0))
    limits = {yaml.safe_load(p.read_text()).get("eval_limit", {}).get(task.name) for p in SUITES.glob("*.yaml")}
    assert limits - {None} == {2000}, "a suite evaluates on another subset: update episodes.exclude"
    evaluated = stratified_cap_indices(test.labels, 2000, 0)
    assert torch.equal(stratified_cap(test, 2000, 0).inputs, test.inputs[evaluated])
    exact_rows = np.load(shared_data_root / CIFAR10_FILES["test_exact"])["jpeg_row"].tolist()
    episodes = set(pools.episode_indices.tolist())
    assert not episodes & set(evaluated.tolist()) and not episodes & set(exact_rows)
    assert len(episodes) == 10000 - len(set(evaluated.tolist()) | set(exact_rows))
    assert min(pools.record["episodes"]["per_class"]) >= 700


def test_recipe_cache_keys():
    # a holdout changes the teacher, so the cached one is never reused; other recipes keep their keys
    assert get_recipe("digits-cnn").fingerprint() != "8c1e0073a575"
    assert get_recipe("sst2-minilm").fingerprint() == "7f23b19b30cc"
    recipe = get_recipe("digits-cnn")
    moved = type(recipe).from_dict({**recipe.to_dict(), "holdout": {"fraction": 0.4, "seed": 0}})
    assert moved.fingerprint() != recipe.fingerprint()


def test_families_must_name_an_episode_pool():
    with pytest.raises(FewShotKDError, match="unknown keys"):
        TaskFamily("x", "cifar10", {"model": "m"}, {"model": "s"}, episodes={"splt": "test"})
    bare = TaskFamily("x", "digits", {"model": "m"}, {"model": "s"})
    with pytest.raises(FewShotKDError, match="pretrained teacher"):
        family_pools(bare, load_dataset("digits"))


def test_digits_episodes_draw_from_the_episode_pool_and_record_it():
    family = load_family("digits", ways=3)
    train = load_dataset("digits").train
    pool = set(family.pools.episode_indices.tolist())
    assert len(family.train) == len(pool)
    spec = EpisodeSpec(shots=(5,), query_per_class=5, views=2)
    episode = make_episode([family], 0, spec, seed=0)
    raw_support = episode.support_x[: len(episode.support_y) // spec.views]
    for image in torch.cat([raw_support, episode.query_x]).cpu():
        rows = torch.nonzero((train.inputs == image).flatten(1).all(1)).flatten().tolist()
        assert rows and set(rows) & pool
    record = family.split_record()
    assert json.loads(json.dumps(record)) == record
    assert record["classes"] == list(family.classes) and record["episodes"]["count"] == len(pool)
    with pytest.raises(NotEnoughExamplesError, match="episode pool"):
        make_episode([family], 0, EpisodeSpec(shots=(1000,), query_per_class=10, views=1), seed=0)


def test_episodes_fit_a_small_pool(tmp_path):
    """K values that leave no query example are not drawn, and the query shrinks to what the
    pool holds (Omniglot's pool has 10 drawings a character)."""
    from fewshot_kd.meta.episodes import pool_per_class

    family = load_family("digits", ways=3)
    available = pool_per_class(family)
    for index in range(4):
        episode = make_episode([family], index, EpisodeSpec(shots=(5, available), query_per_class=10, views=1), seed=0)
        assert episode.shots == 5 and len(episode.query_y) == 3 * 10
    episode = make_episode([family], 0, EpisodeSpec(shots=(5,), query_per_class=10_000, views=1), seed=0)
    assert len(episode.query_y) == 3 * (available - 5)


def test_text_episode_pools_drop_repeats_of_the_teachers_sentences(shared_data_root):
    """MPQA repeats phrases: no episode sentence may be one the teacher trained on."""
    from fewshot_kd.meta.pools import family_pools
    from fewshot_kd.task_family import find_task_family

    task = find_task_family("mpqa")
    splits = load_dataset("mpqa", data_root=shared_data_root)
    pools = family_pools(task, splits, shared_data_root)
    texts = splits["train"].inputs
    seen = {texts[i] for i in pools.teacher_indices.tolist()}
    assert not any(texts[i] in seen for i in pools.episode_indices.tolist())
    assert pools.record["episodes"]["repeats_of_teacher_texts_dropped"] > 500
