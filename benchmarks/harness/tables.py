"""Aggregate cell records over seeds (mean +- std) and render markdown tables."""

from __future__ import annotations

import statistics
from collections import defaultdict

HEADLINE = ("accuracy", "macro_f1")


def mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(records: list[dict]) -> list[dict]:
    """One row per (task, method, shots, eval split): mean and std over seeds of every metric."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        for split in r["eval"]:
            groups[(r["task"], r["method"], r["k"], split)].append(r)
    rows = []
    for (task, method, k, split), group in sorted(groups.items(), key=lambda kv: kv[0]):
        row = {"task": task, "method": method, "k": k, "split": split, "seeds": len(group)}
        for metric in ("accuracy", "macro_precision", "macro_recall", "macro_f1"):
            row[metric] = mean_std([g["eval"][split][metric] for g in group])
        for metric in ("params", "macs", "bytes", "compression_bytes", "compression_macs",
                       "latency_b1_ms", "latency_b64_ms", "speedup_b1", "speedup_b64", "energy_uj", "adapt_seconds", "peak_memory_bytes"):
            row[metric] = mean_std([g.get(metric) for g in group])
        row["energy_label"] = energy_label([g.get("energy_method") for g in group])
        row["integer_arithmetic"] = all(g.get("integer_arithmetic") for g in group)
        rows.append(row)
    return rows


def energy_label(methods: list[str | None]) -> str:
    """``"meas."`` when every seed's energy was measured, ``"est."`` when every one was estimated,
    ``"mixed"`` otherwise, ``""`` when none was recorded."""
    kinds = {m.split("-")[0] for m in methods if m}
    if not kinds:
        return ""
    return {"measured": "meas.", "estimated": "est."}.get(kinds.pop(), "mixed") if len(kinds) == 1 else "mixed"


def _pm(pair: tuple[float, float], scale: float = 1.0, digits: int = 1) -> str:
    mean, std = pair
    if mean != mean:
        return "–"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def _energy_cell(row: dict) -> str:
    """Mean ± std µJ per inference and whether measured or estimated; ``–`` when not recorded."""
    label = row.get("energy_label")
    return f"{_pm(row['energy_uj'], digits=2)} {label}" if label else "–"


def markdown_table(rows: list[dict]) -> str:
    header = ("| task | split | method | K | seeds | accuracy % | macro-F1 % | params | MACs | file KB "
              "| × bytes | × MACs | ms b1 | ms b64 | × faster b64 | energy µJ/inf (est.\\|meas.) | adapt s | int8 math |")
    columns = header.replace("\\|", "").count("|") - 1  # an escaped pipe is text inside a cell
    lines = [header, "|" + "|".join(["---"] * columns) + "|"]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['split']} | {r['method']} | {r['k']} | {r['seeds']} "
            f"| {_pm(r['accuracy'], 100)} | {_pm(r['macro_f1'], 100)} "
            f"| {r['params'][0]:,.0f} | {r['macs'][0]:,.0f} | {r['bytes'][0] / 1024:,.1f} "
            f"| {r['compression_bytes'][0]:.1f} | {r['compression_macs'][0]:.1f} "
            f"| {r['latency_b1_ms'][0]:.2f} | {r['latency_b64_ms'][0]:.1f} | {_pm(r['speedup_b64'], digits=2)} "
            f"| {_energy_cell(r)} "
            f"| {_pm(r['adapt_seconds'])} "
            f"| {'yes' if r['integer_arithmetic'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"
