"""Run records: the commit and tree state a benchmark invocation started from, kept for every invocation."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

from fewshot_kd.files import read_json, write_json
from fewshot_kd.measure import environment_info

REPO = Path(__file__).resolve().parents[2]
LEGACY_NOTE = ("migrated from the single-record format: its commit and dirty flag were read when the results "
               "were written, not when the run started; earlier invocations were not recorded")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def tree_state(outputs: Path | None = None) -> dict:
    """HEAD and the uncommitted paths of the code's repository (untracked ones included).
    Paths under ``outputs`` (the run's own results folder) do not count: a resumed run rewrites them.
    ``dirty`` is None when git cannot tell."""
    head, status = _git("rev-parse", "HEAD"), _git("status", "--porcelain")
    if head is None or status is None:
        return {"commit": head and head.strip(), "dirty": None, "dirty_paths": None}
    skip = None
    if outputs is not None:
        try:
            rel = Path(outputs).resolve().relative_to(REPO).as_posix()
            skip = "" if rel == "." else rel + "/"
        except ValueError:
            pass
    paths = [line[3:].split(" -> ")[-1].strip('"') for line in status.splitlines() if line.strip()]
    paths = [p for p in paths if skip is None or not (p + "/").startswith(skip)]
    return {"commit": head.strip(), "dirty": bool(paths), "dirty_paths": paths}


def _entry_module() -> str:
    """The benchmark entry point this process runs (``benchmarks.meta_heldout``, ...);
    ``benchmarks.run`` when it was not started as a ``benchmarks`` module."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = (getattr(spec, "name", None) or "").removesuffix(".__main__")
    return name if name.startswith("benchmarks.") else "benchmarks.run"


def start_invocation(config: dict, outputs: Path | None = None) -> dict:
    """What one benchmark command (``python -m benchmarks.run`` or another entry point) was,
    recorded as it starts."""
    machine = {k: v for k, v in environment_info(REPO).items() if not k.startswith("git_")}
    return {"command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, "-m", _entry_module(), *sys.argv[1:]]),
            "config": config, **tree_state(outputs),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine}


def cell_stamp(invocation: dict, index: int) -> dict:
    """The run-record fields every cell carries."""
    return {"commit": invocation["commit"], "git_dirty": invocation["dirty"],
            "dirty_paths": invocation["dirty_paths"], "invocation": index}


def migrate(result: dict) -> dict:
    """A results dict in the invocations-list format; an old single-record one becomes invocation 0, dirty."""
    if "invocations" in result:
        return result
    result = dict(result)
    env = dict(result.pop("environment", None) or {})
    machine = {k: v for k, v in env.items() if not k.startswith("git_")}
    machine.setdefault("torch", result.get("torch"))
    result.pop("torch", None)
    invocation = {"command": result.pop("command", None), "config": result.pop("config", None),
                  "commit": env.get("git_commit"), "dirty": True if env.get("git_dirty") is None else env["git_dirty"],
                  "dirty_paths": None, "started": None, "machine": machine,
                  "wall_seconds": result.pop("wall_seconds_this_invocation", None), "note": LEGACY_NOTE}
    return {"suite": result.pop("suite", None), "invocations": [invocation], **result}


def migrate_file(path: str | Path) -> bool:
    """Rewrite ``results.json`` at ``path`` in the invocations-list format; False when it already was."""
    result = read_json(path)
    if "invocations" in result:
        return False
    write_json(path, migrate(result))
    return True


def previous_invocations(results_path: Path) -> list[dict]:
    return migrate(read_json(results_path))["invocations"] if results_path.is_file() else []


def dirty_reasons(result: dict) -> list[str]:
    """Why ``result`` is not clean: dirty or unrecorded invocations, cells without a clean commit."""
    reasons = [f"invocation {i} ({inv.get('command')}) ran from a "
               + ("dirty tree" if inv.get("dirty") else "tree of unknown state")
               for i, inv in enumerate(result.get("invocations", [])) if inv.get("dirty") is not False]
    unclean = [c["key"] for c in result.get("cells", []) if not c.get("commit") or c.get("git_dirty") is not False]
    if unclean:
        reasons.append(f"{len(unclean)} of {len(result['cells'])} cells lack a clean commit")
    return reasons
