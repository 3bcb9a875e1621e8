"""Labelled classification data: inputs, integer labels and class names, split by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence, Union

import torch

from fewshot_kd.data.named_splits import NamedSplits
from fewshot_kd.errors import FewShotKDError, NotEnoughExamplesError

Inputs = Union[torch.Tensor, Sequence[str]]
SHORT_CLASSES_LISTED = 5  # a too-few-shots error names this many short classes, then counts the rest


def model_ready(batch: torch.Tensor) -> torch.Tensor:
    """``uint8`` images as ``float32`` in ``[0, 1]``; any other tensor unchanged."""
    return batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch


@dataclass
class LabelledDataset:
    """A labelled classification set held in memory.

    ``inputs`` is a tensor (images as ``uint8`` or float ``[N, C, H, W]``, features as
    ``[N, F]``) or a list of strings (text). ``labels`` is ``int64 [N]`` in
    ``range(len(class_names))``. Use :meth:`input_batch` to get model-ready inputs:
    ``uint8`` images come back as ``float32`` in ``[0, 1]``.
    """

    inputs: Inputs
    labels: torch.Tensor
    class_names: tuple[str, ...]
    name: str = "dataset"

    def __post_init__(self) -> None:
        self.labels = torch.as_tensor(self.labels, dtype=torch.long)
        self.class_names = tuple(str(c) for c in self.class_names)
        if not isinstance(self.inputs, torch.Tensor):
            self.inputs = list(self.inputs)
        if len(self.inputs) != len(self.labels):
            raise FewShotKDError(
                f"{self.name}: {len(self.inputs)} inputs but {len(self.labels)} labels; they must match"
            )
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise FewShotKDError(
                f"{self.name}: labels span {int(self.labels.min())}..{int(self.labels.max())} but there are "
                f"{len(self.class_names)} class names; labels must lie in 0..{len(self.class_names) - 1}"
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_text(self) -> bool:
        return not isinstance(self.inputs, torch.Tensor)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.input_batch(slice(index, index + 1))[0], int(self.labels[index])

    def __iter__(self) -> Iterator:
        return (self[i] for i in range(len(self)))

    def input_batch(self, index) -> Inputs:
        """Model-ready inputs at ``index`` (a slice, list or tensor of indices)."""
        if self.is_text:
            idx = range(len(self))[index] if isinstance(index, slice) else torch.as_tensor(index).tolist()
            return [self.inputs[i] for i in idx]
        return model_ready(self.inputs[index])

    def all_inputs(self) -> Inputs:
        return self.input_batch(slice(None))

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.labels, minlength=self.num_classes)

    @property
    def max_shots(self) -> int:
        """The largest K :meth:`few_shot` can draw: the smallest class's count."""
        return int(self.class_counts().min())

    def subset(self, indices, name: str | None = None) -> "LabelledDataset":
        idx = torch.as_tensor(indices, dtype=torch.long)
        inputs = [self.inputs[i] for i in idx.tolist()] if self.is_text else self.inputs[idx]
        return LabelledDataset(inputs, self.labels[idx], self.class_names, name or self.name)

    def few_shot(self, k: int, seed: int = 0) -> "LabelledDataset":
        """Exactly ``k`` examples of every class, drawn without replacement, deterministic in ``seed``."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"shots must be a positive integer, got {k!r}")
        counts = self.class_counts()
        short = [f"{self.class_names[c]!r} has {int(n)}" for c, n in enumerate(counts) if n < k]
        if short:
            listed = "; ".join(short[:SHORT_CLASSES_LISTED])
            if len(short) > SHORT_CLASSES_LISTED:
                listed += f"; and {len(short) - SHORT_CLASSES_LISTED} more of the {self.num_classes} classes"
            raise NotEnoughExamplesError(
                f"{self.name}: {k} shots per class asked, but {listed}. "
                f"Ask for at most {self.max_shots} shots or use a larger pool."
            )
        return self.subset(self.few_shot_indices(k, seed), name=f"{self.name}[{k}-shot,seed={seed}]")

    def few_shot_indices(self, k: int, seed: int = 0) -> torch.Tensor:
        """The indices :meth:`few_shot` draws (class by class), without the size checks."""
        generator = torch.Generator().manual_seed(seed)
        chosen = []
        for c in range(self.num_classes):
            members = torch.nonzero(self.labels == c).flatten()
            chosen.append(members[torch.randperm(len(members), generator=generator)[:k]])
        return torch.cat(chosen)

    def unlabelled_inputs(self, n: int, shots: int, seed: int = 0) -> Inputs:
        """Model-ready inputs of ``n`` examples that are not among ``few_shot(shots, seed)``,
        drawn at random (seeded), with their labels dropped: the unlabelled pool a
        practitioner often has beside the few labelled shots."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"unlabelled must be a positive number of examples, got {n!r}")
        taken = torch.zeros(len(self), dtype=torch.bool)
        taken[self.few_shot_indices(shots, seed)] = True
        rest = torch.nonzero(~taken).flatten()
        if n > len(rest):
            raise NotEnoughExamplesError(
                f"{self.name}: {n} unlabelled examples asked, but only {len(rest)} remain beside the "
                f"{shots}-shot support; ask for at most {len(rest)}")
        generator = torch.Generator().manual_seed(seed + 7919)
        return self.input_batch(rest[torch.randperm(len(rest), generator=generator)[:n]])


@dataclass
class DatasetSplits(NamedSplits[LabelledDataset]):
    """Named splits of one dataset. ``train`` and ``test`` always exist; others are extra
    evaluation sets (e.g. CIFAR-10's pixel-exact ``test_exact``)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        names = {s.class_names for s in self.splits.values()}
        if len(names) != 1:
            raise FewShotKDError(f"{self.name}: splits disagree on class names")

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names

    @property
    def num_classes(self) -> int:
        return self.train.num_classes
