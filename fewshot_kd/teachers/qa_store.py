"""Train an extractive-QA teacher from its recipe once, cache it (safetensors + JSON), reload it after."""

from __future__ import annotations

import os
import time

import torch
import torch.nn as nn

from fewshot_kd.data.catalog import load_dataset
from fewshot_kd.data.qa_examples import QASplits
from fewshot_kd.errors import BadInputError, CorruptFileError
from fewshot_kd.files import load_tensors, read_json, save_tensors, write_json
from fewshot_kd.measure.squad_eval import evaluation_questions, squad_evaluation
from fewshot_kd.models.qa_features import qa_features
from fewshot_kd.teachers.qa_recipe import QATeacherRecipe
from fewshot_kd.teachers.qa_train import train_qa_model


def build_qa_model(recipe: QATeacherRecipe) -> nn.Module:
    """The recipe's untrained model, its tokenizer attached as ``.tokenizer``: the encoder's
    pretrained weights with a fresh span head, or with ``model_kwargs`` (keyword arguments of
    :func:`~fewshot_kd.models.text.tiny_bert_config`) a random small BERT on that encoder's tokenizer."""
    from fewshot_kd.models._minilm import load_tokenizer
    from fewshot_kd.models.qa_model import qa_model, qa_model_from_config
    from fewshot_kd.models.text import tiny_bert_config

    if recipe.model_kwargs:
        tokenizer = load_tokenizer(recipe.encoder)
        model = qa_model_from_config(tiny_bert_config(len(tokenizer), tokenizer.pad_token_id, **recipe.model_kwargs))
    else:
        model, tokenizer = qa_model(recipe.encoder)
    model.tokenizer = tokenizer
    return model


def _load_state_(model: nn.Module, state: dict, source: str) -> nn.Module:
    expected = model.state_dict()
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in state):
        raise CorruptFileError(f"{source} does not fit the recipe's model; delete the folder to train it again")
    model.load_state_dict(state)
    return model


def load_or_train_qa_teacher(recipe: QATeacherRecipe, data_root: str | os.PathLike | None = None,
                             store_root: str | os.PathLike | None = None, progress: bool = True,
                             retrain: bool = False) -> tuple[nn.Module, dict]:
    """The QA model a recipe describes (tokenizer attached as ``.tokenizer``): loaded from the
    cache when present, else fine-tuned on a seeded draw of the train split's questions, scored
    (EM / F1) on a fixed subset of the test split, and cached. Returns ``(model, info)``."""
    from fewshot_kd.teachers.store import teacher_dir

    folder = teacher_dir(recipe, store_root)
    weights, info_path = folder / "model.safetensors", folder / "teacher.json"
    torch.manual_seed(recipe.train.seed)
    model = build_qa_model(recipe)
    if weights.is_file() and info_path.is_file() and not retrain:
        _load_state_(model, load_tensors(weights), str(weights))
        return model.eval(), read_json(info_path)
    splits = load_dataset(recipe.dataset, data_root=data_root)
    if not isinstance(splits, QASplits):
        raise BadInputError(f"recipe {recipe.name}: dataset {recipe.dataset!r} is not question answering (QASplits)")
    config = recipe.train
    count = min(config.max_questions, len(splits.train))
    questions = splits.train.few_shot(count, config.seed)
    features = qa_features(model.tokenizer, list(questions), config.max_length, config.doc_stride)
    start = time.perf_counter()
    history = train_qa_model(model, features, config, progress, description=f"teacher {recipe.name}")
    seconds = time.perf_counter() - start
    evaluated = evaluation_questions(splits.test, recipe.eval_questions)
    scores = squad_evaluation(model, model.tokenizer, evaluated, config.max_length, config.doc_stride)
    info = {
        "recipe": recipe.to_dict(),
        "fingerprint": recipe.fingerprint(),
        "kind": "extractive_qa",
        "train_split": {"split": "train", "questions": count, "windows": len(features),
                        "articles": len(questions.titles), "rule": splits.split_rule},
        "train_seconds": round(seconds, 2),
        "history": history,
        "evaluation": {"split": "test", **scores},
    }
    save_tensors(weights, model.state_dict(), metadata={"recipe": recipe.name, "fingerprint": recipe.fingerprint()})
    write_json(info_path, info)
    return model.eval(), info
