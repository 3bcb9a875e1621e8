"""Meta-training episodes: a task family (dataset + teacher), N classes, K shots, a budget.

Episode ``i`` of a run is a function of ``(seed, i)`` only, so a resumed run sees the same
episodes. The student of every episode is derived from the family's teacher (it starts
from the teacher's weights and is compressed to the episode's budget). Support and query
come from the family's episode pool, disjoint from what the teacher trained on
(:mod:`fewshot_kd.meta.pools`).
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from fewshot_kd.augment import AUGMENTATIONS, unshifted
from fewshot_kd.data.catalog import load_dataset
from fewshot_kd.data.class_subset import class_subset
from fewshot_kd.data.episodes import EpisodeSampler
from fewshot_kd.distill.views import augmented_copies, build_bank
from fewshot_kd.adapt.policy import HAND_SET
from fewshot_kd.distill import map_layers
from fewshot_kd.errors import FewShotKDError, NotEnoughExamplesError
from fewshot_kd.measure import count_macs
from fewshot_kd.model_io import model_device, to_device, trainable_copy
from fewshot_kd.models.text import is_text_model
from fewshot_kd.meta.descriptors import ModelDescription, ModelStructure, describe_model, model_structure, task_features
from fewshot_kd.meta.pools import FamilyPools, family_pools
from fewshot_kd.task_family import TaskFamily, build_teacher, find_task_family


@dataclass
class MetaFamily:
    """A task family loaded once: its teacher (frozen), a trainable copy the inner loop
    compresses, the episode pool (``train``, disjoint from the teacher's training data; see
    ``pools``) and its classes, and the layer structure."""

    task: TaskFamily
    teacher: nn.Module
    student: nn.Module
    train: object
    classes: tuple[int, ...]
    ways: int
    pairs: list[tuple[str, str]]
    structure: ModelStructure
    example: torch.Tensor
    pools: FamilyPools
    student_macs: float = 1.0  # the student's MACs as a fraction of the teacher's, before pruning
    keep_blocks: int | None = None  # text: how many encoder layers the student keeps (the policy picks which)
    samplers: dict = field(default_factory=dict)
    batch_size: int | None = None  # rows of an inner step; None: the inner config's
    lr: float | None = None  # the inner loop's learning rate; None: the inner config's for the modality

    def draw_episode(self, index: int, spec: "EpisodeSpec", seed: int, rng: random.Random) -> "MetaEpisode":
        """Episode ``index`` of this family: K, budget and classes drawn from ``rng``."""
        return _class_episode(self, index, spec, seed, rng)

    @property
    def teacher_device(self) -> torch.device:
        return model_device(self.teacher)

    @property
    def text(self) -> bool:
        return is_text_model(self.teacher)

    def student_budget(self, target_macs: float | None) -> float | None:
        """A MACs budget given as a fraction of the teacher's, as a fraction of the student's."""
        return None if target_macs is None else min(1.0, target_macs / self.student_macs)

    @property
    def name(self) -> str:
        return self.task.name

    def split_record(self) -> dict:
        """What the teacher trained on and where episodes draw from (JSON-ready)."""
        return {**copy.deepcopy(self.pools.record), "classes": list(self.classes)}


def load_family(name: str, ways: int, data_root=None, classes=None, progress: bool = False,
                device: str | torch.device = "cpu") -> MetaFamily:
    """Load task family ``name`` for meta-training. Students start as the teacher; a text
    family's keeps every encoder layer and the policy learns which of them to keep (as many as its
    target's ``layers``; :mod:`fewshot_kd.meta.layer_choice`), pruned by heads and FFN neurons,
    with no hint layers (adapt() distils text on logits). An extractive-QA family's episodes are
    questions (:mod:`fewshot_kd.meta.span_episodes`), a causal-LM family's token sequences
    (:mod:`fewshot_kd.meta.token_episodes`)."""
    task = find_task_family(name)
    device = torch.device(device)
    if task.modality == "qa":
        from fewshot_kd.meta.span_episodes import load_span_family

        if classes is not None:
            raise FewShotKDError(f"{task.name}: an extractive-QA family has no classes to choose; drop its --classes")
        return load_span_family(task, data_root, progress, device)
    if task.modality == "lm":
        from fewshot_kd.meta.token_episodes import load_token_family

        if classes is not None:
            raise FewShotKDError(f"{task.name}: a causal-LM family has no classes to choose; drop its --classes")
        return load_token_family(task, data_root, progress, device)
    teacher = frozen_teacher(task, data_root, progress, device)
    splits = load_dataset(task.dataset, data_root=data_root, **task.dataset_kwargs)
    pools = family_pools(task, splits, data_root)
    train = splits[pools.episode_split].subset(pools.episode_indices, f"{task.dataset}/episode-pool")
    if task.classes is not None:  # the pools index the full dataset; the task is its class subset
        train = class_subset(train, task.classes, f"{task.dataset}/episode-pool")
    return make_family(task, teacher, train, pools, ways, classes)


def frozen_teacher(task: TaskFamily, data_root, progress: bool, device: torch.device) -> nn.Module:
    """The family's teacher on ``device``, in eval mode, its parameters frozen."""
    teacher = build_teacher(task, data_root=data_root, progress=progress).eval().to(device)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def make_family(task: TaskFamily, teacher: nn.Module, train, pools: FamilyPools, ways: int, classes=None) -> MetaFamily:
    """A :class:`MetaFamily` of a loaded, frozen ``teacher`` whose episodes draw from ``train``."""
    device = model_device(teacher)
    present = sorted(set(train.labels.tolist()))
    chosen = tuple(present if classes is None else sorted(int(c) for c in classes))
    example = to_device(train.input_batch(slice(0, 1)), device)
    student = trainable_copy(teacher)
    keep = None
    if is_text_model(teacher):
        from fewshot_kd.models.text import layer_indices

        layers = (task.target or {}).get("layers")
        keep = len(layer_indices(layers, teacher.num_layers)) if layers else None  # which ones is learned
        pairs = []
    else:
        pairs = map_layers(teacher, student, "auto", example_inputs=example)
    student_macs = count_macs(student, example) / count_macs(teacher, example)
    return MetaFamily(task, teacher, student, train, chosen, min(task.ways or ways, len(chosen)), pairs,
                      model_structure(student, example), example, pools, student_macs=student_macs, keep_blocks=keep)


@dataclass
class MetaEpisode:
    family: MetaFamily
    index: int
    shots: int
    target_macs: float
    target_bits: int | None
    classes: tuple[int, ...]
    support_x: torch.Tensor  # augmented views of the shots
    support_y: torch.Tensor
    teacher_logits: torch.Tensor  # on the views, restricted to the episode's classes
    teacher_features: list[torch.Tensor]
    query_x: torch.Tensor
    query_y: torch.Tensor
    description: ModelDescription
    task: torch.Tensor
    anchor_x: torch.Tensor | None = None  # every view unshifted (see _views); None: text or no augmentation
    bank: object | None = None  # the inner loop's bank when it is not the views' (question windows: a SpanBank)

    @property
    def budget_macs(self) -> float | None:
        """The MACs target as a fraction of the (described) student's MACs."""
        return self.family.student_budget(self.target_macs)

    def record(self) -> dict:
        return {"index": self.index, "family": self.family.name, "classes": list(self.classes), "shots": self.shots,
                "target_macs": self.target_macs, "target_bits": self.target_bits}


@dataclass(frozen=True)
class EpisodeSpec:
    shots: tuple[int, ...] = (5, 10, 20)
    query_per_class: int = 10
    views: int = 4
    macs_range: tuple[float, float] = (0.35, 0.7)
    bits: tuple[int | None, ...] = (8, 6)


def pool_per_class(family: MetaFamily) -> int:
    """Examples of the scarcest meta-training class in the family's episode pool."""
    counts = torch.bincount(family.train.labels, minlength=family.train.num_classes)
    return int(counts[list(family.classes)].min())


def episode_sizes(family: MetaFamily, spec: "EpisodeSpec", rng: random.Random) -> tuple[int, int]:
    """``(shots, query)`` per class for an episode of ``family``: K drawn from the spec's shots
    that leave at least one query example per class in the family's pool, the query as large
    as the spec asks and the pool allows (Omniglot's pool holds 10 drawings a character)."""
    available = pool_per_class(family)
    fitting = [k for k in spec.shots if k + 1 <= available]
    if not fitting:
        raise NotEnoughExamplesError(
            f"{family.name}: episodes need at least {min(spec.shots)} support + 1 query example per class, but the "
            f"episode pool ({family.pools.episode_split}, disjoint from the teacher's data) has {available} of its "
            f"scarcest class; lower shots")
    shots = rng.choice(fitting)
    return shots, min(spec.query_per_class, available - shots)


def _sampler(family: MetaFamily, shots: int, query: int, seed: int) -> EpisodeSampler:
    key = (shots, query)
    if key not in family.samplers:
        family.samplers[key] = EpisodeSampler(family.train, ways=family.ways, shots=shots, query_shots=query,
                                              seed=seed, classes=family.classes)
    return family.samplers[key]


def make_episode(families: list[MetaFamily], index: int, spec: EpisodeSpec, seed: int) -> MetaEpisode:
    """Episode ``index``: family, K, budget and classes drawn from ``(seed, index)``."""
    rng = random.Random(f"fewshot_kd.meta:{seed}:{index}")
    family = families[rng.randrange(len(families))]
    return family.draw_episode(index, spec, seed, rng)


def _class_episode(family: MetaFamily, index: int, spec: EpisodeSpec, seed: int, rng: random.Random) -> MetaEpisode:
    shots, query = episode_sizes(family, spec, rng)
    target_macs = round(rng.uniform(*spec.macs_range), 3)
    target_bits = rng.choice(spec.bits)
    episode = _sampler(family, shots, query, seed).sample(index)
    device = family.teacher_device
    view_seed = rng.randrange(2**31)
    support_x, anchor_x = to_device(_views(family, episode.support_x, spec.views, view_seed), device)
    support_y = episode.support_y.repeat(spec.views).to(device)
    # the teacher runs once over all views (adapt()'s view bank), logits cut to the episode's classes
    bank = build_bank(family.teacher, support_x, support_y, [t for t, _ in family.pairs], batch_size=len(support_y),
                      cache_bytes=None)  # the inner loop and vmap read the cached features
    teacher_logits, teacher_features = bank.teacher_logits[:, list(episode.classes)], bank.teacher_features
    # sensitivities cost a forward per layer: fewer sentences keep text cheap (as MetaPolicy.decide)
    description = describe_model(family.student, family.example, to_device(episode.support_x, device), family.pairs,
                                 structure=family.structure, max_examples=16 if family.text else 64).to(device)
    task = task_features(shots, family.ways, target_macs, target_bits, text=family.text).to(device)
    return MetaEpisode(family, index, shots, target_macs, target_bits, episode.classes, support_x, support_y,
                       teacher_logits, teacher_features, to_device(episode.query_x, device),
                       episode.query_y.to(device), description, task, anchor_x)


def _views(family: MetaFamily, inputs, views: int, seed: int):
    """The shots and ``views - 1`` augmented copies (the family's image augmentation, or
    adapt()'s word dropout for text), and for images the same views unshifted (mirrored
    alike), which a learned augmentation strength blends them with (None for text or no
    augmentation)."""
    if family.text:
        return augmented_copies(inputs, views, None, False, HAND_SET.text_word_dropout, seed), None
    augment = AUGMENTATIONS[family.task.augment]
    if augment is None:
        return torch.cat([inputs] * views), None
    generator = torch.Generator().manual_seed(seed)
    anchors, shifted = [inputs], [inputs]
    for _ in range(views - 1):
        anchors.append(unshifted(augment, inputs, generator))
        shifted.append(augment(inputs, None, generator))
    return torch.cat(shifted), torch.cat(anchors)
