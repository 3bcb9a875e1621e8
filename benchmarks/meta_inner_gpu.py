"""Time one meta-training step (episode -> differentiable inner loop -> meta-gradient) per
device, backend and order: ``python -m benchmarks.meta_inner_gpu [--tasks digits] [--repeats 5]``.

Runs on the CPU everywhere and on CUDA when a GPU is present (fp32, and bf16 autocast on
CUDA); writes ``benchmarks/results/meta_inner_gpu/results.{json,md}``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from fewshot_kd.files import write_json
from fewshot_kd.measure.environment import environment_info
from fewshot_kd.meta.backends import INNER_BACKENDS
from fewshot_kd.meta.config import BACKENDS, MetaTrainConfig
from fewshot_kd.meta.episodes import load_family, make_episode
from fewshot_kd.meta.policy_net import PolicyNet

OUT = Path(__file__).resolve().parent / "results" / "meta_inner_gpu"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def meta_step_times(family, config: MetaTrainConfig, device: torch.device, bf16: bool, repeats: int) -> list[float]:
    """Milliseconds of each of ``repeats`` meta-steps (episode meta-loss and backward) after one
    warm-up step, with ``config``'s backend and order, under bf16 autocast when ``bf16``."""
    net = PolicyNet(config.hidden).to(device)
    times = []
    for i in range(repeats + 1):
        episode = make_episode([family], i, config.episode_spec, config.seed)
        _sync(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = INNER_BACKENDS.get(config.backend)(net, episode, config.inner)
        loss.backward()
        _sync(device)
        if i:  # the first is warm-up
            times.append((time.perf_counter() - start) * 1000)
    return times


def time_step(task: str, device: torch.device, backend: str, order: str, bf16: bool, repeats: int) -> dict:
    config = MetaTrainConfig(tasks=(task,), backend=backend, order=order)
    family = load_family(task, config.ways, device=device)
    times = meta_step_times(family, config, device, bf16, repeats)
    return {"task": task, "device": str(device), "backend": backend, "order": order, "bf16": bf16,
            "inner_steps": config.inner_steps, "median_ms": statistics.median(times), "repeats": repeats}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="digits")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for task in args.tasks.split(","):
        for device in devices:
            for backend in BACKENDS:
                for order in ("truncated", "first"):
                    for bf16 in ((False, True) if device.type == "cuda" else (False,)):
                        rows.append(time_step(task, device, backend, order, bf16, args.repeats))
                        print(rows[-1])
    write_json(OUT / "results.json", {"command": "python -m benchmarks.meta_inner_gpu " + " ".join(argv or []),
                                      "environment": environment_info(), "rows": rows})
    lines = ["| task | device | backend | order | bf16 | ms per meta-step (median) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['device']} | {r['backend']} | {r['order']} | {r['bf16']} | {r['median_ms']:.1f} |" for r in rows]
    (OUT / "results.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / 'results.md'}")


if __name__ == "__main__":
    main()
