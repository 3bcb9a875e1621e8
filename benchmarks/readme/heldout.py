"""README block for the meta-learning proof on held-out families."""

from __future__ import annotations

from fewshot_kd.errors import FewShotKDError
from fewshot_kd.files import read_json

from benchmarks.harness.records import dirty_reasons
from benchmarks.meta_heldout.summary import render
from benchmarks.readme.source import RESULTS_DIR, DirtyResults

NAME = "meta_heldout"


def meta_heldout() -> str:
    root = RESULTS_DIR / NAME
    families = sorted(p for p in root.iterdir() if (p / "results.json").is_file()) if root.is_dir() else []
    if not families:
        raise FewShotKDError(f"{root} holds no results: run `python -m benchmarks.meta_heldout`")
    commits = set()
    for family in families:
        data = read_json(family / "results.json")
        reasons = dirty_reasons(data)
        if reasons:
            raise DirtyResults(f"{NAME}/{family.name}: " + "; ".join(reasons))
        commits |= {c["commit"][:12] for c in data["cells"]}
    body = render(root).split("\n", 2)[2]  # without its own title
    return f"From commit{'s' if len(commits) > 1 else ''} {', '.join(f'`{c}`' for c in sorted(commits))} (clean tree):\n\n" + body


BLOCKS = {NAME: meta_heldout}
