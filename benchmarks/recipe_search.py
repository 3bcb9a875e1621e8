"""The strongest simple alternative to a meta-learned policy: a random search over fixed recipes,
in the same meta objective, on meta-training's own episodes, with about the compute of the run:
``python -m benchmarks.recipe_search --task tinyshakespeare-gpt2 --trials 8 --episodes 4``.

Trial 0 is adapt()'s hand-set recipe for the task on every other block; the others draw a
temperature (log-uniform in [1, 8]), alpha (uniform in [0, 1]), a learning rate (log-uniform
within 10x of the hand-set one) and the kept blocks (every other, the last or the first ones).
Each trial runs the inner loop on episodes 0 .. ``episodes - 1`` of a meta-training run with
the same seed, budget and bits (the episodes that run trains on first), and the trial with the
lowest mean query cross-entropy is the search's recipe; ``benchmarks.meta_lm_episodes --search``
scores it beside the others on episodes neither saw. ``trials x episodes`` inner loops cost
about as much as a run of that many meta-training episodes (each also pays one backward
pass). Writes ``search.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from fewshot_kd.adapt.lm.policy import LMPolicy
from fewshot_kd.adapt.qa.policy import QAPolicy
from fewshot_kd.files import write_json
from fewshot_kd.measure import environment_info
from fewshot_kd.meta.config import MetaTrainConfig
from fewshot_kd.meta.episodes import load_family, make_episode
from fewshot_kd.meta.objective import episode_loss

from benchmarks.cpu_speed import command_line
from benchmarks.meta_qa_episodes import fixed_decisions

BLOCKS = ("spread", "last", "first")


def hand_set(modality: str) -> tuple[dict, float]:
    """The task's hand-set recipe on every other block, and the inner loop's base learning rate."""
    from fewshot_kd.adapt.policy import HAND_SET_TEXT

    hand, base_lr = (LMPolicy(), LMPolicy.lr) if modality == "lm" else (QAPolicy(), HAND_SET_TEXT.lr)
    return {"temperature": hand.temperature, "alpha": hand.alpha, "lr": hand.lr, "blocks": "spread"}, base_lr


def draw_recipe(rng: random.Random, hand: dict) -> dict:
    """A random recipe around ``hand``: temperature, alpha, learning rate and kept blocks."""
    return {"temperature": round(math.exp(rng.uniform(0.0, math.log(8.0))), 3), "alpha": round(rng.uniform(0, 1), 3),
            "lr": float(f"{hand['lr'] * math.exp(rng.uniform(-math.log(10), math.log(10))):.3g}"),
            "blocks": rng.choice(BLOCKS)}


def search(family, config: MetaTrainConfig, trials: int, episodes: int, seed: int = 0, progress=print) -> dict:
    """Every trial's query cross-entropy on episodes ``0 .. episodes - 1`` and the best trial."""
    hand, base_lr = hand_set(family.task.modality)
    rng = random.Random(f"fewshot_kd.recipe_search:{seed}")
    recipes = [hand] + [draw_recipe(rng, hand) for _ in range(trials - 1)]
    drawn = [make_episode([family], i, config.episode_spec, config.seed) for i in range(episodes)]
    inner = replace(config.inner, order="first")  # the loss's value is the same at every order
    rows = []
    for t, recipe in enumerate(recipes):
        tick = time.perf_counter()
        ce = [episode_loss(fixed_decisions(recipe, e, base_lr), e, inner)[1]["query_ce"] for e in drawn]
        rows.append({"recipe": recipe, "query_ce": ce, "mean": statistics.fmean(ce),
                     "seconds": time.perf_counter() - tick})
        progress(f"trial {t}: {recipe} · query CE {rows[-1]['mean']:.4f}")
    best = min(rows, key=lambda r: r["mean"])
    return {"trials": rows, "best": best["recipe"], "best_mean": best["mean"], "base_lr": base_lr}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recipe_search", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="tinyshakespeare-gpt2")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--inner-steps", type=int, default=300)
    parser.add_argument("--macs-range", type=float, nargs=2, default=(0.5, 0.5))
    parser.add_argument("--bits", type=int, nargs="+", default=[8])
    parser.add_argument("--seed", type=int, default=0, help="the meta-training run's seed (its episodes)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "meta_lm"))
    args = parser.parse_args(argv)
    config = MetaTrainConfig(tasks=(args.task,), inner_steps=args.inner_steps, macs_range=tuple(args.macs_range),
                             bits=tuple(args.bits), seed=args.seed)
    family = load_family(args.task, ways=config.ways, data_root=args.data_root)
    started = time.perf_counter()
    found = search(family, config, args.trials, args.episodes, args.seed)
    write_json(Path(args.out) / "search.json", {
        "command": command_line("benchmarks.recipe_search", argv), "environment": environment_info(),
        "config": {"task": args.task, "trials": args.trials, "episodes": args.episodes, "inner_steps": args.inner_steps,
                   "macs_range": list(args.macs_range), "bits": args.bits, "seed": args.seed,
                   "minutes": (time.perf_counter() - started) / 60}, **found})
    print(f"best of {args.trials}: {found['best']} (query CE {found['best_mean']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
