"""README block for the meta-objective fidelity benchmark."""

from __future__ import annotations

from fewshot_kd.errors import FewShotKDError
from fewshot_kd.files import read_json

from benchmarks.harness.records import dirty_reasons
from benchmarks.readme.fmt import commits_phrase
from benchmarks.readme.source import RESULTS_DIR, DirtyResults

NAME = "meta_fidelity"
LABELS = {"old": "old loop (5 full-batch SGD steps)", "new": "new loop (adapt()'s loop, 60 steps, 2 episodes)",
          "new@150": "new loop, 150 steps, 4 episodes", "deployed@1": "deployed accuracy at another seed (ceiling)"}


def meta_fidelity() -> str:
    path = RESULTS_DIR / NAME / "results.json"
    if not path.is_file():
        raise FewShotKDError(f"{path} is missing: run `python -m benchmarks.fidelity`")
    data = read_json(path)
    reasons = dirty_reasons(data)
    if reasons:
        raise DirtyResults(f"{NAME}: " + "; ".join(reasons))
    rows = sorted(data["correlations"], key=lambda r: (r["family"], list(LABELS).index(r["loop"])
                                                       if r["loop"] in LABELS else 99))
    lines = ["| family | ranked by | policies | Spearman with deployed accuracy | deployed accuracy % (range) "
             "| s per policy |", "|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["deployed_accuracy_range"]
        lines.append(f"| {r['family']} | {LABELS.get(r['loop'], r['loop'])} | {r['policies']} | **{r['spearman']:.2f}** "
                     f"| {100 * lo:.1f}-{100 * hi:.1f} | {r['meta_seconds_per_policy']:.1f} |")
    commits = sorted({c["commit"][:12] for c in data["cells"]})
    head = f"From {commits_phrase(commits)} (clean tree):\n\n"
    return head + "\n".join(lines) + "\n\n" + _reading(rows)


def _reading(rows: list[dict]) -> str:
    """What the table says, family by family, against the 0.7 target."""
    by = {(r["family"], r["loop"]): r for r in rows}
    out = []
    for family in sorted({r["family"] for r in rows}):
        new, old, ceiling = by.get((family, "new")), by.get((family, "old")), by.get((family, "deployed@1"))
        if new is None:
            continue
        verdict = "meets" if new["spearman"] >= 0.7 else "misses"
        against = f"against the old loop's {old['spearman']:.2f}" if old is not None else \
            "(the old loop built image episodes only, so it has no score here)"
        text = (f"- {family} ({new['policies']} policies): the new loop ranks policies at {new['spearman']:.2f} "
                f"{against}, and {verdict} the 0.7 target")
        if old is not None and old.get("diverged"):
            text += f" (the old loop's loss was NaN for {old['diverged']} of them; they rank last)"
        if ceiling is not None:
            text += (f"; deployment's own ranking is this repeatable: the same policies rerun at another seed "
                     f"correlate {ceiling['spearman']:.2f} with the first")
        out.append(text + ".")
    return "\n".join(out)


BLOCKS = {NAME: meta_fidelity}
