"""Tiny random-weight text classifiers for the ONNX and reload tests: an 11-word vocabulary,
2 layers of width 16, heads with unit-scale weights so the logits are O(1)."""

from __future__ import annotations

import pytest
import torch

from path_fixtures import tiny_bert_folder

WORDS = ("good", "bad", "movie", "the", "is", "not")


def texts(n: int, offset: int = 0) -> list[str]:
    """``n`` texts of 1 to 7 words, so a batch pads to different lengths."""
    return [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(1 + (i * 3) % 7)) for i in range(offset, offset + n)]


def tiny_text_classifier(folder, num_classes: int = 3):
    """A fewshot_kd TextClassifier reading ``folder``'s 11-word tokenizer (written there)."""
    transformers = pytest.importorskip("transformers")
    from fewshot_kd.models._minilm import encoder_from_config
    from fewshot_kd.models.text import TextClassifier, tiny_bert_config

    tiny_bert_folder(folder)
    torch.manual_seed(0)
    encoder = encoder_from_config(tiny_bert_config(11, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                                                   max_position_embeddings=32))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = TextClassifier(encoder, tokenizer, num_classes, max_length=32, tokenizer_source=str(folder))
    torch.nn.init.normal_(model.head.weight, std=1.0)
    return model.eval()


def tiny_hf_classifier(folder, num_labels: int = 3):
    """A Hugging Face BertForSequenceClassification student as load_teacher reads a folder."""
    from fewshot_kd.teachers.by_path import load_teacher

    tiny_bert_folder(folder, num_labels=num_labels)
    model = load_teacher(folder)
    torch.nn.init.normal_(model.model.classifier.weight, std=1.0)
    return model.eval()
