"""Text classification rows from a CSV or JSON Lines file: a text column and a label column.

Labels are class indices (``0..C-1``) or class names. Index labels take their names from
``label_names.json`` beside the file when it exists; name labels are numbered in sorted order.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Sequence

import torch

from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.errors import BadInputError, CorruptFileError
from fewshot_kd.files import read_json

TEXT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".jsonl.gz", ".csv.gz")


def _open_text(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    return opener(path, "rt", encoding="utf-8-sig", newline="")


def _csv_rows(path: Path) -> list[dict]:
    delimiter = "\t" if path.name.removesuffix(".gz").endswith(".tsv") else ","
    try:
        with _open_text(path) as handle:
            return list(csv.DictReader(handle, delimiter=delimiter))
    except (csv.Error, UnicodeDecodeError, OSError, EOFError) as error:
        raise CorruptFileError(f"{path} is not a readable CSV file ({type(error).__name__}: {error})") from None


def _jsonl_rows(path: Path) -> list[dict]:
    rows, number = [], 0
    try:
        with _open_text(path) as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise ValueError(f"a {type(row).__name__}, not an object")
                    rows.append(row)
    except (ValueError, UnicodeDecodeError, OSError, EOFError) as error:
        raise CorruptFileError(f"{path}, line {number}, is not readable JSON Lines ({type(error).__name__}: {error}); "
                               f"every line must be an object like {{\"text\": \"...\", \"label\": 0}}") from None
    return rows


def read_rows(path: Path, text_column: str = "text", label_column: str = "label") -> tuple[list[str], list]:
    """``(texts, raw labels)`` of a ``.csv``/``.tsv``/``.jsonl`` file (optionally ``.gz``)."""
    rows = _jsonl_rows(path) if ".jsonl" in path.name else _csv_rows(path)
    if not rows:
        raise BadInputError(f"{path} holds no rows; it needs a {text_column!r} and a {label_column!r} column")
    missing = [c for c in (text_column, label_column) if c not in rows[0]]
    if missing:
        raise BadInputError(f"{path} has no column(s) {missing}; it has {sorted(rows[0])}. Name the columns with "
                            f"text_column= / label_column= (--text-column / --label-column)")
    blank = next((i for i, row in enumerate(rows, 1) if row.get(label_column) in (None, "")), None)
    if blank is not None:
        raise BadInputError(f"{path}: row {blank} has no {label_column!r}; every row needs a label")
    return [str(row[text_column] or "") for row in rows], [row[label_column] for row in rows]


def _as_index(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() else None


def label_names_beside(path: Path) -> tuple[str, ...] | None:
    """The class names in ``label_names.json`` beside ``path`` (a JSON list), if there is one."""
    file = path.parent / "label_names.json"
    if not file.is_file():
        return None
    names = read_json(file)
    if not isinstance(names, list):
        raise CorruptFileError(f"{file} must hold a JSON list of class names, got {type(names).__name__}")
    return tuple(str(n) for n in names)


def index_labels(raw: Sequence, class_names: Sequence[str] | None, source: str) -> tuple[torch.Tensor, tuple[str, ...]]:
    """``(labels, class_names)``: index labels kept (named by ``class_names`` or ``"0".."C-1"``),
    name labels mapped onto ``class_names`` (default: their sorted distinct values)."""
    indices = [_as_index(v) for v in raw]
    if all(i is not None for i in indices):
        names = tuple(class_names) if class_names is not None else tuple(str(c) for c in range(max(indices) + 1))
        return torch.tensor(indices, dtype=torch.long), names
    names = tuple(class_names) if class_names is not None else tuple(sorted({str(v) for v in raw}))
    lookup = {n: i for i, n in enumerate(names)}
    unknown = sorted({str(v) for v in raw} - set(lookup))
    if unknown:
        raise BadInputError(f"{source}: labels {unknown[:5]} are not among the classes {list(names)[:10]}; "
                            f"give every split the same classes")
    return torch.tensor([lookup[str(v)] for v in raw], dtype=torch.long), names


def read_text_table(path: Path, name: str, text_column: str = "text", label_column: str = "label",
                    class_names: Sequence[str] | None = None) -> LabelledDataset:
    """A text :class:`LabelledDataset` from one CSV / JSONL file."""
    texts, raw = read_rows(path, text_column, label_column)
    labels, names = index_labels(raw, class_names if class_names is not None else label_names_beside(path), str(path))
    return LabelledDataset(texts, labels, names, name=name)
