"""adapt()'s inputs for extractive question answering: the article-split questions, the
tokenizer, the K labelled questions, the unlabelled ones and the evaluated questions."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn

from fewshot_kd.adapt.task_steps import check_shots
from fewshot_kd.data.catalog import load_dataset
from fewshot_kd.data.qa_examples import QADataset, QAExample, QASplits
from fewshot_kd.errors import BadInputError
from fewshot_kd.measure.squad_eval import evaluation_questions


def is_qa_model(model) -> bool:
    """A Hugging Face extractive QA model: a ``config`` and a span head (``qa_outputs``)."""
    return isinstance(model, nn.Module) and hasattr(model, "qa_outputs") and hasattr(model, "config")


def resolve_questions(data, data_root=None) -> QASplits:
    """:class:`QASplits` from itself or its dataset name (e.g. ``"squad"``)."""
    splits = load_dataset(data, data_root=data_root) if isinstance(data, str) else data
    if not isinstance(splits, QASplits):
        raise BadInputError(f"an extractive QA teacher needs questions as data: QASplits or a dataset name such as "
                            f"'squad', got {type(splits).__name__}")
    return splits


def resolve_qa_tokenizer(teacher: nn.Module):
    """The teacher's ``.tokenizer`` (set by the recipe loader), else the packaged MiniLM's when
    the vocabularies match."""
    tokenizer = getattr(teacher, "tokenizer", None)
    if tokenizer is not None:
        return tokenizer
    from fewshot_kd.models._minilm import load_tokenizer

    minilm = load_tokenizer()
    if getattr(teacher.config, "vocab_size", None) == len(minilm):
        return minilm
    raise BadInputError("the QA teacher has no tokenizer: set teacher.tokenizer = <its fast tokenizer> "
                        "(qa_model(folder) returns it beside the model)")


def _as_unlabelled(examples) -> QADataset:
    items = list(examples)
    if not all(isinstance(e, QAExample) for e in items):
        raise BadInputError("unlabelled questions must be QAExample objects (question, context; answers ignored)")
    return QADataset([e.unlabelled() for e in items], "unlabelled")


def shot_and_unlabelled_questions(splits: QASplits, shots: int, unlabelled, seed: int
                                  ) -> tuple[QADataset, QADataset | None]:
    """``shots`` labelled questions of the train split (seeded draw) and the unlabelled ones:
    ``n`` (an int) further train questions (never a shot; answers dropped) or given questions."""
    check_shots(shots, "labelled questions")
    labelled = splits.train.few_shot(shots, seed)
    if any(not e.is_labelled for e in labelled):
        raise BadInputError(f"{splits.name}: the train split holds unlabelled questions; the shots need answers")
    if unlabelled is None:
        return labelled, None
    if isinstance(unlabelled, int) and not isinstance(unlabelled, bool):
        return labelled, splits.train.unlabelled(unlabelled, shots, seed)
    if isinstance(unlabelled, (QADataset, Sequence)) and not isinstance(unlabelled, str):
        return labelled, _as_unlabelled(unlabelled)
    raise BadInputError(f"for question answering, unlabelled must be a count of questions or a list of QAExample, "
                        f"got {type(unlabelled).__name__}")


def evaluated_questions(splits: QASplits, eval_data, count: int | None) -> tuple[str, QADataset]:
    """``(name, questions)`` scored in the report: ``eval_data`` names a split (default ``test``,
    the articles no teacher saw) or is a ``QADataset``; cut to the fixed subset of ``count``."""
    if eval_data is None or (isinstance(eval_data, str) and eval_data in splits.splits):
        name = eval_data or "test"
        return name, evaluation_questions(splits[name], count)
    if isinstance(eval_data, QADataset):
        return eval_data.name, evaluation_questions(eval_data, count)
    raise BadInputError(f"for question answering, eval_data names a split ({', '.join(splits.splits)}) or is a "
                        f"QADataset, got {eval_data!r}")
