"""Teacher recipes for extractive question answering: a BERT-family encoder (the packaged
MiniLM by default) with a span head, fine-tuned on a capped, seeded draw of the questions of
the dataset's ``train`` articles (SQuAD: the teacher's half, never an evaluated article)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class QATrainConfig:
    """``epochs`` passes of AdamW over the windows (``max_length`` tokens, ``doc_stride``
    overlap) of at most ``max_questions`` questions drawn (seeded) from the train split;
    batches of ``batch_size`` windows, linear warm-up over ``warmup_fraction`` of the steps,
    then cosine to 0. Loss: cross-entropy on the gold start and end tokens, averaged."""

    max_questions: int = 1024
    max_length: int = 192
    doc_stride: int = 64
    epochs: int = 2
    lr: float = 1.5e-4
    batch_size: int = 16
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    version: int = 1


@dataclass(frozen=True)
class QATeacherRecipe:
    """How to train one extractive-QA teacher: the dataset (registered, with ``train`` and
    ``test`` splits of questions), the encoder (``None``: the packaged all-MiniLM-L6-v2; or a
    local Hugging Face folder) and the schedule. The cache records EM / F1 on a fixed subset of
    ``eval_questions`` questions of the ``test`` split; :meth:`fingerprint` keys the cache."""

    name: str
    dataset: str
    encoder: str | None = None
    train: QATrainConfig = QATrainConfig()
    eval_questions: int = 500
    version: int = 1
    model_kwargs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "QATeacherRecipe":
        data = dict(data)
        data["train"] = QATrainConfig(**data.get("train", {}))
        return cls(**data)

    def fingerprint(self) -> str:
        blob = json.dumps({"kind": "extractive_qa", **self.to_dict()}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]
