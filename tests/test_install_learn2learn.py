import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("install_learn2learn", ROOT / "scripts" / "install_learn2learn.py")
installer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(installer)


def test_trim_requirements_rewrites_install_requires(tmp_path):
    setup = tmp_path / "setup.py"
    setup.write_text("install(\n    install_requires=[\n        'gsutil',\n        'qpth>=0.0.15',\n    ],\n)\n")
    installer.trim_requirements(setup)
    text = setup.read_text()
    assert "gsutil" not in text and "qpth" not in text and "'gym>=0.26'" in text


def test_trim_requirements_fails_loudly_on_unknown_layout(tmp_path):
    setup = tmp_path / "setup.py"
    setup.write_text("setup(name='x')\n")
    with pytest.raises(RuntimeError, match="install_requires"):
        installer.trim_requirements(setup)


def test_learn2learn_is_installed_and_importable():
    assert installer.already_installed(), "run scripts/install_learn2learn.py"


def test_imports_print_nothing():
    """No gym banner: not on ``import fewshot_kd``, nor when fewshot_kd imports learn2learn."""
    probe = "import fewshot_kd\nfrom fewshot_kd.data.episodes import _learn2learn\n_learn2learn()\n"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "Gym" not in run.stderr and run.stdout == "", run.stderr
