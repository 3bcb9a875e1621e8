"""Meta-training episodes of a causal-LM family: K labelled sequences plus unlabelled ones, the
teacher's next-token distributions on them, and query sequences whose next tokens score the
compressed student.

The inner loop is the one classification runs (:func:`~fewshot_kd.distill.loop.run_distillation`
and the one distillation objective, as adapt()'s LM path): every position that predicts a token
is a row (:class:`~fewshot_kd.distill.lm_bank.TokenBank`); the unlabelled sequences add the
teacher's soft targets only. The meta-loss is the query sequences' next-token cross-entropy (the
log of their perplexity) plus the budget penalty. The student starts as the teacher's full copy;
the policy chooses which blocks it keeps (as many as the family's target ``layers``, default
half, as adapt() derives), prunes heads and FFN neurons to the episode's MACs budget and sets
the temperature, alpha, learning rate and steps.

Episodes draw from the ``train`` split, cut into sequences of ``sequence_length`` tokens: the
text the teacher recipe trained on, which is also where adapt() draws its K sequences. The
``validation`` split (what the ``lm`` suite scores) and the ``test`` split are never read.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn as nn

from fewshot_kd.adapt.lm.data import encode, resolve_corpus, resolve_tokenizer
from fewshot_kd.adapt.lm.derive import kept_block_indices
from fewshot_kd.adapt.lm.policy import LMPolicy
from fewshot_kd.data._split import indices_digest
from fewshot_kd.distill.lm_bank import NextTokenLogits, TokenBank
from fewshot_kd.errors import NotEnoughExamplesError
from fewshot_kd.measure import count_macs
from fewshot_kd.meta.descriptors import describe_model, model_structure, task_features
from fewshot_kd.meta.episodes import EpisodeSpec, MetaEpisode, MetaFamily, frozen_teacher
from fewshot_kd.meta.pools import FamilyPools
from fewshot_kd.model_io import model_device, trainable_copy
from fewshot_kd.task_family import TaskFamily

QUERY_SEQUENCES = 16
"""Query sequences per episode (each scores every next token it holds)."""
UNLABELLED_SEQUENCES = 200
"""Unlabelled sequences per episode, as the ``lm`` suite gives adapt()."""
DESCRIBED_SEQUENCES = 8
"""Support sequences the policy's sensitivity descriptors run on."""


class TokenRows(NextTokenLogits):
    """A causal LM's next-token rows ``[B * (L - 1), V]``, with the LM as ``encoder`` so the
    meta-learner's block gates find its blocks (``transformer.h``)."""

    @property
    def encoder(self) -> nn.Module:
        return self.lm


@dataclass
class TokenFamily(MetaFamily):
    """A :class:`MetaFamily` whose episode pool ``train`` is a ``[N, sequence_length]`` tensor of
    token ids (the train split's non-overlapping chunks); ``unlabelled`` and ``query_sequences``
    sequences per episode besides the K labelled ones."""

    sequence_length: int = LMPolicy.sequence_length
    unlabelled: int = UNLABELLED_SEQUENCES
    query_sequences: int = QUERY_SEQUENCES

    @property
    def text(self) -> bool:
        return True

    def draw_episode(self, index: int, spec: EpisodeSpec, seed: int, rng: random.Random) -> MetaEpisode:
        return token_episode(self, index, spec, rng)


def token_pools(task: TaskFamily, chunks: int, length: int) -> FamilyPools:
    """The teacher's text (every ``train`` token) and the episode pool: the same split's
    ``chunks`` sequences of ``length`` tokens (adapt() draws its shots there too)."""
    everything = torch.arange(chunks)
    record = {"family": task.name, "dataset": task.dataset,
              "teacher": {"source": f"recipe:{task.teacher.get('recipe')}" if "recipe" in task.teacher else "given",
                          "split": "train", "indices": "all"},
              "episodes": {"split": "train", "sequences": chunks, "sequence_length": length,
                           "note": "the teacher's training text, where adapt() draws its K sequences; validation "
                                   "and test are never read", "indices_sha256": indices_digest(everything)}}
    return FamilyPools("train", None, "train", everything, record)


def load_token_family(task: TaskFamily, data_root=None, progress: bool = False,
                      device: str | torch.device = "cpu") -> TokenFamily:
    """The causal-LM family ``task``: its recipe teacher, frozen, and its train split in sequences."""
    teacher = frozen_teacher(task, data_root, progress, torch.device(device))
    corpus = resolve_corpus(task.dataset, data_root)
    ids = encode(resolve_tokenizer(teacher), corpus.train)
    length = LMPolicy.sequence_length
    chunks = len(ids) // length
    return make_token_family(task, teacher, ids[: chunks * length].reshape(chunks, length),
                             token_pools(task, chunks, length))


def make_token_family(task: TaskFamily, teacher: nn.Module, sequences: torch.Tensor, pools: FamilyPools,
                      unlabelled: int = UNLABELLED_SEQUENCES, query_sequences: int = QUERY_SEQUENCES) -> TokenFamily:
    """A :class:`TokenFamily` of a loaded, frozen GPT-2 ``teacher`` whose episodes draw from
    ``sequences`` (``[N, L]`` token ids)."""
    keep = len(kept_block_indices(teacher, (task.target or {}).get("layers")))
    example = sequences[:1].to(model_device(teacher))
    student = TokenRows(trainable_copy(teacher))
    student_macs = count_macs(student, example) / count_macs(TokenRows(teacher), example)
    vocab = int(teacher.config.vocab_size)
    return TokenFamily(task, teacher, student, sequences, (), vocab, [], model_structure(student, example), example,
                       pools, student_macs=student_macs, keep_blocks=keep, batch_size=LMPolicy.batch_size,
                       lr=LMPolicy.lr, sequence_length=sequences.shape[1], unlabelled=unlabelled,
                       query_sequences=query_sequences)


def token_episode(family: TokenFamily, index: int, spec: EpisodeSpec, rng: random.Random) -> MetaEpisode:
    """Episode ``index``: K labelled sequences and ``family.unlabelled`` unlabelled ones (the
    support) and ``family.query_sequences`` others (the query), all distinct chunks; K from the
    family's shots, budget and bits drawn as for classification."""
    extra = family.unlabelled + family.query_sequences
    fitting = [k for k in family.task.shots if k + extra <= len(family.train)]
    if not fitting:
        raise NotEnoughExamplesError(f"{family.name}: an episode needs {min(family.task.shots)} labelled + "
                                     f"{family.unlabelled} unlabelled + {family.query_sequences} query sequences, but "
                                     f"the train split holds {len(family.train)} of {family.sequence_length} tokens")
    shots = rng.choice(fitting)
    target_macs = round(rng.uniform(*spec.macs_range), 3)
    target_bits = rng.choice(spec.bits)
    order = torch.randperm(len(family.train), generator=torch.Generator().manual_seed(rng.randrange(2**31)))
    device = family.teacher_device
    support = family.train[order[:shots + family.unlabelled]].to(device)
    query = family.train[order[shots + family.unlabelled:shots + extra]].to(device)
    labelled = torch.arange(len(support), device=device) < shots
    bank = TokenBank.build(family.teacher, support, labelled)
    description = describe_model(family.student, family.example, support, [], max_examples=DESCRIBED_SEQUENCES,
                                 structure=family.structure).to(device)
    task = task_features(shots, family.ways, target_macs, target_bits, text=True).to(device)
    rows = bank.teacher_logits
    return MetaEpisode(family, index, shots, target_macs, target_bits, (), support, bank.labels(torch.arange(
        len(support), device=device)), None if rows is None else rows.reshape(-1, rows.shape[-1]), [], query,
        query[:, 1:].reshape(-1), description, task, bank=bank)

