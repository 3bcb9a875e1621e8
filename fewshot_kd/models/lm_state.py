"""A causal LM's weights without the copy of a tied head (safetensors refuses shared tensors),
and loading them back with the head re-tied."""

from __future__ import annotations

import torch
import torch.nn as nn

from fewshot_kd.errors import CorruptFileError


def tied_keys(model: nn.Module) -> set[str]:
    """State-dict keys whose tensor is an earlier key's very tensor (a head tied to the embedding)."""
    seen, tied = set(), set()
    for key, value in model.state_dict(keep_vars=True).items():
        if id(value) in seen:
            tied.add(key)
        seen.add(id(value))
    return tied


def lm_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` without the keys of tied copies."""
    tied = tied_keys(model)
    return {k: v for k, v in model.state_dict().items() if k not in tied}


def load_lm_state_(model: nn.Module, state: dict[str, torch.Tensor], source: str = "the weights") -> nn.Module:
    """Load ``state`` (from :func:`lm_state_dict`) into ``model``, whose tied copies it may lack;
    :class:`CorruptFileError` when anything else is missing, extra or of another shape."""
    expected = model.state_dict()
    tied = tied_keys(model)
    missing = sorted(set(expected) - set(state) - tied)
    unexpected = sorted(set(state) - set(expected))
    reshaped = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or reshaped:
        raise CorruptFileError(f"{source} do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}, "
                               f"other shapes {reshaped[:5]}")
    model.load_state_dict(state, strict=False)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    return model
