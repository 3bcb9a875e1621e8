"""SQuAD v1.1 from the local dev file, split by article: ``load_dataset("squad")``.

Only the official dev set is available locally (10,570 questions over 48 articles), so it is
split **by whole article**: the articles, in file order, are shuffled by a permutation seeded
with ``seed`` (default 0) and the first ``round(teacher_fraction * 48)`` of them (default
half: 24) form ``train`` (the teacher recipe's and the few-shot draws' articles); the others
form ``test`` (evaluation). No article is in both; ``splits.articles`` records which went where.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import torch

from fewshot_kd.data.catalog import register_dataset
from fewshot_kd.data.qa_examples import QADataset, QASplits, qa_example_from_row
from fewshot_kd.data.roots import ENV_VAR, require_file

SQUAD_FILE = "text/squad/validation.jsonl.gz"
TEACHER_FRACTION = 0.5
SPLIT_SEED = 0


def read_qa_jsonl(path: str | os.PathLike, name: str = "qa") -> QADataset:
    """Questions from a ``squad``-layout JSON Lines file (``.jsonl`` or ``.jsonl.gz``)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        examples = [qa_example_from_row(json.loads(line)) for line in lines if line.strip()]
    return QADataset(examples, name)


def split_by_article(data: QADataset, teacher_fraction: float = TEACHER_FRACTION, seed: int = SPLIT_SEED,
                     name: str = "squad") -> QASplits:
    """Whole articles to ``train`` / ``test``: the first ``round(teacher_fraction * articles)``
    of a seeded permutation of the articles (in file order) go to ``train``."""
    if not 0.0 < teacher_fraction < 1.0:
        raise ValueError(f"teacher_fraction must lie strictly between 0 and 1, got {teacher_fraction!r}")
    titles = data.titles
    if len(titles) < 2:
        raise ValueError(f"{data.name}: an article split needs at least 2 articles, got {len(titles)}")
    order = torch.randperm(len(titles), generator=torch.Generator().manual_seed(seed)).tolist()
    n_train = min(max(1, round(teacher_fraction * len(titles))), len(titles) - 1)
    train_titles = {titles[i] for i in order[:n_train]}
    parts = {"train": [], "test": []}
    for index, example in enumerate(data):
        parts["train" if example.title in train_titles else "test"].append(index)
    splits = {split: data.subset(indices, f"{name}/{split}") for split, indices in parts.items()}
    rule = (f"articles shuffled with seed {seed}; the first {n_train} of {len(titles)} "
            f"(teacher_fraction {teacher_fraction}) are train, the rest test")
    return QASplits(name, splits, split_rule=rule)


@register_dataset("squad", "SQuAD v1.1 dev from a local file, split by article: 24 articles train / 24 test (seeded)")
def load_squad(data_root: str | os.PathLike | None = None, download: bool = False,
               teacher_fraction: float = TEACHER_FRACTION, seed: int = SPLIT_SEED) -> QASplits:
    """SQuAD v1.1 (the official dev file) split by article (see the module docstring)."""
    how = (f"Set {ENV_VAR} (or pass data_root=...) to a folder holding text/squad/ in the shared-data layout. "
           "Or use load_dataset('hf:squad', download=True) to fetch the standard copy.")
    if download:
        how += " (download=True has no effect here: this entry only reads local files.)"
    data = read_qa_jsonl(require_file(data_root, SQUAD_FILE, how), "squad")
    return split_by_article(data, teacher_fraction, seed)
