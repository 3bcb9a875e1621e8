"""Teacher recipes for causal language models: a small GPT-2 trained on a text corpus's
train split by random windows (next-token cross-entropy, AdamW, warm-up then cosine)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class LMTrainConfig:
    """``steps`` AdamW steps on batches of ``batch_size`` random windows of ``sequence_length``
    tokens of the train split (at most the model's context); ``warmup_steps`` linear warm-up,
    then cosine to 0."""

    steps: int = 400
    lr: float = 3e-3
    batch_size: int = 16
    sequence_length: int = 256
    weight_decay: float = 0.1
    warmup_steps: int = 50
    grad_clip: float = 1.0
    seed: int = 0
    version: int = 1


@dataclass(frozen=True)
class LMTeacherRecipe:
    """How to train one causal-LM teacher: the corpus (a registered dataset of running text),
    the keyword arguments of :func:`~fewshot_kd.models.causal_lm.small_gpt2_config` and the
    schedule. Trained on the ``train`` split only; :meth:`fingerprint` keys the cache."""

    name: str
    dataset: str
    model_kwargs: dict = field(default_factory=dict)
    train: LMTrainConfig = LMTrainConfig()
    version: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LMTeacherRecipe":
        data = dict(data)
        data["train"] = LMTrainConfig(**data.get("train", {}))
        return cls(**data)

    def fingerprint(self) -> str:
        blob = json.dumps({"kind": "causal_lm", **self.to_dict()}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]
