"""Atomic, code-free file writing and loading: JSON, safetensors, ``torch.save`` state.
A file that is truncated or corrupted raises :class:`CorruptFileError` naming it."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fewshot_kd.errors import CorruptFileError

# a cut zip archive is a RuntimeError or OSError, a cut or foreign pickle an UnpicklingError / EOFError
_TORCH_ERRORS = (RuntimeError, OSError, pickle.UnpicklingError, EOFError, ValueError)
_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    with _UMASK_LOCK:  # os.umask can only be read by setting it: briefly to the strictest common one
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def plain_file_mode(path: Path) -> int:
    """The mode ``open(path, "w")`` would leave: an existing file's, else 0o666 less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step,
    on error it is removed, so readers never see a half-written file. The file gets the mode
    a plain write would give (the temporary one stays private until then)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, plain_file_mode(path))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | os.PathLike, obj: Any, compact: bool = False) -> Path:
    """``obj`` as JSON, written atomically; indented unless ``compact`` (no spaces)."""
    with atomic_path(path) as tmp:
        text = json.dumps(obj, separators=(",", ":"), default=str) if compact else json.dumps(obj, indent=2, default=str)
        tmp.write_text(text + "\n")
    return Path(path)


@contextmanager
def reading(path: str | os.PathLike, what: str, errors: tuple[type[BaseException], ...]) -> Iterator[None]:
    """Turn a parser's ``errors`` while reading ``path`` into a :class:`CorruptFileError` naming it."""
    try:
        yield
    except (CorruptFileError, FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except errors as error:
        detail = (str(error).strip().splitlines() or [""])[0][:200]
        raise CorruptFileError(f"{path} is not a readable {what} ({type(error).__name__}: {detail}); "
                               f"it may be truncated or corrupted: write it again") from None


def read_json(path: str | os.PathLike) -> Any:
    with reading(path, "JSON file", (ValueError,)):
        return json.loads(Path(path).read_text())


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """safetensors file written atomically; tensors are made contiguous and detached."""
    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=metadata)
    return Path(path)


def load_tensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    with reading(path, "safetensors file", (SafetensorError, ValueError)):
        return load_file(str(path), device=str(device))


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` written atomically (for checkpoints that hold tensors and plain data)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def load_torch(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` that never unpickles code (``weights_only=True``): a file that would
    need it is refused like a corrupted one."""
    with reading(path, "checkpoint of tensors and plain data", _TORCH_ERRORS):
        return torch.load(path, map_location=map_location, weights_only=True)
