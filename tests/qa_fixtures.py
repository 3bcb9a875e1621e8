"""A tiny random-weight extractive-QA teacher on MiniLM's tokenizer, for the QA tests."""

from __future__ import annotations

import torch


def tiny_qa_teacher(num_heads: int = 4):
    """A seeded random 4-layer BertForQuestionAnswering (width 32) on MiniLM's tokenizer, in eval
    mode, with the tokenizer set as ``.tokenizer``."""
    from fewshot_kd.models._minilm import load_tokenizer
    from fewshot_kd.models.qa_model import qa_model_from_config
    from fewshot_kd.models.text import tiny_bert_config

    tokenizer = load_tokenizer()
    torch.manual_seed(0)
    config = tiny_bert_config(len(tokenizer), tokenizer.pad_token_id, hidden_size=32, num_layers=4,
                              num_heads=num_heads, intermediate_size=64, max_position_embeddings=64)
    model = qa_model_from_config(config).eval()
    model.tokenizer = tokenizer
    return model
