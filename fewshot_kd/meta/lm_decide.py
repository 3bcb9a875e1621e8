"""A meta-learned policy applied to a causal-LM teacher (:mod:`fewshot_kd.meta.task_decide`),
decided on the K sequences as meta-training's LM episodes decide them
(:mod:`fewshot_kd.meta.token_episodes`). Without a layer target the policy picks as many blocks
as adapt()'s LM default keeps (every other one: half, rounded up)."""

from __future__ import annotations

import torch
import torch.nn as nn

from fewshot_kd.adapt.lm.derive import kept_block_indices
from fewshot_kd.adapt.lm.policy import LMPolicy
from fewshot_kd.adapt.target import Target
from fewshot_kd.meta.meta_policy import MetaPolicy
from fewshot_kd.meta.task_decide import TaskSubject, decide_task
from fewshot_kd.meta.token_episodes import DESCRIBED_SEQUENCES, TokenRows
from fewshot_kd.model_io import trainable_copy
from fewshot_kd.models.causal_lm import gpt2_blocks


def decide_lm(meta: MetaPolicy, teacher: nn.Module, shot_ids: torch.Tensor, target: Target,
              base: LMPolicy) -> tuple[LMPolicy, Target, dict]:
    """``(policy, target, info)`` for compressing the causal LM ``teacher`` from the sequences
    ``shot_ids`` ``[K, L]``; the learning rate is the hand-set LMPolicy's x the learned scale, as
    the LM episodes' inner loop steps."""
    total = len(gpt2_blocks(teacher))
    default = kept_block_indices(teacher, None)
    subject = TaskSubject(TokenRows(trainable_copy(teacher)), shot_ids, shot_ids[:1], DESCRIBED_SEQUENCES,
                          int(teacher.config.vocab_size), total, default, LMPolicy.lr)
    return decide_task(meta, subject, len(shot_ids), target, base)
