"""The settings of adapt()'s causal-LM path, one frozen, versioned config."""

from __future__ import annotations

from dataclasses import dataclass

from fewshot_kd.adapt.task_policy import ParsedPolicy
from fewshot_kd.errors import BadInputError

LM_POLICY_VERSION = 1


@dataclass(frozen=True)
class LMPolicy(ParsedPolicy):
    """How adapt() compresses a causal LM. The shots are ``shots`` sequences of
    ``sequence_length`` tokens of the train split; unlabelled sequences (same length) add the
    teacher's soft targets only. Distillation: ``steps`` Adam steps at ``lr`` (cosine) on
    batches of ``batch_size`` sequences, loss ``alpha * T^2 * KL + (1 - alpha) * CE`` per
    position (``alpha=0``: cross-entropy on the shots alone; the shots' next tokens are
    labels). ``qat_steps`` quantization-aware steps at ``qat_lr`` after the weights are
    quantized (0: post-training quantization). Perplexity: sliding windows of ``eval_window``
    tokens every ``eval_stride``. ``generations`` greedy continuations of ``generation_tokens``
    tokens, from prompts of ``prompt_chars`` characters of the evaluated split.

    ``meta_policy``: the folder of a meta-learned policy trained on LM episodes; it decides the
    kept blocks, temperature, alpha, lr and steps (:mod:`fewshot_kd.meta.lm_decide`).

    ``alpha`` 0.9 was chosen on Tiny Shakespeare's validation split (seed 0, K=20, 200 unlabelled
    sequences, student / teacher perplexity): 0.5 gave 1.105, 0.9 1.006, 1.0 1.005."""

    LABEL, TASK, ONE = "LM policy", "a causal language model", "an LMPolicy"
    sequence_length: int = 128
    steps: int = 300
    lr: float = 1e-3
    batch_size: int = 16
    weight_decay: float = 0.0
    temperature: float = 2.0
    alpha: float = 0.9
    qat_steps: int = 0
    qat_lr: float = 1e-4
    eval_window: int = 256
    eval_stride: int = 128
    generations: int = 3
    generation_tokens: int = 60
    prompt_chars: int = 40
    meta_policy: str | None = None
    version: int = LM_POLICY_VERSION

    def __post_init__(self) -> None:
        self.check_whole_numbers(("sequence_length", "steps", "batch_size", "qat_steps", "eval_window", "eval_stride",
                                  "generations", "generation_tokens", "prompt_chars"))
        self.check_numbers(("lr", "weight_decay", "temperature", "alpha", "qat_lr"))
        if self.sequence_length < 2 or self.batch_size < 1 or self.temperature <= 0 or self.alpha > 1:
            raise BadInputError("LM policy needs sequence_length >= 2, batch_size >= 1, temperature > 0, alpha <= 1")
        if not 1 <= self.eval_stride <= self.eval_window or self.eval_window < 2:
            raise BadInputError(f"LM policy needs 2 <= eval_window and 1 <= eval_stride <= eval_window, got "
                                f"{self.eval_window} / {self.eval_stride}")
        self.check_meta_policy()
