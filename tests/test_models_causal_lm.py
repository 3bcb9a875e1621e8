"""GPT-2 causal LMs: the small configuration, the every-other-block student, local folders,
and the byte tokenizer."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="the causal LMs need transformers")

from fewshot_kd.errors import DataNotFoundError, UnsupportedLayerError  # noqa: E402
from fewshot_kd.models.byte_tokenizer import ByteTokenizer  # noqa: E402
from fewshot_kd.models.causal_lm import (  # noqa: E402
    every_other_layer,
    gpt2_lm,
    load_causal_lm_folder,
    small_gpt2_config,
)


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return gpt2_lm(small_gpt2_config(n_positions=32, n_embd=32, n_layer=5, n_head=2, dropout=0.0)).eval()


def test_the_small_config_builds_a_gpt2_with_eager_attention(teacher):
    assert type(teacher).__name__ == "GPT2LMHeadModel" and teacher.config._attn_implementation == "eager"
    assert teacher.config.vocab_size == 256 and len(teacher.transformer.h) == 5
    assert teacher(input_ids=torch.randint(0, 256, (2, 7))).logits.shape == (2, 7, 256)
    with pytest.raises(ValueError, match="divisible"):
        small_gpt2_config(n_embd=30, n_head=4)


def test_every_other_layer_copies_blocks_0_2_4_and_the_rest_of_the_teacher(teacher):
    student = every_other_layer(teacher)
    assert len(student.transformer.h) == 3 and student.config.n_layer == 3 and teacher.config.n_layer == 5
    for kept, index in zip(student.transformer.h, (0, 2, 4)):
        original = teacher.transformer.h[index].state_dict()
        assert all(torch.equal(value, original[name]) for name, value in kept.state_dict().items())
    assert [block.attn.layer_idx for block in student.transformer.h] == [0, 1, 2]
    assert torch.equal(student.transformer.wte.weight, teacher.transformer.wte.weight)
    assert student.transformer.wte.weight.data_ptr() != teacher.transformer.wte.weight.data_ptr()
    assert student.lm_head.weight.data_ptr() == student.transformer.wte.weight.data_ptr()  # still tied
    ids = torch.randint(0, 256, (1, 5))
    generated = student.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert generated.shape == (1, 9)
    with pytest.raises(UnsupportedLayerError):
        every_other_layer(torch.nn.Linear(2, 2))


def test_a_local_causal_lm_folder_loads_offline(tmp_path, teacher):
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = Tokenizer(models.WordLevel({"[UNK]": 0, "to": 1, "be": 2}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]").save_pretrained(tmp_path)
    teacher.save_pretrained(tmp_path)
    model, tokenizer = load_causal_lm_folder(tmp_path)
    assert tokenizer("to be")["input_ids"] == [1, 2]
    ids = torch.tensor([[1, 2, 1]])
    with torch.no_grad():
        assert torch.allclose(model.eval()(input_ids=ids).logits, teacher(input_ids=ids).logits, atol=1e-6)
    with pytest.raises(DataNotFoundError, match="config.json"):
        load_causal_lm_folder(tmp_path / "missing")


def test_the_byte_tokenizer_round_trips_text():
    tokenizer = ByteTokenizer()
    text = "First Citizen:\nBefore we proceed — hear me speak."
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.encode("AB") == [65, 66] and tokenizer.encode_tensor("AB").tolist() == [65, 66]
    assert len(tokenizer) == 256
