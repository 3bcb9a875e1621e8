"""N-way K-shot episodes: shapes, label remapping, determinism, text, errors."""

from __future__ import annotations

import random

import pytest
import torch

from fewshot_kd import load_dataset
from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.data.episodes import Episode, EpisodeSampler
from fewshot_kd.errors import ClassCountMismatchError, NotEnoughExamplesError


def _traceable(counts=(30, 30, 30, 30, 30, 30, 7)) -> LabelledDataset:
    """Row ``i`` holds the float value ``i``, so every episode example can be traced back."""
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return LabelledDataset(torch.arange(float(len(labels))).view(-1, 1, 1, 1), labels,
                           tuple(f"c{c}" for c in range(len(counts))), name="traceable")


def _rows(x: torch.Tensor) -> list[int]:
    return x.flatten().long().tolist()


def test_episode_shapes_and_remapped_labels():
    data = _traceable()
    episode = EpisodeSampler(data, ways=4, shots=3, query_shots=5, classes=range(6)).sample(0)
    assert isinstance(episode, Episode) and episode.ways == 4
    assert episode.support_x.shape == (12, 1, 1, 1) and episode.query_x.shape == (20, 1, 1, 1)
    assert episode.support_y.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    assert episode.query_y.tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    assert len(set(episode.classes)) == 4 and set(episode.classes) <= set(range(6))
    support, query = _rows(episode.support_x), _rows(episode.query_x)
    assert len(set(support + query)) == 32  # no example twice, support and query disjoint
    for rows, ys in ((support, episode.support_y), (query, episode.query_y)):
        assert [int(data.labels[r]) for r in rows] == [episode.classes[y] for y in ys.tolist()]


def test_same_seed_and_index_give_the_same_episode_whatever_came_before():
    data = _traceable()
    a = EpisodeSampler(data, 5, 2, 3, seed=7, classes=range(6))
    b = EpisodeSampler(data, 5, 2, 3, seed=7, classes=range(6))
    first = a.sample(4)
    for i in range(10):
        a.sample(i)
    random.seed(123)  # the caller's own use of `random` does not matter either
    again, fresh = a.sample(4), b.sample(4)
    for other in (again, fresh):
        assert torch.equal(other.support_x, first.support_x) and torch.equal(other.query_x, first.query_x)
        assert other.classes == first.classes
    assert len({tuple(_rows(a.sample(i).support_x)) for i in range(3)}) == 3  # episodes differ by index
    other_seed = EpisodeSampler(data, 5, 2, 3, seed=8, classes=range(6))
    assert [_rows(a.sample(i).support_x) for i in range(3)] != [_rows(other_seed.sample(i).support_x) for i in range(3)]


def test_sampling_leaves_the_global_random_state_alone():
    sampler = EpisodeSampler(_traceable(), 3, 1, 1, classes=range(6))
    random.seed(99)
    state = random.getstate()
    sampler.sample(0)
    assert random.getstate() == state


def test_fixed_number_of_tasks():
    sampler = EpisodeSampler(_traceable(), 2, 1, 1, num_tasks=3, classes=range(6))
    episodes = list(sampler)
    assert len(sampler) == 3 and len(episodes) == 3
    assert torch.equal(episodes[2].support_x, sampler[2].support_x)
    with pytest.raises(IndexError, match="3 episodes"):
        sampler.sample(3)
    with pytest.raises(TypeError, match="no length"):
        len(EpisodeSampler(_traceable(), 2, 1, 1, classes=range(6)))


def test_zero_query_shots():
    episode = EpisodeSampler(_traceable(), 2, 4, 0, classes=range(6)).sample(1)
    assert episode.support_x.shape[0] == 8 and episode.query_x.shape[0] == 0 and episode.query_y.numel() == 0


def test_text_episodes():
    texts = [f"c{c} example {i}" for c in range(4) for i in range(6)]
    data = LabelledDataset(texts, torch.arange(4).repeat_interleave(6), ("c0", "c1", "c2", "c3"))
    episode = EpisodeSampler(data, 3, 2, 2, seed=1).sample(0)
    assert isinstance(episode.support_x, list) and len(episode.support_x) == 6 and len(episode.query_x) == 6
    for text, y in zip(episode.support_x + episode.query_x, episode.support_y.tolist() + episode.query_y.tolist()):
        assert text.startswith(f"c{episode.classes[y]} ")
    assert len(set(episode.support_x + episode.query_x)) == 12


def test_too_many_ways():
    with pytest.raises(ClassCountMismatchError, match="5-way episodes need 5 classes but only 4"):
        EpisodeSampler(_traceable(), 5, 1, 1, classes=[0, 1, 2, 3])


def test_too_many_shots_names_the_small_class():
    with pytest.raises(NotEnoughExamplesError, match=r"3 support \+ 5 query = 8.*'c6' has 7"):
        EpisodeSampler(_traceable(), 2, 3, 5)
    EpisodeSampler(_traceable(), 2, 3, 4)  # 7 is enough


@pytest.mark.parametrize(
    "kwargs", [dict(ways=0), dict(shots=0), dict(query_shots=-1), dict(num_tasks=0), dict(ways=2.0)]
)
def test_bad_counts(kwargs):
    args = dict(ways=2, shots=1, query_shots=1) | kwargs
    with pytest.raises(ValueError):
        EpisodeSampler(_traceable(), **args)


def test_unknown_classes():
    with pytest.raises(NotEnoughExamplesError, match=r"\[9\]"):
        EpisodeSampler(_traceable(), 2, 1, 1, classes=[0, 9])


def test_digits_episode_is_model_ready():
    digits = load_dataset("digits").train
    episode = EpisodeSampler(digits, 5, 1, 3, seed=0).sample(0)
    assert episode.support_x.shape == (5, 1, 8, 8) and episode.support_x.dtype == torch.float32
    assert 0 <= float(episode.support_x.min()) and float(episode.support_x.max()) <= 1


def test_omniglot_20_way_episode(shared_data_root):
    omniglot = load_dataset("omniglot", data_root=shared_data_root)
    episode = EpisodeSampler(omniglot.train, 20, 1, 5, seed=0).sample(0)
    assert episode.support_x.shape == (20, 1, 105, 105) and episode.query_x.shape == (100, 1, 105, 105)
    assert set(torch.unique(episode.support_x).tolist()) <= {0.0, 1.0}
    with pytest.raises(NotEnoughExamplesError):
        EpisodeSampler(omniglot.test, 5, 5, 1)  # 5 drawers per character in test
