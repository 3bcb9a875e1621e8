"""A MAML-initialised student: meta-learn the task student's initialisation on episodes cut
from the K-shot support set itself, then distil into it on all shots (as ``hinton_kd``).

Meta-training uses ``learn2learn.algorithms.MAML``, first-order by default (FOMAML: the
outer gradient is taken at the adapted weights, no second derivatives; ``first_order=False``
gives full MAML). Each episode is ``ways`` of the task's classes with the shots of each class
split into support and query (``EpisodeSampler``, labels remapped to ``0..ways-1``). The
student keeps its ``num_classes``-way head: its logits, and the teacher's, are restricted to
the episode's classes, and the inner and outer losses are Hinton KD (T=4, alpha=0.7) on them.
No evaluation data is ever seen.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn

from fewshot_kd.augment import get_augmentation
from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.data.episodes import Episode, EpisodeSampler, _learn2learn
from fewshot_kd.distill import kd_loss
from fewshot_kd.errors import NotEnoughExamplesError
from fewshot_kd.files import save_tensors
from fewshot_kd.model_io import model_device, to_device
from fewshot_kd.training import check_finite, fit

from benchmarks.methods._few_shot_training import few_shot_config
from benchmarks.methods.base import MethodInput, MethodOutput, register_method
from benchmarks.methods.hinton_kd import ALPHA, LR, TEMPERATURE, WEIGHT_DECAY
from benchmarks.methods.options import MethodOptions


@dataclass(frozen=True)
class MetaConfig:
    """``meta_steps`` outer Adam steps (``meta_lr``), each over ``meta_batch`` episodes of
    ``ways`` classes, adapted with ``inner_steps`` SGD steps of ``inner_lr``."""

    meta_steps: int = 100
    meta_batch: int = 4
    ways: int = 5
    inner_steps: int = 2
    inner_lr: float = 0.05
    meta_lr: float = 3e-3
    first_order: bool = True
    augment: str = "none"
    seed: int = 0


@dataclass(frozen=True)
class MamlStudentOptions(MethodOptions):
    """:class:`MetaConfig`'s fields (``augment`` and ``seed`` default to the task's and the
    cell's), then fine-tuning for about ``steps`` Adam steps at ``lr``."""

    meta_steps: int = MetaConfig.meta_steps
    meta_batch: int = MetaConfig.meta_batch
    ways: int = MetaConfig.ways
    inner_steps: int = MetaConfig.inner_steps
    inner_lr: float = MetaConfig.inner_lr
    meta_lr: float = MetaConfig.meta_lr
    first_order: bool = MetaConfig.first_order
    augment: str | None = None
    seed: int | None = None
    steps: int = 300
    lr: float = LR

    def meta_config(self, augment: str, seed: int) -> MetaConfig:
        """The meta-training config, ``augment`` and ``seed`` filling in those not set."""
        meta = {f.name: getattr(self, f.name) for f in fields(MetaConfig)}
        return MetaConfig(**{**meta, "augment": self.augment if self.augment is not None else augment,
                             "seed": self.seed if self.seed is not None else seed})


def episode_sampler(shots: LabelledDataset, ways: int, seed: int) -> EpisodeSampler:
    """Episodes of ``ways`` classes from the shots: half of each class's shots (at least one)
    are support, the rest query. With one shot per class the query is the support itself."""
    per_class = int(shots.class_counts().min())
    if per_class < 1:
        raise NotEnoughExamplesError(f"{shots.name}: every class needs at least one shot for MAML episodes")
    support = max(1, per_class // 2)
    return EpisodeSampler(shots, ways=min(ways, shots.num_classes), shots=support,
                          query_shots=per_class - support, seed=seed)


def _episode_loss(model: nn.Module, teacher: nn.Module, inputs, labels: torch.Tensor,
                  classes: list[int], augment, generator: torch.Generator) -> torch.Tensor:
    """Hinton KD on the episode's classes (student and teacher logits restricted to them)."""
    device = model_device(model)
    inputs, labels = to_device(inputs, device), labels.to(device)
    if augment is not None and isinstance(inputs, torch.Tensor):
        inputs = augment(inputs, generator=generator)
    with torch.no_grad():
        teacher_logits = teacher.eval()(inputs)[:, classes]
    loss = kd_loss(model(inputs)[:, classes], teacher_logits, labels, temperature=TEMPERATURE, alpha=ALPHA)
    check_finite(loss, "maml-student meta-training")
    return loss


def _split(episode: Episode) -> tuple:
    if len(episode.query_y):
        return episode.query_x, episode.query_y
    return episode.support_x, episode.support_y


@contextmanager
def _one_thread():
    """Episodes are a few dozen images: intra-op threads only add synchronisation, and on
    shared cores two threads ran meta-training ~100x slower than one. Restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def meta_train_(student: nn.Module, teacher: nn.Module, shots: LabelledDataset, config: MetaConfig) -> list[dict]:
    """Meta-learn ``student``'s initialisation in place with learn2learn's MAML on episodes
    of ``shots``; returns one ``{"meta_step", "query_loss"}`` record per outer step."""
    l2l = _learn2learn()
    sampler = episode_sampler(shots, config.ways, config.seed)
    augment = get_augmentation(config.augment)
    generator = torch.Generator().manual_seed(config.seed)
    maml = l2l.algorithms.MAML(student, lr=config.inner_lr, first_order=config.first_order, allow_unused=True)
    optimizer = torch.optim.Adam(maml.parameters(), lr=config.meta_lr)
    episodes = (sampler.sample(i) for i in itertools.count())
    history = []
    student.train()
    with _one_thread():
        for step in range(config.meta_steps):
            history.append({"meta_step": step + 1,
                            "query_loss": _meta_step(maml, teacher, episodes, optimizer, config, augment, generator)})
    student.eval()
    return history


def _meta_step(maml, teacher: nn.Module, episodes, optimizer, config: MetaConfig, augment, generator) -> float:
    """One outer step over ``config.meta_batch`` episodes; returns their mean query loss."""
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for episode in itertools.islice(episodes, config.meta_batch):
        classes = list(episode.classes)
        learner = maml.clone()
        for _ in range(config.inner_steps):
            learner.adapt(_episode_loss(learner, teacher, episode.support_x, episode.support_y,
                                        classes, augment, generator))
        query_x, query_y = _split(episode)
        loss = _episode_loss(learner, teacher, query_x, query_y, classes, augment, generator)
        (loss / config.meta_batch).backward()
        total += loss.item()
    optimizer.step()
    return total / config.meta_batch


@register_method("maml_student",
                 "task student initialised by first-order MAML (learn2learn) on episodes of the shots, then Hinton KD",
                 MamlStudentOptions)
def run(inp: MethodInput, options: MamlStudentOptions) -> MethodOutput:
    torch.manual_seed(inp.seed)
    student = inp.make_student().to(inp.device)
    meta = options.meta_config(inp.augment, inp.seed)
    meta_history = meta_train_(student, inp.teacher, inp.shots, meta)
    config = few_shot_config(len(inp.shots), inp.augment, steps=options.steps,
                             lr=options.lr, weight_decay=WEIGHT_DECAY, seed=inp.seed)

    def criterion(student_logits, teacher_logits, labels):
        return kd_loss(student_logits, teacher_logits, labels, temperature=TEMPERATURE, alpha=ALPHA)

    history = fit(student, inp.shots, config, progress=inp.progress, description="maml-student",
                  criterion=criterion, teacher=inp.teacher)
    artifact = save_tensors(inp.workdir / "student.safetensors", student.state_dict())
    losses = [h["query_loss"] for h in meta_history]
    window = max(1, min(10, len(losses)))
    notes = {"meta": asdict(meta), "history": history,
             "meta_query_loss": {"first": sum(losses[:window]) / window, "last": sum(losses[-window:]) / window}}
    return MethodOutput(model=student.eval(), artifact=artifact, notes=notes)
