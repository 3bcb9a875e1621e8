"""A local Hugging Face folder as a teacher of the task its ``config.json`` names in
``architectures``: a sequence classifier, a causal language model or an extractive QA model.
The config is read as JSON and the weights and tokenizer offline: no model code from the
folder runs (``trust_remote_code`` stays off) and nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import torch.nn as nn

from fewshot_kd.errors import CorruptFileError, UnsupportedModelError
from fewshot_kd.teachers.hf_folder import folder_tokenizer, load_hf_classifier, pretrained_weights

CLASSIFICATION, CAUSAL_LM, EXTRACTIVE_QA = "classification", "causal_lm", "extractive_qa"
ARCHITECTURE_ENDINGS = {CLASSIFICATION: ("ForSequenceClassification",), CAUSAL_LM: ("ForCausalLM", "LMHeadModel"),
                        EXTRACTIVE_QA: ("ForQuestionAnswering",)}
SUPPORTED = ("*ForSequenceClassification (classification), *ForCausalLM / *LMHeadModel (causal LM, GPT-2 "
             "architecture) or *ForQuestionAnswering (extractive QA)")


def folder_task(folder: Path) -> str:
    """The task of the model in ``folder``, from its config's ``architectures`` (a config that
    names none is read as a sequence classifier, as before causal LMs and QA models were)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        names = list(config.get("architectures") or [])
    except (OSError, ValueError, AttributeError, TypeError) as error:
        raise CorruptFileError(f"{folder / 'config.json'} is not a readable Hugging Face config "
                               f"({type(error).__name__}: {str(error)[:200]})") from None
    if not names:
        return CLASSIFICATION
    for task, endings in ARCHITECTURE_ENDINGS.items():
        if any(str(name).endswith(endings) for name in names):
            return task
    raise UnsupportedModelError(f"{folder} holds a {names[0]}, not a sequence classifier, causal language model or "
                                f"extractive QA model; a teacher folder needs {SUPPORTED}")


def load_hf_folder(folder: Path) -> nn.Module:
    """The teacher in ``folder``: an :class:`~fewshot_kd.teachers.hf_folder.HFSequenceClassifier`,
    or the causal LM / QA model itself with its tokenizer as ``.tokenizer`` (as adapt() reads it)."""
    task = folder_task(folder)
    if task == CLASSIFICATION:
        return load_hf_classifier(folder)
    from transformers import AutoModelForCausalLM, AutoModelForQuestionAnswering

    from fewshot_kd.models._minilm import ATTENTION, quiet_transformers

    auto_class = AutoModelForCausalLM if task == CAUSAL_LM else AutoModelForQuestionAnswering
    with quiet_transformers():
        model = pretrained_weights(auto_class, folder, attn_implementation=ATTENTION)
    model.tokenizer = folder_tokenizer(folder)
    return model.eval()
