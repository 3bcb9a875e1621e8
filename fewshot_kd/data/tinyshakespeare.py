"""Tiny Shakespeare from the local file: ``load_dataset("tinyshakespeare")``.

The text (1,115,394 characters) has no official split; it is cut by character position:
the first 90 % is ``train``, the next 5 % ``validation``, the last 5 % ``test`` (char-rnn
and nanoGPT also train on the first 90 %).
"""

from __future__ import annotations

import gzip
import os

from fewshot_kd.data.catalog import register_dataset
from fewshot_kd.data.lm_corpus import TextCorpus, split_by_position
from fewshot_kd.data.roots import ENV_VAR, require_file

TINYSHAKESPEARE_FILE = "text/tinyshakespeare/input.txt.gz"
FRACTIONS = (0.9, 0.05, 0.05)


def corpus_by_position(text: str, name: str, fractions: tuple[float, float, float] = FRACTIONS) -> TextCorpus:
    """A :class:`TextCorpus` of ``text`` cut by :func:`split_by_position`, the cuts recorded."""
    splits = split_by_position(text, fractions)
    boundaries, start = {}, 0
    for split, part in splits.items():
        boundaries[split] = (start, start + len(part))
        start += len(part)
    rule = f"by character position: train / validation / test = {fractions[0]:.0%} / {fractions[1]:.0%} / rest"
    return TextCorpus(name, splits, rule, boundaries)


@register_dataset("tinyshakespeare", "Tiny Shakespeare from a local file, split 90/5/5 by character position")
def load_tinyshakespeare(data_root: str | os.PathLike | None = None, download: bool = False,
                         fractions: tuple[float, float, float] = FRACTIONS) -> TextCorpus:
    """Tiny Shakespeare as train / validation / test text (see the module docstring)."""
    how = (f"Set {ENV_VAR} (or pass data_root=...) to a folder holding text/tinyshakespeare/ in the shared-data "
           "layout. Or use load_dataset('hf:wikitext', download=True) for another language-modelling corpus.")
    if download:
        how += " (download=True has no effect here: this entry only reads local files.)"
    with gzip.open(require_file(data_root, TINYSHAKESPEARE_FILE, how), "rt", encoding="utf-8", newline="") as file:
        text = file.read()
    return corpus_by_position(text, "tinyshakespeare", fractions)
