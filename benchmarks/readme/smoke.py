"""README block for the smoke suite (digits, every method)."""

from __future__ import annotations

from benchmarks.readme.source import load


def smoke() -> str:
    s = load("smoke")
    ks = sorted({c["k"] for c in s.cells()})
    methods = list(dict.fromkeys(c["method"] for c in s.cells()))
    split = next(iter(s.cells()[0]["eval"]))
    lines = [s.note() + "| method | " + " | ".join(f"acc % K={k}" for k in ks) + " | × bytes | × MACs |",
             "|---|" + "---|" * (len(ks) + 2)]
    for m in methods:
        r = s.row(m, ks[-1], split)
        lines.append(f"| {m} | " + " | ".join(f"{s.acc(m, k, split)[0]:.1f}" for k in ks)
                     + f" | {r['compression_bytes'][0]:.1f} | {r['compression_macs'][0]:.1f} |")
    seeds = sorted({c["seed"] for c in s.cells()})
    commit = s.data["invocations"][-1]["commit"]
    return (f"Smoke run on digits ([table](benchmarks/results/smoke/results.md)), seed{'s' if len(seeds) > 1 else ''} "
            f"{', '.join(map(str, seeds))}, `{split}` split, from commit `{commit[:12]}`"
            f"{' (clean tree)' if s.legacy is None else ''}:\n\n" + "\n".join(lines))


BLOCKS = {"smoke": smoke}
