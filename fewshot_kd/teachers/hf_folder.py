"""A local Hugging Face sequence-classification folder (``save_pretrained`` output: config,
weights, tokenizer) as a teacher that takes a list of strings and returns logits; and reading a
folder's weights and tokenizer offline, as the causal-LM and QA folders are read too."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from fewshot_kd.errors import BadInputError, CorruptFileError
from fewshot_kd.models._shared_tokenizer import SharesTokenizerOnCopy


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model")


def is_hf_folder(folder: Path) -> bool:
    return folder.is_dir() and (folder / "config.json").is_file()


class HFSequenceClassifier(SharesTokenizerOnCopy, nn.Module):
    """``texts -> tokenizer -> model -> logits`` for any ``*ForSequenceClassification`` model.
    ``arch`` describes it (``create_model(**model.arch)`` builds a randomly initialised twin),
    so adapt() exports it with its architecture and ``load_student`` rebuilds it."""

    def __init__(self, model: nn.Module, tokenizer, max_length: int = 128) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length

    @property
    def num_classes(self) -> int:
        return int(self.model.config.num_labels)

    @property
    def arch(self) -> dict:
        """The registry name ``hf_sequence_classifier`` with the model's config as JSON, its
        ``max_length`` and where its tokenizer was read from (``None`` without one)."""
        source = getattr(self.tokenizer, "name_or_path", None) if self.tokenizer is not None else None
        config = json.loads(self.model.config.to_json_string(use_diff=False))
        config.pop("_name_or_path", None)
        return {"name": "hf_sequence_classifier", "config": config, "max_length": self.max_length,
                "tokenizer": str(source) if source else None}

    def forward_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from token ids ``[N, T]`` (and their mask; token types are all zeros)."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def forward(self, texts: list[str]) -> torch.Tensor:
        if isinstance(texts, str):
            raise TypeError("pass a list of strings, not one string: model([text])")
        if self.tokenizer is None:
            raise BadInputError("this model was built without a tokenizer: call forward_ids(input_ids, attention_mask), "
                                "or build it with tokenizer=<a folder holding the tokenizer files>")
        encoded = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
        device = next(self.model.parameters()).device
        return self.model(**{k: v.to(device) for k, v in encoded.items()}).logits


def load_hf_classifier(folder: Path, max_length: int = 128) -> HFSequenceClassifier:
    """The model and tokenizer ``save_pretrained`` wrote to ``folder``, read offline. No remote
    code runs (``trust_remote_code`` stays off); ``.bin`` weights load with ``weights_only``."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return _load(folder, max_length)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _load(folder: Path, max_length: int) -> HFSequenceClassifier:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise CorruptFileError(f"{folder / 'config.json'} is not a readable Hugging Face config "
                               f"({type(error).__name__}: {str(error)[:200]})") from None
    kinds = [a for a in (config.architectures or []) if a.endswith("ForSequenceClassification")]
    if config.architectures and not kinds:
        raise BadInputError(f"{folder} holds a {config.architectures[0]}, not a sequence classifier; a teacher "
                            f"needs a *ForSequenceClassification model (its head gives the class logits)")
    model = pretrained_weights(AutoModelForSequenceClassification, folder)
    return HFSequenceClassifier(model.eval(), folder_tokenizer(folder), max_length)


def pretrained_weights(auto_class, folder: Path, **kwargs) -> nn.Module:
    """``auto_class.from_pretrained(folder)`` offline, without remote code; unreadable weights
    raise :class:`CorruptFileError`."""
    from safetensors import SafetensorError

    try:
        return auto_class.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False, **kwargs)
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise CorruptFileError(f"{folder}: its weights do not load ({type(error).__name__}: "
                               f"{str(error).splitlines()[0][:200]}); save the model again with save_pretrained") from None


def folder_tokenizer(folder: Path):
    """The tokenizer ``save_pretrained`` wrote to ``folder``, read offline; a folder without
    tokenizer files raises (transformers would build an empty one)."""
    from transformers import AutoTokenizer

    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise BadInputError(f"{folder} has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...); save the "
                            f"tokenizer beside the model with tokenizer.save_pretrained({str(folder)!r})")
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, TypeError) as error:
        raise BadInputError(f"{folder} has no usable tokenizer ({type(error).__name__}); save it beside the model "
                            f"with tokenizer.save_pretrained({str(folder)!r})") from None
