"""The settings of adapt()'s extractive question-answering path, one frozen, versioned config."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

from fewshot_kd.adapt.task_policy import ParsedPolicy
from fewshot_kd.errors import BadInputError

QA_POLICY_VERSION = 1


@dataclass(frozen=True)
class QAPolicy(ParsedPolicy):
    """How adapt() compresses an extractive QA model. Questions are cut into windows of
    ``max_length`` tokens overlapping by ``doc_stride``. Distillation: ``steps`` Adam steps at
    ``lr`` (cosine) on batches of ``batch_size`` windows, loss ``alpha * T^2 * KL + (1 - alpha)
    * CE`` on the start and end distributions (``alpha=0``: cross-entropy on the shots alone;
    unlabelled questions add the KL term only), plus ``feature_weight`` x the mean squared error
    between each student encoder layer's hidden states and those of the teacher layer it stands
    for (uniform map: with 3 of 6 layers kept, student layer j matches teacher layer 2j + 1;
    TinyBERT's hidden-state loss; 0 turns it off). ``qat_steps`` quantization-aware steps at
    ``qat_lr`` after the weights are quantized (0: post-training quantization). Evaluation:
    exact match and F1 on a fixed subset of ``eval_questions`` questions of the test split
    (``None``: all of it); ``allow_no_answer`` decodes ``squad_v2``-style empty answers.
    ``meta_policy``: the folder of a meta-learned policy trained on QA episodes; it decides the
    kept encoder layers, temperature, alpha, lr and steps (:mod:`fewshot_kd.meta.qa_decide`)."""

    LABEL, TASK, ONE = "QA policy", "extractive question answering", "a QAPolicy"
    max_length: int = 192
    doc_stride: int = 64
    steps: int = 200
    lr: float = 1e-4
    batch_size: int = 16
    weight_decay: float = 0.0
    temperature: float = 2.0
    alpha: float = 0.5
    feature_weight: float = 0.0
    qat_steps: int = 0
    qat_lr: float = 1e-5
    eval_questions: int | None = 500
    allow_no_answer: bool = False
    meta_policy: str | None = None
    version: int = QA_POLICY_VERSION

    def __post_init__(self) -> None:
        self.check_whole_numbers(("max_length", "doc_stride", "steps", "batch_size", "qat_steps"))
        self.check_numbers(("lr", "weight_decay", "temperature", "alpha", "feature_weight", "qat_lr"))
        if self.batch_size < 1 or self.temperature <= 0 or self.alpha > 1:
            raise BadInputError("QA policy needs batch_size >= 1, temperature > 0 and alpha <= 1")
        if not 0 < self.doc_stride < self.max_length:
            raise BadInputError(f"QA policy needs 0 < doc_stride < max_length, got {self.doc_stride} / {self.max_length}")
        count = self.eval_questions
        if count is not None and (isinstance(count, bool) or not isinstance(count, Integral) or count < 1):
            raise BadInputError(f"QA policy eval_questions must be a whole number >= 1 or None, got {count!r}")
        if not isinstance(self.allow_no_answer, bool):
            raise BadInputError(f"QA policy allow_no_answer must be true or false, got {self.allow_no_answer!r}")
        self.check_meta_policy()
