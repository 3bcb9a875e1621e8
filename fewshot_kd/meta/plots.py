"""Meta-training curves as a PNG: meta-loss, query accuracy and compression per meta-step."""

from __future__ import annotations

from pathlib import Path


def plot_history(history: list[dict], path: str | Path) -> Path | None:
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fewshot_kd.files import atomic_path

    steps = [h["step"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, key, label in zip(axes, ("meta_loss", "query_acc", "macs_fraction"),
                              ("meta-loss (query CE + budget)", "query accuracy", "expected MACs fraction")):
        ax.plot(steps, [h[key] for h in history], lw=1)
        ax.set_title(label)
        ax.set_xlabel("meta-step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
