"""A meta-learned policy applied to an extractive-QA teacher (:mod:`fewshot_kd.meta.task_decide`),
decided on the K labelled questions' windows as meta-training's QA episodes decide them
(:mod:`fewshot_kd.meta.span_episodes`). Without a layer target the policy picks as many as
adapt()'s QA default keeps (half of them)."""

from __future__ import annotations

import torch.nn as nn

from fewshot_kd.adapt.policy import HAND_SET_TEXT
from fewshot_kd.adapt.qa.derive import default_layers
from fewshot_kd.adapt.qa.policy import QAPolicy
from fewshot_kd.adapt.target import Target
from fewshot_kd.meta.meta_policy import MetaPolicy
from fewshot_kd.meta.span_episodes import DESCRIBED_WINDOWS, SpanRows
from fewshot_kd.meta.task_decide import TaskSubject, decide_task
from fewshot_kd.model_io import trainable_copy


def decide_qa(meta: MetaPolicy, teacher: nn.Module, windows: dict, shots: int, target: Target,
              base: QAPolicy) -> tuple[QAPolicy, Target, dict]:
    """``(policy, target, info)`` for compressing the QA ``teacher`` from ``shots`` labelled
    questions whose windows (model inputs) are ``windows``; the learning rate is adapt()'s text
    rate x the learned scale, as the QA episodes' inner loop steps."""
    total = teacher.config.num_hidden_layers
    subject = TaskSubject(SpanRows(trainable_copy(teacher)), windows, {name: t[:1] for name, t in windows.items()},
                          DESCRIBED_WINDOWS, base.max_length, total, default_layers(total), HAND_SET_TEXT.lr)
    return decide_task(meta, subject, shots, target, base)
