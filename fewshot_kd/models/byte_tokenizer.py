"""A byte-level tokenizer (256 ids, one per UTF-8 byte): needs no vocabulary file, so a
language model on any text works offline. On ASCII text such as Tiny Shakespeare one token
is one character."""

from __future__ import annotations

import torch

BYTE_VOCAB_SIZE = 256


class ByteTokenizer:
    """``encode(text) -> list[int]`` and ``decode(ids) -> str`` over UTF-8 bytes."""

    vocab_size = BYTE_VOCAB_SIZE

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def encode_tensor(self, text: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).long()

    def __len__(self) -> int:
        return BYTE_VOCAB_SIZE
