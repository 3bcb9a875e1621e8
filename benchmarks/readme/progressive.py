"""README block for issue #19's ablations: progressive distillation and mixed bits on the 8x student."""

from __future__ import annotations

from benchmarks.readme.fmt import gap, pm
from benchmarks.readme.source import load

EXACT, JPEG = "test_exact", "test"
SCHEDULES = {"adapt": "one-shot distillation", "adapt@graft": "grafted into the teacher in 3 stages first",
             "adapt@ramp": "pruned in 3 rounds with distillation between",
             "adapt_unlabelled": "one-shot, 2,000 unlabelled images", "adapt_unlabelled@graft": "grafted, 2,000 unlabelled images"}


def _verdict(s, method: str, base: str, k: int) -> str:
    (m, sd), (b, bsd) = s.acc(method, k, EXACT), s.acc(base, k, EXACT)
    delta = gap(m, b)
    if abs(delta) <= max(sd, bsd):
        return f"ties `{base}` ({delta:+.1f} points, inside one standard deviation)"
    return f"{'beats' if delta > 0 else 'loses to'} `{base}` by {abs(delta):.1f} points"


def progressive_ablation() -> str:
    s = load("graft_ablation")
    ks = sorted({c["k"] for c in s.cells()})
    methods = [m for m in SCHEDULES if s.cells(m)]
    rows = []
    for k in ks:
        for method in methods:
            if s.cells(method, k):
                rows.append(f"| {method} ({SCHEDULES[method]}) | {k} | {pm(s.acc(method, k, EXACT))} | "
                            f"{pm(s.acc(method, k, JPEG))} | {pm(s.row(method, k, EXACT)['adapt_seconds'], 0)} |")
    verdicts = [f"at K={k} `{m}` {_verdict(s, m, 'adapt_unlabelled' if 'unlabelled' in m else 'adapt', k)}"
                for k in ks for m in methods if m not in ("adapt", "adapt_unlabelled") and s.cells(m, k)]
    commits = sorted({c["commit"][:12] for c in s.cells()})
    return f"""Progressive distillation ([table](benchmarks/results/graft_ablation/results.md),
`python -m benchmarks.run --suite graft_ablation`, the 8x spec above, {len(s.cells('adapt', ks[0]))} seeds, same shots,
commits {', '.join(f'`{c}`' for c in commits)}, clean trees):

| method | K | acc % [test_exact] | acc % [test] | adapt s |
|---|---|---|---|---|
""" + "\n".join(rows) + f"""

On the exact images {'; '.join(verdicts)}. Adapt times share a busy 2-core machine with other runs."""


BLOCKS = {"progressive-ablation": progressive_ablation}
