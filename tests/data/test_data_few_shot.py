"""``LabelledDataset.few_shot``: exactly K examples per class, seeded, clear errors."""

from __future__ import annotations

import pytest
import torch

from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.errors import NotEnoughExamplesError


def _pool() -> LabelledDataset:
    # input value = row index, so every chosen row can be traced back
    labels = torch.tensor([0] * 6 + [1] * 4 + [2] * 8)
    return LabelledDataset(torch.arange(18.0).unsqueeze(1), labels, ("a", "b", "c"), name="pool")


@pytest.mark.parametrize("k", [1, 3, 4])
def test_few_shot_takes_exactly_k_per_class(k):
    pool = _pool()
    few = pool.few_shot(k, seed=0)
    assert few.class_counts().tolist() == [k, k, k]
    rows = few.inputs.flatten().long()
    assert len(set(rows.tolist())) == 3 * k  # without replacement
    assert torch.equal(pool.labels[rows], few.labels)  # each input keeps its own label


def test_few_shot_is_seeded():
    pool = _pool()
    assert torch.equal(pool.few_shot(2, seed=5).inputs, pool.few_shot(2, seed=5).inputs)
    draws = {tuple(pool.few_shot(2, seed=s).inputs.flatten().tolist()) for s in range(6)}
    assert len(draws) > 1


def test_few_shot_too_many_shots_names_the_short_class():
    with pytest.raises(NotEnoughExamplesError, match=r"'b' has 4.*at most 4"):
        _pool().few_shot(5)


def test_too_many_shots_on_many_classes_names_a_few_and_counts_the_rest():
    pool = LabelledDataset(torch.zeros(300, 1), torch.arange(300) % 20, tuple(f"c{i}" for i in range(20)), name="wide")
    with pytest.raises(NotEnoughExamplesError) as caught:
        pool.few_shot(20)
    message = str(caught.value)
    assert "'c0' has 15" in message and "'c5'" not in message and "and 15 more of the 20 classes" in message
    assert message.endswith("Ask for at most 15 shots or use a larger pool.")
    assert pool.max_shots == 15


def test_a_suite_asking_more_shots_than_a_class_holds_stops_before_any_cell(tmp_path, monkeypatch):
    from benchmarks.harness.runner import run_suite
    from benchmarks.harness.suite import Suite, load_suite

    monkeypatch.setenv("FEWSHOT_KD_CACHE", str(tmp_path / "cache"))
    suite = Suite(**{**load_suite("smoke").to_dict(), "shots": (5, 400), "methods": ("teacher",)})
    with pytest.raises(NotEnoughExamplesError, match=r"task digits: K=400 asked, .* --shots at most \d+"):
        run_suite(suite, tmp_path / "out")
    assert not (tmp_path / "out" / "cells.jsonl").exists() or not (tmp_path / "out" / "cells.jsonl").read_text()


@pytest.mark.parametrize("k", [0, -1, 2.0, True])
def test_few_shot_rejects_non_positive_integers(k):
    with pytest.raises(ValueError, match="positive integer"):
        _pool().few_shot(k)


def test_few_shot_on_text():
    texts = [f"{c}-{i}" for c, n in (("x", 3), ("y", 5)) for i in range(n)]
    data = LabelledDataset(texts, torch.tensor([0] * 3 + [1] * 5), ("x", "y"))
    few = data.few_shot(2, seed=1)
    assert few.is_text and len(few) == 4
    assert all(t.startswith(few.class_names[int(y)]) for t, y in zip(few.inputs, few.labels))
