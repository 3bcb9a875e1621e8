#!/usr/bin/env bash
# Installs fewshot_kd with everything it needs into the active Python environment.
# Idempotent: a second run reuses what the first installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
"$PYTHON" -m pip install --quiet --upgrade pip
# learn2learn imports torch, so torch comes first (same ranges as pyproject.toml).
"$PYTHON" -m pip install --quiet "torch>=2.2,<3" "torchvision>=0.17"
"$PYTHON" scripts/install_learn2learn.py
"$PYTHON" -m pip install --quiet -e ".[dev]"
"$PYTHON" -c "import fewshot_kd, learn2learn, higher; print('fewshot_kd', fewshot_kd.__version__, 'installed')"
