"""PNG plot of a QA suite: every method's F1 (mean ± std over seeds) against K, with the
teacher's F1 and the 5-point target as lines."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def f1_by_method(rows: list[dict], references: dict, path: Path) -> Path:
    tasks = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        methods = sorted({r["method"] for r in rows if r["task"] == task and r["method"] != "teacher"})
        for method in methods:
            mine = sorted((r for r in rows if r["task"] == task and r["method"] == method), key=lambda r: r["k"])
            ax.errorbar([r["k"] for r in mine], [r["f1"][0] for r in mine], yerr=[r["f1"][1] for r in mine],
                        fmt="o-", capsize=3, label=method)
        teacher = references[task]["f1"]
        ax.axhline(teacher, color="grey", lw=1, ls="-", label="teacher")
        ax.axhline(teacher - 5, color="grey", lw=1, ls="--", label="teacher − 5 F1")
        ax.set_xscale("log", base=2)
        ax.set(title=f"{task} ({references[task]['questions']} {references[task]['split']} questions)",
               xlabel="K labelled questions", ylabel="F1")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
