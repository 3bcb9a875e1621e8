"""Train a causal-LM teacher from its recipe once, cache it (safetensors + JSON), reload it after."""

from __future__ import annotations

import os
import time

import torch
import torch.nn as nn

from fewshot_kd.data.catalog import load_dataset
from fewshot_kd.data.lm_corpus import TextCorpus
from fewshot_kd.errors import BadInputError
from fewshot_kd.files import load_tensors, read_json, save_tensors, write_json
from fewshot_kd.measure.perplexity import sliding_window_perplexity
from fewshot_kd.models.byte_tokenizer import ByteTokenizer
from fewshot_kd.models.causal_lm import gpt2_lm
from fewshot_kd.models.lm_state import lm_state_dict, load_lm_state_
from fewshot_kd.teachers.lm_recipe import LMTeacherRecipe
from fewshot_kd.teachers.lm_train import train_causal_lm

EVAL_WINDOW, EVAL_STRIDE = 256, 128
"""The sliding window (and stride) of the validation perplexity the cache records."""


def load_or_train_lm_teacher(recipe: LMTeacherRecipe, data_root: str | os.PathLike | None = None,
                             store_root: str | os.PathLike | None = None, progress: bool = True,
                             retrain: bool = False) -> tuple[nn.Module, dict]:
    """The GPT-2 a recipe describes (byte tokenizer attached as ``.tokenizer``): loaded from the
    cache when present, else trained on the corpus's train split, its validation perplexity
    measured, and cached. Returns ``(model, info)``."""
    from fewshot_kd.teachers.store import teacher_dir

    folder = teacher_dir(recipe, store_root)
    weights, info_path = folder / "model.safetensors", folder / "teacher.json"
    model = gpt2_lm(recipe.model_kwargs)
    model.tokenizer = ByteTokenizer()
    if weights.is_file() and info_path.is_file() and not retrain:
        load_lm_state_(model, load_tensors(weights), str(weights))
        return model.eval(), read_json(info_path)
    if recipe.train.sequence_length > model.config.n_positions:
        raise BadInputError(f"recipe {recipe.name}: training windows of {recipe.train.sequence_length} tokens exceed "
                            f"the model's context of {model.config.n_positions}")
    corpus = load_dataset(recipe.dataset, data_root=data_root)
    if not isinstance(corpus, TextCorpus):
        raise BadInputError(f"recipe {recipe.name}: dataset {recipe.dataset!r} is not running text (a TextCorpus)")
    train_ids = model.tokenizer.encode_tensor(corpus.train)
    torch.manual_seed(recipe.train.seed)
    model = gpt2_lm(recipe.model_kwargs)
    model.tokenizer = ByteTokenizer()
    start = time.perf_counter()
    history = train_causal_lm(model, train_ids, recipe.train, progress, description=f"teacher {recipe.name}")
    seconds = time.perf_counter() - start
    validation = sliding_window_perplexity(model, model.tokenizer.encode_tensor(corpus["validation"]),
                                           EVAL_WINDOW, EVAL_STRIDE)
    info = {
        "recipe": recipe.to_dict(),
        "fingerprint": recipe.fingerprint(),
        "kind": "causal_lm",
        "train_split": {"split": "train", "tokens": len(train_ids), "rule": corpus.split_rule},
        "train_seconds": round(seconds, 2),
        "history": history,
        "validation_perplexity": validation,
    }
    save_tensors(weights, lm_state_dict(model), metadata={"recipe": recipe.name, "fingerprint": recipe.fingerprint()})
    write_json(info_path, info)
    return model.eval(), info
