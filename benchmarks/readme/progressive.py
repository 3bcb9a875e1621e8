"""README block for issue #19's ablations: progressive distillation and mixed bits on the 8x student."""

from __future__ import annotations

from benchmarks.readme.fmt import commit_list, gap, pm
from benchmarks.readme.source import load

EXACT, JPEG = "test_exact", "test"
SCHEDULES = {"adapt": "one-shot distillation", "adapt@graft": "grafted into the teacher in 3 stages first",
             "adapt@ramp": "pruned in 3 rounds with distillation between",
             "adapt_unlabelled": "one-shot, 2,000 unlabelled images", "adapt_unlabelled@graft": "grafted, 2,000 unlabelled images"}


TEXT_SCHEDULES = {"adapt": "one-shot distillation", "adapt@graft": "grafted into the teacher one layer a stage first",
                  "adapt@ramp": "cut to 5, 4, then 3 layers with distillation between",
                  "adapt_unlabelled": "one-shot, 2,000 unlabelled sentences",
                  "adapt_unlabelled@graft": "grafted, 2,000 unlabelled sentences"}


def _verdict(s, method: str, base: str, k: int, split: str) -> str:
    (m, sd), (b, bsd) = s.acc(method, k, split), s.acc(base, k, split)
    delta = gap(m, b)
    if abs(delta) <= max(sd, bsd):
        return f"ties `{base}` ({delta:+.1f} points, inside one standard deviation)"
    return f"{'beats' if delta > 0 else 'loses to'} `{base}` by {abs(delta):.1f} points"


def _ablation(suite: str, schedules: dict, splits: tuple[str, ...], spec: str, where: str) -> str:
    """The table of ``suite``'s schedules at every K (accuracy on ``splits``, the first one judged) and the verdicts."""
    s = load(suite)
    ks = sorted({c["k"] for c in s.cells()})
    methods = [m for m in schedules if s.cells(m)]
    rows = []
    for k in ks:
        for method in methods:
            if s.cells(method, k):
                rows.append(f"| {method} ({schedules[method]}) | {k} | "
                            + "".join(f"{pm(s.acc(method, k, split))} | " for split in splits)
                            + f"{pm(s.row(method, k, splits[0])['adapt_seconds'], 0)} |")
    verdicts = [f"at K={k} `{m}` {_verdict(s, m, 'adapt_unlabelled' if 'unlabelled' in m else 'adapt', k, splits[0])}"
                for k in ks for m in methods if m not in ("adapt", "adapt_unlabelled") and s.cells(m, k)]
    commits = sorted({c["commit"][:12] for c in s.cells()})
    header = "| method | K | " + "".join(f"acc % [{split}] | " for split in splits) + "adapt s |"
    return f"""Progressive distillation ([table](benchmarks/results/{suite}/results.md),
`python -m benchmarks.run --suite {suite}`, {spec}, {len(s.cells('adapt', ks[0]))} seeds, same shots,
commits {commit_list(commits)}, clean trees):

{header}
|---|---|{'---|' * (len(splits) + 1)}
""" + "\n".join(rows) + f"""

{where} {'; '.join(verdicts)}. Adapt times share a busy 2-core machine with other runs."""


def progressive_ablation() -> str:
    return _ablation("graft_ablation", SCHEDULES, (EXACT, JPEG), "the 8x spec above", "On the exact images")


def progressive_ablation_text() -> str:
    return _ablation("graft_ablation_text", TEXT_SCHEDULES, ("test",),
                     "SST-2, the MiniLM teacher's encoder cut to 3 layers, int8, 150 steps", "On the SST-2 validation set")


BLOCKS = {"progressive-ablation": progressive_ablation, "progressive-ablation-text": progressive_ablation_text}
