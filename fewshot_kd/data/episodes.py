"""N-way K-shot episodes drawn from a LabelledDataset with learn2learn's task transforms.

``EpisodeSampler(dataset, ways=5, shots=1, query_shots=15).sample(i)`` returns episode ``i``:
the same ``(seed, i)`` always gives the same episode, whatever was sampled before.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch.utils.data import Dataset

from fewshot_kd.data.dataset import Inputs, LabelledDataset
from fewshot_kd.errors import ClassCountMismatchError, NotEnoughExamplesError


@dataclass(frozen=True, eq=False)  # fields are tensors: compare them explicitly
class Episode:
    """One few-shot task. Labels are remapped to ``0..ways-1``; ``classes[j]`` is the dataset
    label of episode label ``j``. Support and query are sorted by episode label. Images are
    ``float32`` in ``[0, 1]`` (``[n, C, H, W]``), text a ``list[str]``."""

    support_x: Inputs
    support_y: torch.Tensor
    query_x: Inputs
    query_y: torch.Tensor
    classes: tuple[int, ...]

    @property
    def ways(self) -> int:
        return len(self.classes)


class _IndexedView(Dataset):
    """A torch ``Dataset`` face of a LabelledDataset (learn2learn wants one). Items are read
    through a one-row slice: basic indexing is ~100x cheaper than a one-element index list."""

    def __init__(self, dataset: LabelledDataset) -> None:
        self.dataset = dataset
        self.labels = dataset.labels.tolist()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset.input_batch(slice(index, index + 1))[0], self.labels[index]


def _learn2learn():
    """Import learn2learn without the unmaintained-gym notice: learn2learn imports gym, which
    prints ``gym_notices.notices.notices[gym.__version__]`` to stderr; that table is emptied
    during the import (anything else gym or learn2learn prints still shows)."""
    if "gym" not in sys.modules:
        try:
            from gym_notices import notices
        except ImportError:  # no notices package: gym prints nothing
            notices = None
        saved = dict(notices.notices) if notices is not None else {}
        if notices is not None:
            notices.notices.clear()
        try:
            import gym  # noqa: F401
        finally:
            if notices is not None:
                notices.notices.update(saved)
    import learn2learn

    return learn2learn


def _check_count(value, what: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


class EpisodeSampler:
    """Samples N-way K-shot episodes (``shots`` support + ``query_shots`` query per class).

    Built on ``learn2learn.data.MetaDataset`` / ``Taskset`` (ex ``TaskDataset``) with the
    ``FusedNWaysKShots(ways, shots + query_shots)`` (NWays + KShots in one step), ``LoadData``
    and ``RemapLabels`` transforms. ``classes`` restricts episodes to some dataset labels (e.g.
    meta-train classes). ``num_tasks=-1`` gives unlimited episodes, a positive value a fixed set
    of that many. Sampling seeds Python's ``random`` (which learn2learn uses) from
    ``(seed, index)`` and restores its state after, so it is reproducible but not thread-safe.
    """

    def __init__(
        self,
        dataset: LabelledDataset,
        ways: int,
        shots: int,
        query_shots: int,
        num_tasks: int = -1,
        seed: int = 0,
        classes: Sequence[int] | None = None,
    ) -> None:
        self.dataset = dataset
        self.ways = _check_count(ways, "ways", 1)
        self.shots = _check_count(shots, "shots", 1)
        self.query_shots = _check_count(query_shots, "query_shots", 0)
        if not isinstance(num_tasks, int) or num_tasks == 0 or num_tasks < -1:
            raise ValueError(f"num_tasks must be -1 (unlimited) or a positive integer, got {num_tasks!r}")
        self.num_tasks = num_tasks
        self.seed = int(seed)
        self._view = _IndexedView(dataset)
        labels_to_indices: dict[int, list[int]] = {}
        for index, label in enumerate(self._view.labels):
            labels_to_indices.setdefault(label, []).append(index)
        self.classes = self._check_classes(labels_to_indices, classes)

        l2l = _learn2learn()
        transforms = l2l.data.transforms
        meta = l2l.data.MetaDataset(self._view, labels_to_indices=labels_to_indices)
        self._taskset = l2l.data.Taskset(
            meta,
            task_transforms=[
                # NWays + KShots(shots + query_shots), fused: it draws the members it keeps
                # instead of listing every member of the chosen classes (25,000 on CIFAR-10)
                transforms.FusedNWaysKShots(meta, n=self.ways, k=self.shots + self.query_shots,
                                            filter_labels=list(self.classes)),
                transforms.LoadData(meta),
                transforms.RemapLabels(meta, shuffle=True),
            ],
            num_tasks=num_tasks,
        )

    def _check_classes(self, labels_to_indices: dict[int, list[int]], classes: Sequence[int] | None) -> tuple[int, ...]:
        present = sorted(labels_to_indices)
        chosen = present if classes is None else sorted({int(c) for c in classes})
        unknown = sorted(set(chosen) - set(present))
        if unknown:
            raise NotEnoughExamplesError(
                f"{self.dataset.name}: classes {unknown[:10]} have no examples here (it has examples of "
                f"{len(present)} of its {self.dataset.num_classes} classes); pass classes that occur in the dataset."
            )
        if self.ways > len(chosen):
            raise ClassCountMismatchError(
                f"{self.dataset.name}: {self.ways}-way episodes need {self.ways} classes but only {len(chosen)} "
                f"are available; ask for at most {len(chosen)} ways or use a dataset with more classes."
            )
        need = self.shots + self.query_shots
        short = [f"{self.dataset.class_names[c]!r} has {len(labels_to_indices[c])}"
                 for c in chosen if len(labels_to_indices[c]) < need]
        if short:
            raise NotEnoughExamplesError(
                f"{self.dataset.name}: episodes need {self.shots} support + {self.query_shots} query = {need} "
                f"examples per class, but {'; '.join(short[:5])}{' ...' if len(short) > 5 else ''}. "
                f"Lower shots/query_shots, or pass classes=... to leave the small classes out."
            )
        return tuple(chosen)

    def __len__(self) -> int:
        if self.num_tasks == -1:
            raise TypeError("an EpisodeSampler with num_tasks=-1 has no length; iterate it or call sample(i)")
        return self.num_tasks

    def __getitem__(self, index: int) -> Episode:
        return self.sample(index)

    def __iter__(self) -> Iterator[Episode]:
        index = 0
        while self.num_tasks == -1 or index < self.num_tasks:
            yield self.sample(index)
            index += 1

    def sample(self, index: int) -> Episode:
        """Episode number ``index``, a function of ``(seed, index)`` only."""
        if self.num_tasks != -1 and not 0 <= index < self.num_tasks:
            raise IndexError(f"episode {index} out of range: this sampler holds {self.num_tasks} episodes")
        saved = random.getstate()
        random.seed(f"fewshot_kd.episode:{self.seed}:{index}")
        try:
            description = self._taskset.sample_task_description()
        finally:
            random.setstate(saved)
        original = [self._view.labels[d.index] for d in description]
        inputs, episode_labels = self._taskset.get_task(description)
        return self._split(inputs, torch.as_tensor(episode_labels, dtype=torch.long), original)

    def _split(self, inputs, labels: torch.Tensor, original: list[int]) -> Episode:
        classes = [0] * self.ways
        for new, old in zip(labels.tolist(), original):
            classes[new] = old
        support, query = [], []
        for c in range(self.ways):
            members = torch.nonzero(labels == c).flatten().tolist()
            support += members[: self.shots]
            query += members[self.shots :]

        def take(positions: list[int]):
            if isinstance(inputs, torch.Tensor):
                return inputs[positions]
            return [inputs[p] for p in positions]

        return Episode(take(support), labels[support], take(query), labels[query], tuple(classes))
