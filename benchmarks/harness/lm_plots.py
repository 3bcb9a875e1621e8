"""PNG plot of an LM suite: every method's perplexity (mean ± std over seeds) against its
compression in bytes, with the teacher's perplexity and the 15 % target as lines."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def perplexity_by_method(rows: list[dict], references: dict, path: Path) -> Path:
    tasks = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for r in sorted((r for r in rows if r["task"] == task), key=lambda r: r["method"]):
            mean, std = r["perplexity"]
            ax.errorbar([r["compression_bytes"]], [mean], yerr=[std], fmt="o", capsize=3, label=f"{r['method']} K={r['k']}")
        teacher = references[task]["perplexity"]
        ax.axhline(teacher, color="grey", lw=1, ls="-", label="teacher")
        ax.axhline(1.15 * teacher, color="grey", lw=1, ls="--", label="teacher + 15 %")
        ax.set_xscale("log")
        ax.set(title=f"{task} ({references[task]['split']}, window {references[task]['window']}, "
                     f"stride {references[task]['stride']})", xlabel="compression (teacher bytes / artifact bytes)",
               ylabel="perplexity")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
