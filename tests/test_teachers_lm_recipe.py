"""The causal-LM teacher recipe: a small GPT-2 trained on a corpus's train split, cached with
its validation perplexity, and reloaded (tied head included) instead of trained again."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="the causal LMs need transformers")

from fewshot_kd.models.byte_tokenizer import ByteTokenizer  # noqa: E402
from fewshot_kd.models.causal_lm import gpt2_lm, small_gpt2_config  # noqa: E402
from fewshot_kd.teachers import get_recipe, load_or_train_teacher  # noqa: E402
from fewshot_kd.teachers.lm_recipe import LMTeacherRecipe, LMTrainConfig  # noqa: E402
from fewshot_kd.teachers.lm_train import train_causal_lm, warmup_cosine  # noqa: E402


def test_the_tinyshakespeare_recipe_is_registered_and_fingerprinted():
    recipe = get_recipe("tinyshakespeare-gpt2")
    assert isinstance(recipe, LMTeacherRecipe) and recipe.dataset == "tinyshakespeare"
    assert LMTeacherRecipe.from_dict(recipe.to_dict()) == recipe
    changed = LMTeacherRecipe.from_dict({**recipe.to_dict(), "train": {**recipe.to_dict()["train"], "steps": 1}})
    assert changed.fingerprint() != recipe.fingerprint()


def test_training_lowers_the_loss_on_a_repetitive_text():
    torch.manual_seed(0)
    model = gpt2_lm(small_gpt2_config(n_positions=32, n_embd=32, n_layer=1, n_head=2, dropout=0.0))
    ids = ByteTokenizer().encode_tensor("abcdefgh" * 200)
    history = train_causal_lm(model, ids, LMTrainConfig(steps=60, lr=1e-2, batch_size=8, sequence_length=16,
                                                        warmup_steps=5), progress=False)
    assert history[-1]["loss"] < 0.5 * history[0]["loss"] and not model.training
    assert warmup_cosine(0, 10, 2) == 0.5 and warmup_cosine(9, 10, 0) > 0


def test_a_recipe_teacher_trains_on_train_caches_and_reloads(shared_data_files, tmp_path):
    root = shared_data_files("text/tinyshakespeare/input.txt.gz")
    recipe = LMTeacherRecipe("tiny-test-gpt2", "tinyshakespeare", {"n_layer": 1, "n_embd": 16, "n_head": 2,
                             "n_positions": 256, "dropout": 0.0}, LMTrainConfig(steps=3, batch_size=2, sequence_length=32))
    model, info = load_or_train_teacher(recipe, data_root=root, store_root=tmp_path, progress=False)
    assert info["kind"] == "causal_lm" and info["train_split"]["tokens"] == 1_003_854
    ppl = info["validation_perplexity"]
    assert (ppl["window"], ppl["stride"]) == (256, 128) and 1 < ppl["perplexity"] < 300
    again, info_again = load_or_train_teacher(recipe, data_root=root, store_root=tmp_path, progress=False)
    assert info_again == info and isinstance(again.tokenizer, ByteTokenizer)
    assert again.lm_head.weight is again.transformer.wte.weight
    ids = torch.randint(0, 256, (1, 10))
    assert torch.allclose(again(input_ids=ids).logits, model(input_ids=ids).logits)
