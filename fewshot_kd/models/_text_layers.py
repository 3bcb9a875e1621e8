"""The transformer blocks of a BERT-family encoder (or a GPT-2): finding them, choosing, keeping some."""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch.nn as nn

from fewshot_kd.errors import UnsupportedLayerError


_BLOCK_LISTS = (("encoder", "layer"), ("transformer", "layer"), ("transformer", "h"))
"""Where models keep their blocks: BERT / RoBERTa / ELECTRA / MiniLM, DistilBERT, GPT-2."""


def _layers_owner(encoder: nn.Module) -> tuple[nn.Module, str]:
    for owner_name, attribute in _BLOCK_LISTS:
        owner = getattr(encoder, owner_name, None)
        if isinstance(getattr(owner, attribute, None), nn.ModuleList):
            return owner, attribute
    raise UnsupportedLayerError(
        f"cannot find the transformer blocks of {type(encoder).__name__}: expected encoder.layer or "
        "transformer.layer (a BERT-family model) or transformer.h (a GPT-2)"
    )


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a BERT-family encoder (``encoder.layer`` in BERT /
    RoBERTa / ELECTRA / MiniLM, ``transformer.layer`` in DistilBERT) or of a GPT-2
    (``transformer.h``)."""
    owner, attribute = _layers_owner(encoder)
    return getattr(owner, attribute)


def block_names(model: nn.Module) -> list[str]:
    """The module names of a text model's transformer blocks (``model.encoder``'s), in order."""
    names = {id(m): n for n, m in model.named_modules()}
    return [names[id(block)] for block in encoder_layers(model.encoder)]


def layer_count(keep) -> int | None:
    """The number of layers ``keep`` asks for when it gives only a number (``3`` or ``"3"``:
    which ones is the policy's choice), else ``None``."""
    if isinstance(keep, bool):
        return None
    if isinstance(keep, int):
        return keep
    if isinstance(keep, str) and keep.strip().isdigit():
        return int(keep)
    return None


def layer_indices(keep: Sequence[int] | str | int, num_layers: int, choice: Sequence[int] | None = None) -> list[int]:
    """``"last 3"`` / ``"first 2"`` / ``[3, 4, 5]`` (negative indices allowed) as a strictly
    increasing list of layer indices in ``range(num_layers)``. A bare count (``3``) keeps
    ``choice`` (a policy's :attr:`~fewshot_kd.adapt.Policy.text_layers`) when it holds that many
    layers, else the last ``count``."""
    count = layer_count(keep)
    if count is not None:
        if not 1 <= count <= num_layers:
            raise ValueError(f"cannot keep {count} of {num_layers} layers")
        if choice is not None and len(choice) == count:
            return layer_indices(list(choice), num_layers)
        return list(range(num_layers - count, num_layers))
    if isinstance(keep, str):
        match = re.fullmatch(r"\s*(first|last)\s+(\d+)\s*", keep.lower())
        if not match:
            raise ValueError(f"keep must look like 'last 3', 'first 2', a count like 3, or a list of indices, got {keep!r}")
        count = int(match.group(2))
        if not 1 <= count <= num_layers:
            raise ValueError(f"cannot keep {count} of {num_layers} layers")
        start = 0 if match.group(1) == "first" else num_layers - count
        return list(range(start, start + count))
    if not isinstance(keep, Sequence) or len(keep) == 0:
        raise ValueError(f"keep must be a non-empty list of layer indices or 'last N', got {keep!r}")
    indices = []
    for index in keep:
        if not isinstance(index, int) or not -num_layers <= index < num_layers:
            raise ValueError(f"layer index {index!r} is out of range for {num_layers} layers")
        indices.append(index % num_layers)
    if any(b <= a for a, b in zip(indices, indices[1:])):
        raise ValueError(f"layer indices must be distinct and increasing, got {list(keep)}")
    return indices


def renumber_blocks_(blocks: list[nn.Module]) -> list[nn.Module]:
    """Set every ``layer_idx`` inside ``blocks`` to the block's new position (transformers
    uses it to index the key-value cache), in place; returns ``blocks``."""
    for position, block in enumerate(blocks):
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = position
    return blocks


def keep_layers_(encoder: nn.Module, indices: Sequence[int]) -> nn.Module:
    """Drop every block of ``encoder`` except ``indices`` (in place), renumber the kept
    blocks' ``layer_idx`` and set ``config.num_hidden_layers``."""
    layers = encoder_layers(encoder)
    kept = renumber_blocks_([layers[i] for i in indices])
    owner, attribute = _layers_owner(encoder)
    setattr(owner, attribute, nn.ModuleList(kept))
    encoder.config.num_hidden_layers = len(kept)
    return encoder
