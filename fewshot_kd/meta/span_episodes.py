"""Meta-training episodes of an extractive-QA family: K labelled questions, the teacher's start /
end distributions on their windows, and query questions whose gold spans score the compressed
student.

The inner loop is the one classification runs (:func:`~fewshot_kd.distill.loop.run_distillation`
and the one distillation objective, as adapt()'s QA path): every window gives two rows, its start
and its end logits over its tokens (:class:`~fewshot_kd.distill.qa_bank.SpanBank`). The meta-loss
is the query windows' span cross-entropy (the mean of the start and end terms) plus the budget
penalty; ``query_acc`` is the share of gold start and end tokens the student ranks first. The
student starts as the teacher's full copy; the policy chooses which encoder layers it keeps (as
many as the family's target ``layers``) and prunes heads and FFN neurons to the episode's MACs
budget, as for text classifiers.

Episodes draw from the ``test`` articles less the fixed evaluation subset that adapt() and the
``qa`` suite score: the teacher recipe trained on every ``train`` question. K follows the
family's own ``shots`` (labelled questions: 16, 32, 64, 128), not the per-class ``--shots``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn as nn

from fewshot_kd.adapt.qa.data import resolve_qa_tokenizer
from fewshot_kd.adapt.qa.policy import QAPolicy
from fewshot_kd.data._split import indices_digest
from fewshot_kd.data.catalog import load_dataset
from fewshot_kd.distill.qa_bank import SpanBank, SpanLogits
from fewshot_kd.errors import FewShotKDError, NotEnoughExamplesError
from fewshot_kd.measure import count_macs
from fewshot_kd.measure.squad_eval import evaluation_indices
from fewshot_kd.meta.descriptors import describe_model, model_structure, task_features
from fewshot_kd.meta.episodes import EpisodeSpec, MetaEpisode, MetaFamily, frozen_teacher
from fewshot_kd.meta.pools import FamilyPools
from fewshot_kd.model_io import model_device, to_device, trainable_copy
from fewshot_kd.models.qa_features import qa_features
from fewshot_kd.models.text import layer_indices
from fewshot_kd.task_family import TaskFamily

QUERY_QUESTIONS = 32
"""Query questions per episode; each is scored on its first window that holds the answer."""
DESCRIBED_WINDOWS = 8
"""Support windows the policy's sensitivity descriptors run on (text classifiers use 16 sentences: a window is longer)."""


class SpanRows(SpanLogits):
    """A QA model's start and end rows ``[2B, L]`` from a dict of windows, given positionally (the
    distillation loop) or as keywords (MACs counting), with its encoder as ``encoder`` so the
    meta-learner's block gates find the transformer layers there."""

    def forward(self, inputs: dict | None = None, **windows) -> torch.Tensor:
        return super().forward(windows if inputs is None else inputs)

    @property
    def encoder(self) -> nn.Module:
        return self.qa.base_model


@dataclass
class SpanFamily(MetaFamily):
    """A :class:`MetaFamily` whose examples are questions (``train``: the episode pool, a
    ``QADataset``) cut into windows of ``max_length`` tokens overlapping by ``doc_stride``;
    ``query_questions`` per episode."""

    tokenizer: object = None
    max_length: int = QAPolicy.max_length
    doc_stride: int = QAPolicy.doc_stride
    query_questions: int = QUERY_QUESTIONS

    @property
    def text(self) -> bool:
        return True

    def windows(self, questions):
        return qa_features(self.tokenizer, list(questions), self.max_length, self.doc_stride)

    def draw_episode(self, index: int, spec: EpisodeSpec, seed: int, rng: random.Random) -> MetaEpisode:
        return span_episode(self, index, spec, rng)


def span_pools(task: TaskFamily, splits, eval_questions: int | None) -> FamilyPools:
    """The teacher's questions (every ``train`` one) and the episode pool: the ``test`` questions
    outside the evaluation subset of ``eval_questions`` (:func:`evaluation_indices`)."""
    test = splits["test"]
    keep = torch.ones(len(test), dtype=torch.bool)
    keep[evaluation_indices(len(test), eval_questions)] = False
    episodes = torch.nonzero(keep).flatten()
    record = {"family": task.name, "dataset": task.dataset,
              "teacher": {"source": f"recipe:{task.teacher.get('recipe')}" if "recipe" in task.teacher
                          else "given", "split": "train", "indices": "all", "count": len(splits["train"])},
              "episodes": {"split": "test", "excluded": f"the evaluation subset of {eval_questions} questions",
                           "excluded_count": len(test) - len(episodes), "count": len(episodes),
                           "indices_sha256": indices_digest(episodes)}}
    return FamilyPools("train", None, "test", episodes, record)


def load_span_family(task: TaskFamily, data_root=None, progress: bool = False,
                     device: str | torch.device = "cpu") -> SpanFamily:
    """The extractive-QA family ``task``: its recipe teacher, frozen, and its questions' pools."""
    teacher = frozen_teacher(task, data_root, progress, torch.device(device))
    splits = load_dataset(task.dataset, data_root=data_root, **task.dataset_kwargs)
    pools = span_pools(task, splits, QAPolicy.eval_questions)
    pool = splits["test"].subset(pools.episode_indices, f"{task.dataset}/episode-pool")
    return make_span_family(task, teacher, resolve_qa_tokenizer(teacher), pool, pools)


def make_span_family(task: TaskFamily, teacher: nn.Module, tokenizer, pool, pools: FamilyPools,
                     max_length: int = QAPolicy.max_length, doc_stride: int = QAPolicy.doc_stride,
                     query_questions: int = QUERY_QUESTIONS) -> SpanFamily:
    """A :class:`SpanFamily` of a loaded, frozen QA ``teacher`` whose episodes draw from ``pool``."""
    layers = (task.target or {}).get("layers")
    if not layers:
        raise FewShotKDError(f"task {task.name}: an extractive-QA family names how many encoder layers its student "
                             f"keeps in target.layers (e.g. 'last 3'); the policy learns which")
    keep = len(layer_indices(layers, teacher.config.num_hidden_layers))
    example = to_device(qa_features(tokenizer, [pool[0]], max_length, doc_stride).batch(slice(0, 1)),
                        model_device(teacher))
    student = SpanRows(trainable_copy(teacher))
    student_macs = count_macs(student, example) / count_macs(SpanRows(teacher), example)
    return SpanFamily(task, teacher, student, pool, (), max_length, [], model_structure(student, example), example,
                      pools, student_macs=student_macs, keep_blocks=keep, batch_size=QAPolicy.batch_size,
                      tokenizer=tokenizer, max_length=max_length, doc_stride=doc_stride,
                      query_questions=query_questions)


def _answered_windows(features) -> torch.Tensor:
    """Per question, its first window whose gold span lies inside it (questions without one drop out)."""
    first: dict[int, int] = {}
    for row, (question, start) in enumerate(zip(features.example_index.tolist(), features.start_positions.tolist())):
        if start > 0 and question not in first:
            first[question] = row
    return torch.tensor(sorted(first.values()), dtype=torch.long)


def span_episode(family: SpanFamily, index: int, spec: EpisodeSpec, rng: random.Random) -> MetaEpisode:
    """Episode ``index``: K labelled questions (the support: every window, as adapt() distils) and
    ``family.query_questions`` others (the query: one answered window each), budget and bits drawn
    as for classification."""
    queries = family.query_questions
    fitting = [k for k in family.task.shots if k + queries <= len(family.train)]
    if not fitting:
        raise NotEnoughExamplesError(f"{family.name}: an episode needs {min(family.task.shots)} labelled + "
                                     f"{queries} query questions, but the episode pool holds {len(family.train)}")
    shots = rng.choice(fitting)
    target_macs = round(rng.uniform(*spec.macs_range), 3)
    target_bits = rng.choice(spec.bits)
    order = torch.randperm(len(family.train), generator=torch.Generator().manual_seed(rng.randrange(2**31))).tolist()
    device = family.teacher_device
    support = family.windows(family.train[i] for i in order[:shots])
    query = family.windows(family.train[i] for i in order[shots:shots + queries])
    rows = _answered_windows(query)
    bank = SpanBank.build(family.teacher, support, device)
    query_x = {name: tensor[rows].to(device) for name, tensor in query.inputs.items()}
    query_y = torch.cat([query.start_positions[rows], query.end_positions[rows]]).to(device)
    description = describe_model(family.student, family.example, bank.inputs, [], max_examples=DESCRIBED_WINDOWS,
                                 structure=family.structure).to(device)
    task = task_features(shots, family.ways, target_macs, target_bits, text=True).to(device)
    teacher_rows = torch.cat([bank.teacher_logits[:, 0], bank.teacher_logits[:, 1]])
    return MetaEpisode(family, index, shots, target_macs, target_bits, (), bank.inputs,
                       torch.cat([bank.starts, bank.ends]), teacher_rows, [], query_x, query_y, description, task,
                       bank=bank)
