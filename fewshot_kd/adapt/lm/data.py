"""adapt()'s inputs for a causal LM: the corpus, the tokenizer, the few-shot sequences, the
unlabelled ones, the evaluated split and the generation prompts."""

from __future__ import annotations

import torch
import torch.nn as nn

from fewshot_kd.data.catalog import load_dataset
from fewshot_kd.data.lm_corpus import TextCorpus, few_shot_sequences
from fewshot_kd.errors import BadInputError, NotEnoughExamplesError
from fewshot_kd.models.byte_tokenizer import BYTE_VOCAB_SIZE, ByteTokenizer


def is_causal_lm(model) -> bool:
    """A Hugging Face causal language model (a ``config`` and an ``lm_head``)."""
    return isinstance(model, nn.Module) and hasattr(model, "lm_head") and hasattr(model, "config")


def resolve_corpus(data, data_root=None) -> TextCorpus:
    """A :class:`TextCorpus` from itself or its dataset name."""
    corpus = load_dataset(data, data_root=data_root) if isinstance(data, str) else data
    if not isinstance(corpus, TextCorpus):
        raise BadInputError(f"a causal language-model teacher needs running text as data: a TextCorpus or a dataset "
                            f"name such as 'tinyshakespeare', got {type(corpus).__name__}")
    return corpus


def resolve_tokenizer(teacher: nn.Module):
    """The teacher's ``.tokenizer`` (set by the recipe and folder loaders), else the byte
    tokenizer when the vocabulary is the 256 bytes."""
    tokenizer = getattr(teacher, "tokenizer", None)
    if tokenizer is not None:
        return tokenizer
    if getattr(teacher.config, "vocab_size", None) == BYTE_VOCAB_SIZE:
        return ByteTokenizer()
    raise BadInputError("the causal LM teacher has no tokenizer: set teacher.tokenizer = <its tokenizer> (one with "
                        "encode(text) -> ids and decode(ids) -> text), as load_causal_lm_folder returns it")


def encode(tokenizer, text: str) -> torch.Tensor:
    """``text`` as a 1-D tensor of token ids."""
    return torch.tensor(tokenizer.encode(text), dtype=torch.long)


def shot_and_unlabelled_sequences(train_ids: torch.Tensor, shots: int, length: int, unlabelled, tokenizer,
                                  seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``shots`` sequences of ``length`` tokens of the train split (:func:`few_shot_sequences`)
    and the unlabelled ones: ``n`` (an int) further chunks of the same seeded draw (so never
    a shot), or text (a string or list of strings) cut into ``length``-token sequences."""
    shot_ids = few_shot_sequences(train_ids, shots, length, seed)
    if unlabelled is None:
        return shot_ids, None
    if isinstance(unlabelled, int) and not isinstance(unlabelled, bool):
        chunks = len(train_ids) // length
        if unlabelled < 1 or shots + unlabelled > chunks:
            raise NotEnoughExamplesError(f"{shots} shots and {unlabelled} unlabelled sequences of {length} tokens "
                                         f"asked, but the train split holds {chunks}")
        order = torch.randperm(chunks, generator=torch.Generator().manual_seed(seed))[shots:shots + unlabelled]
        return shot_ids, train_ids[: chunks * length].reshape(chunks, length)[order]
    texts = [unlabelled] if isinstance(unlabelled, str) else unlabelled
    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        raise BadInputError(f"for a language model, unlabelled must be a count of sequences, a string or a list of "
                            f"strings, got {type(unlabelled).__name__}")
    ids = torch.cat([encode(tokenizer, t) for t in texts]) if texts else torch.zeros(0, dtype=torch.long)
    if len(ids) < length:
        raise NotEnoughExamplesError(f"the unlabelled text holds {len(ids)} tokens, fewer than one sequence of {length}")
    return shot_ids, ids[: len(ids) // length * length].reshape(-1, length)


def eval_split(corpus: TextCorpus, eval_data) -> str:
    """The split perplexity is measured on: ``eval_data`` names one, default ``validation``
    (``test`` when the corpus has no validation split)."""
    if eval_data is None:
        return "validation" if "validation" in corpus.splits else "test"
    if isinstance(eval_data, str) and eval_data in corpus.splits:
        return eval_data
    raise BadInputError(f"for a language model, eval_data names a split of the corpus "
                        f"({', '.join(corpus.splits)}), got {eval_data!r}")


def prompts_from(text: str, count: int, chars: int) -> list[str]:
    """``count`` prompts of ``chars`` characters, each from the start of a line at evenly spaced points."""
    prompts = []
    for i in range(count):
        start = text.find("\n", i * len(text) // max(count, 1))
        start = 0 if start < 0 else start + 1
        prompts.append(text[start:start + chars])
    return prompts
