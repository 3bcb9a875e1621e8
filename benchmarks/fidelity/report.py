"""Spearman's rank correlation of meta objective and deployed accuracy, as JSON, markdown and a plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

from fewshot_kd.files import read_json, write_json

LOOPS = {"old": "old loop (5 full-batch SGD steps, 4 views)", "new": "new loop (adapt()'s Adam loop, shortened)"}


def _loops(parts: dict) -> list[str]:
    """Every scored part: meta-objective loops, and deployed reruns at other seeds (a noise ceiling)."""
    return sorted(p for p in parts if p != "deployed")


def _score(cell: dict) -> float:
    """Higher is better: accuracy, or minus the meta-loss (a diverged, NaN loss ranks last)."""
    if "accuracy" in cell:
        return cell["accuracy"]
    return -math.inf if math.isnan(cell["meta_loss"]) else -cell["meta_loss"]


def _rows(cells: list[dict]) -> dict:
    table: dict = {}
    for c in cells:
        family = table.setdefault(c["family"], {})
        family.setdefault(c["part"], {})[c["policy_index"]] = c
    return table


def correlations(cells: list[dict]) -> list[dict]:
    from scipy.stats import spearmanr

    out = []
    for family, parts in _rows(cells).items():
        deployed = parts.get("deployed", {})
        for loop in _loops(parts):
            scored = parts.get(loop, {})
            common = sorted(set(deployed) & set(scored))
            if len(common) < 3:
                continue
            rho = spearmanr([_score(scored[i]) for i in common], [deployed[i]["accuracy"] for i in common])[0]
            diverged = sum(1 for i in common if not math.isfinite(_score(scored[i])))
            out.append({"family": family, "loop": loop, "policies": len(common), "spearman": float(rho),
                        "diverged": diverged,
                        "deployed_accuracy_range": [min(deployed[i]["accuracy"] for i in common),
                                                    max(deployed[i]["accuracy"] for i in common)],
                        "meta_seconds_per_policy": sum(scored[i]["seconds"] for i in common) / len(common),
                        "deployed_seconds_per_policy": sum(deployed[i]["seconds"] for i in common) / len(common)})
    return out


def _plot(cells: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = _rows(cells)
    rows = max(len(_loops(parts)) for parts in table.values()) if table else 1
    fig, axes = plt.subplots(rows, max(len(table), 1), figsize=(4.5 * max(len(table), 1), 3.4 * rows), squeeze=False)
    for col, (family, parts) in enumerate(sorted(table.items())):
        for row, loop in enumerate(_loops(parts)):
            ax = axes[row][col]
            common = sorted(set(parts.get("deployed", {})) & set(parts.get(loop, {})))
            shown = [i for i in common if math.isfinite(_score(parts[loop][i]))]
            ax.scatter([_score(parts[loop][i]) for i in shown],
                       [100 * parts["deployed"][i]["accuracy"] for i in shown], s=18)
            ax.set_title(f"{family}: {loop}", fontsize=9)
            ax.set_xlabel("accuracy (another seed)" if loop.startswith("deployed") else "-meta objective (higher is better)",
                          fontsize=8)
            ax.set_ylabel("deployed accuracy %", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cells(out: Path) -> list[dict]:
    path = out / "cells.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def record_invocation(out: Path, invocation: dict) -> list[dict]:
    """Append ``invocation`` to ``results.json`` as the run starts; returns every invocation."""
    previous = read_json(out / "results.json").get("invocations", []) if (out / "results.json").is_file() else []
    invocations = previous + [invocation]
    cells = _cells(out)
    write_json(out / "results.json", {"benchmark": "meta_fidelity", "invocations": invocations,
                                      "correlations": correlations(cells), "cells": cells})
    return invocations


def write_report(out: Path, invocations: list[dict]) -> dict:
    cells = _cells(out)
    rows = correlations(cells)
    result = {"benchmark": "meta_fidelity", "invocations": invocations, "correlations": rows, "cells": cells}
    write_json(out / "results.json", result)
    lines = ["| family | scored by | policies | Spearman with deployed accuracy (seed 0) | deployed accuracy range % "
             "| meta s / policy | deployed s / policy |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["deployed_accuracy_range"]
        lines.append(f"| {r['family']} | {r['loop']} | {r['policies']} | {r['spearman']:.2f} | {100 * lo:.1f}-{100 * hi:.1f} "
                     f"| {r['meta_seconds_per_policy']:.1f} | {r['deployed_seconds_per_policy']:.1f} |")
    (out / "results.md").write_text("# Meta-objective fidelity\n\n" + "\n".join(lines) + "\n")
    _plot(cells, out / "fidelity.png")
    return result
