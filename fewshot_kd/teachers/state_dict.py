"""Read a state-dict file without running code (safetensors, or ``torch.load`` with
``weights_only=True``) and load it into a model, with errors that say what did not fit."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from fewshot_kd.errors import BadInputError, ClassCountMismatchError, CorruptFileError, DataNotFoundError
from fewshot_kd.files import load_tensors, load_torch

_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "weights")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file or a ``torch.save`` checkpoint (a state dict, or
    one under ``state_dict`` / ``model`` / ...), with a ``module.`` prefix (DataParallel) removed."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"weights file {path} does not exist")
    state = load_tensors(path) if path.suffix == ".safetensors" else load_torch(path)
    while isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        inner = next((state[k] for k in _WRAPPERS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CorruptFileError(f"{path} holds no state dict (a mapping of parameter names to tensors); save one with "
                               f"torch.save(model.state_dict(), path) or safetensors")
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _head(model: nn.Module) -> tuple[str, nn.Module] | None:
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def load_state_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """``model.load_state_dict(state, strict=True)``; a head of another width is a
    :class:`ClassCountMismatchError`, other mismatches a :class:`BadInputError` naming keys."""
    own = model.state_dict()
    wrong = sorted(k for k, v in state.items() if k in own and own[k].shape != v.shape)
    head = _head(model)
    if wrong and head is not None and all(k.startswith(f"{head[0]}.") for k in wrong):
        stored = state[f"{head[0]}.weight"].shape[0] if f"{head[0]}.weight" in state else "?"
        raise ClassCountMismatchError(f"{source}: its classifier ({head[0]}) has {stored} outputs but the model was "
                                      f"built for {head[1].out_features} classes (the data's); use data with "
                                      f"{stored} classes or a checkpoint fine-tuned to {head[1].out_features}")
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if wrong or missing or unexpected:
        raise BadInputError(f"{source} does not fit the {type(model).__name__} architecture: "
                            + "; ".join(f"{what} {keys[:4]}{' ...' if len(keys) > 4 else ''}" for what, keys in
                                        (("missing keys", missing), ("unexpected keys", unexpected),
                                         ("wrong shapes", wrong)) if keys)
                            + ". Check the architecture name matches the checkpoint")
    model.load_state_dict(state, strict=True)
    return model.eval()
