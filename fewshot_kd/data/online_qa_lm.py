"""Hub copies of the QA and language-modelling datasets, fetched by Hugging Face ``datasets``.

``hf:squad`` / ``hf:squad_v2`` (train / validation as ``test``) and ``hf:wikitext``
(WikiText-2 raw: train / validation / test, each split's lines joined). As the other ``hf:``
entries: ``download=False`` reads only ``$FEWSHOT_KD_CACHE/hf_datasets`` and never touches the
network; a missing copy raises :class:`~fewshot_kd.errors.DataNotFoundError`.
"""

from __future__ import annotations

from fewshot_kd.data._hf import hf_cache_dir, hf_session
from fewshot_kd.data.catalog import register_dataset
from fewshot_kd.data.lm_corpus import TextCorpus
from fewshot_kd.data.online import _not_found
from fewshot_kd.data.qa_examples import QADataset, QASplits, qa_example_from_row

HUB_QA = {"squad": "rajpurkar/squad", "squad_v2": "rajpurkar/squad_v2"}
WIKITEXT = ("Salesforce/wikitext", "wikitext-2-raw-v1")


def _load_hub(repo: str, config: str | None, download: bool):
    where = hf_cache_dir()
    with hf_session(offline=not download) as datasets:
        try:
            return datasets.load_dataset(repo, config, cache_dir=str(where))
        except Exception as error:  # datasets raises ConnectionError, FileNotFoundError, DatasetNotFoundError...
            label = f"Hugging Face dataset {repo!r}" + (f" ({config})" if config else "")
            raise _not_found(label, where, error, download) from error


def load_hub_qa(short: str, download: bool = False) -> QASplits:
    """``hf:squad`` / ``hf:squad_v2``: the hub's train split as ``train``, validation as ``test``."""
    loaded = _load_hub(HUB_QA[short], None, download)
    name = f"hf:{short}"
    splits = {ours: QADataset([qa_example_from_row(row) for row in loaded[theirs]], f"{name}/{ours}")
              for ours, theirs in (("train", "train"), ("test", "validation"))}
    return QASplits(name, splits, split_rule="the hub's train and validation splits")


def load_wikitext(data_root=None, download: bool = False) -> TextCorpus:
    """WikiText-2 (raw) as train / validation / test text, each split's lines joined as stored."""
    loaded = _load_hub(*WIKITEXT, download)
    splits = {split: "".join(loaded[split]["text"]) for split in ("train", "validation", "test")}
    return TextCorpus("hf:wikitext", splits, split_rule="the hub's wikitext-2-raw-v1 splits")


def _qa_loader(short: str):
    def load(data_root=None, download: bool = False) -> QASplits:
        return load_hub_qa(short, download)

    load.__name__ = f"load_hf_{short}"
    return load


for _short, _repo in HUB_QA.items():
    register_dataset(f"hf:{_short}", f"Hugging Face {_repo}: extractive QA, train / validation as test")(
        _qa_loader(_short))
register_dataset("hf:wikitext", f"Hugging Face {WIKITEXT[0]} ({WIKITEXT[1]}): language modelling text")(load_wikitext)
