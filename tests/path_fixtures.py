"""Small on-disk fixtures for the by-path tests: an image folder and a Hugging Face folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image


def image_folder(root, classes=("cat", "dog", "eel"), per_class=5, size=(12, 10), mode="RGB", seed=0):
    """``root/<class>/<i>.png`` with random pixels; returns ``{(class, i): uint8 array}``."""
    rng = np.random.default_rng(seed)
    written = {}
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(pixels, mode).save(root / name / f"{i}.png")
            written[(name, i)] = pixels
    return written


def tiny_bert_folder(folder, num_labels=2, tokenizer=True):
    """A random 2-layer BertForSequenceClassification with an 11-word tokenizer, saved to ``folder``."""
    transformers = pytest.importorskip("transformers")
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "the", "is", "not"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=32, num_labels=num_labels)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    model.save_pretrained(str(folder))
    if tokenizer:
        transformers.BertTokenizer.from_pretrained(str(folder)).save_pretrained(str(folder))  # reads vocab.txt
    else:
        (folder / "vocab.txt").unlink()
    return model


def tiny_gpt2_folder(folder, text):
    """A random 2-block GPT2LMHeadModel and a word-level tokenizer of ``text``'s words ([UNK] first),
    saved to ``folder`` with save_pretrained; returns the tokenizer."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    splitter = pre_tokenizers.Whitespace()
    words = sorted({word for word, _ in splitter.pre_tokenize_str(text)})
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = splitter
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]")
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=len(words) + 1)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return fast
