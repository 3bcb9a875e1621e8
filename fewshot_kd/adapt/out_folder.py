"""An output folder that appears whole or not at all: written beside its place, then renamed."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fewshot_kd.errors import BadInputError


def check_free(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that is a file, or a folder holding files unless ``overwrite``."""
    if out.is_file():
        raise BadInputError(f"--out {out} is a file; pass a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise BadInputError(f"--out {out} already holds files; pass --overwrite to replace them, or another folder")


@contextmanager
def staged_folder(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty hidden folder beside ``out``; when the block succeeds it becomes ``out``
    (the old ``out`` is removed only then), when it fails it is deleted and ``out`` is untouched."""
    check_free(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.{secrets.token_hex(4)}.partial"
    stage.mkdir()  # the mode a plain mkdir gives (mkdtemp's would stay private)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        out.rename(old / "previous")
    stage.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def publish_files(work: Path, export_dir: Path, artifact: Path) -> Path:
    """Move the finished files from the work folder into ``export_dir`` (only on success, so a
    failed adapt() leaves nothing half-written there); returns where ``artifact`` now lies."""
    export_dir.mkdir(parents=True, exist_ok=True)
    for path in work.iterdir():
        if path.is_file():
            shutil.move(str(path), export_dir / path.name)
    return export_dir / artifact.name
