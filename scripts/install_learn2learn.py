"""Build and install learn2learn 0.2.0 on Python >= 3.11.

learn2learn 0.2.0 publishes no wheels, and the C files in its sdist were generated
by Cython 0.29, which includes ``longintrepr.h`` (removed in Python 3.11; upstream
issue learnables/learn2learn#413). This script downloads the sdist from PyPI,
regenerates the C sources from the ``.pyx`` files with Cython 3 (``cythonize -3``),
trims ``install_requires`` to what ``import learn2learn`` needs (``gsutil`` and
``qpth`` only serve the QuickDraw download and MetaOptNet, which fewshot_kd does not
use), and installs the result into the running interpreter.

Idempotent: it does nothing when learn2learn 0.2.0 already imports.

    python scripts/install_learn2learn.py [--force]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "0.2.0"
RUNTIME_REQUIREMENTS = ["numpy", "scipy", "requests", "tqdm", "gym>=0.26"]
PYX_DIR = Path("learn2learn") / "data"


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def already_installed() -> bool:
    try:
        if importlib.metadata.version("learn2learn") != VERSION:
            return False
    except importlib.metadata.PackageNotFoundError:
        return False
    probe = "import learn2learn.algorithms, learn2learn.data.task_dataset"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def trim_requirements(setup_py: Path) -> None:
    """Replace install_requires with the packages learn2learn imports at import time."""
    text = setup_py.read_text()
    listed = ", ".join(repr(r) for r in RUNTIME_REQUIREMENTS)
    new, count = re.subn(r"install_requires=\[.*?\]", f"install_requires=[{listed}]", text, flags=re.S)
    if count != 1:
        raise RuntimeError(f"could not find install_requires in {setup_py}; the sdist layout changed")
    setup_py.write_text(new)


def build_and_install(workdir: Path) -> None:
    _pip("install", "--quiet", "cython>=3", "setuptools", "wheel", "numpy", *RUNTIME_REQUIREMENTS[1:])
    # --no-binary for learn2learn only (build tools come as wheels); no build isolation, so its
    # metadata step uses the Cython installed above instead of compiling one from source
    _pip("download", "--quiet", "--no-deps", "--no-binary", "learn2learn", "--no-build-isolation",
         f"learn2learn=={VERSION}", "-d", str(workdir))
    sdist = next(workdir.glob(f"learn2learn-{VERSION}.tar.gz"))
    with tarfile.open(sdist) as tar:
        tar.extractall(workdir, filter="data")
    src = workdir / f"learn2learn-{VERSION}"
    pyx_files = sorted(str(p) for p in (src / PYX_DIR).glob("*.pyx"))
    if not pyx_files:
        raise RuntimeError(f"no .pyx files under {src / PYX_DIR}")
    subprocess.run([sys.executable, "-m", "Cython.Build.Cythonize", "-3", "-q", "-f", *pyx_files], check=True)
    trim_requirements(src / "setup.py")
    _pip("install", "--quiet", "--no-build-isolation", str(src))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if learn2learn already imports")
    args = parser.parse_args(argv)
    if already_installed() and not args.force:
        print(f"learn2learn {VERSION} already installed; nothing to do")
        return 0
    with tempfile.TemporaryDirectory(prefix="l2l-build-") as tmp:
        build_and_install(Path(tmp))
    if not already_installed():
        raise SystemExit("learn2learn was installed but does not import; rerun with --force and read the log")
    print(f"learn2learn {VERSION} built with Cython 3 and installed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
