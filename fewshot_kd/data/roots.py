"""Where datasets and weights live on disk, and a clear error when they are not there."""

from __future__ import annotations

import os
from pathlib import Path

from fewshot_kd.errors import DataNotFoundError

ENV_VAR = "FEWSHOT_KD_DATA"
CACHE_ENV_VAR = "FEWSHOT_KD_CACHE"
_REPO_ROOT = Path(__file__).resolve().parents[2]


def default_data_root() -> Path | None:
    """``$FEWSHOT_KD_DATA``, else ``../shared/data`` beside the working directory or the
    source checkout, else ``None`` (no local data; the embedded digits still work)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    for base in (Path.cwd(), _REPO_ROOT):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path | None:
    """The data root from an explicit flag, else :func:`default_data_root`."""
    return Path(data_root).expanduser() if data_root is not None else default_data_root()


def require_file(data_root: str | os.PathLike | None, relative: str, how_to_get: str) -> Path:
    """``data_root / relative`` if it exists, else a :class:`DataNotFoundError` naming the
    path looked at and how to get the file."""
    root = resolve_data_root(data_root)
    if root is None:
        raise DataNotFoundError(
            f"{relative} needs a data root, and none is set: pass data_root=... (or --data-root), "
            f"or set {ENV_VAR}=/path/to/data. {how_to_get}"
        )
    path = root / relative
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist (data root {root}). {how_to_get}")
    return path


def cache_dir() -> Path:
    """Where fewshot_kd caches decoded data and trained teachers: ``$FEWSHOT_KD_CACHE`` or
    ``~/.cache/fewshot_kd``."""
    path = Path(os.environ.get(CACHE_ENV_VAR, Path.home() / ".cache" / "fewshot_kd")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
