"""PNG plots of a suite's results: accuracy vs compression, accuracy vs shots, accuracy vs
adapt time, accuracy vs energy per inference, adaptation curves, and a grid of sample predictions for image tasks."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _by_task_split(rows: list[dict]) -> dict:
    groups = defaultdict(list)
    for r in rows:
        groups[(r["task"], r["split"])].append(r)
    return groups


def _per_task_split(rows: list[dict], path: Path, x_of, xlabel: str, log_x: bool, line: bool) -> Path:
    """One panel per (task, split): accuracy (mean +- std over seeds) of every method against ``x_of(row)``."""
    groups = _by_task_split(rows)
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4.2), squeeze=False)
    for ax, ((task, split), group) in zip(axes[0], sorted(groups.items())):
        for method in sorted({r["method"] for r in group}):
            pts = sorted((r for r in group if r["method"] == method), key=x_of)
            ax.errorbar([x_of(r) for r in pts], [100 * r["accuracy"][0] for r in pts],
                        yerr=[100 * r["accuracy"][1] for r in pts], fmt="o-" if line else "o", capsize=3, label=method)
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy %")
        ax.set_title(f"{task} [{split}]")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def accuracy_vs_compression(rows: list[dict], path: Path) -> Path:
    return _per_task_split(rows, path, lambda r: r["compression_bytes"][0],
                           "compression ratio (teacher bytes / artifact bytes)", log_x=True, line=False)


def accuracy_vs_energy(rows: list[dict], path: Path) -> Path | None:
    """Accuracy against energy per inference (µJ, log), for the rows that recorded it."""
    rows = [r for r in rows if r.get("energy_uj") and r["energy_uj"][0] == r["energy_uj"][0]]
    if not rows:
        return None
    return _per_task_split(rows, path, lambda r: r["energy_uj"][0],
                           "energy per inference, µJ (log; est. or meas. as in results.md)", log_x=True, line=False)


def accuracy_vs_shots(rows: list[dict], path: Path) -> Path:
    return _per_task_split(rows, path, lambda r: r["k"], "shots per class (K)", log_x=False, line=True)


def accuracy_vs_time(rows: list[dict], path: Path) -> Path:
    """Accuracy against the wall time each method spent on the shots (one point per K)."""
    return _per_task_split(rows, path, lambda r: max(r["adapt_seconds"][0], 1e-2),
                           "adapt wall time, s (log)", log_x=True, line=True)


def adaptation_curves(records: list[dict], path: Path) -> Path | None:
    """Training loss per epoch of every method that reports a history (first seed, each K)."""
    curves = [r for r in records if r.get("history") and r["seed"] == min(x["seed"] for x in records)]
    if not curves:
        return None
    tasks = sorted({r["task"] for r in curves})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for r in (c for c in curves if c["task"] == task):
            losses = [h["loss"] for h in r["history"]]
            ax.plot(range(1, len(losses) + 1), losses, label=f"{r['method']} K={r['k']}")
        ax.set_xlabel("epoch over the shots")
        ax.set_ylabel("training loss")
        ax.set_yscale("log")
        ax.set_title(task)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sample_predictions(images, labels, predictions, class_names, path: Path, title: str) -> Path:
    """A grid of images captioned with predicted / true class (red where wrong), seed 004 style."""
    n = len(images)
    cols = min(8, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, y, p in zip(axes.flat, images, labels, predictions):
        img = img.permute(1, 2, 0).squeeze(-1).clamp(0, 1).numpy()
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        ax.set_title(f"{class_names[p]}\n({class_names[y]})", fontsize=7, color="green" if p == y else "red")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
