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
# Check that everything imports (learn2learn without gym's banner), then say what is installed.
"$PYTHON" - <<'EOF'
import importlib.metadata

import higher  # noqa: F401
from fewshot_kd.data.episodes import _learn2learn

_learn2learn()
print("installed:")
for name in ("torch", "torchvision", "learn2learn", "higher", "transformers", "fewshot_kd"):
    print(f"  {name:<13}{importlib.metadata.version(name)}")
EOF
