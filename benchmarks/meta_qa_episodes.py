"""A QA meta-learned policy against fixed recipes, in the meta objective, on QA episodes its run
never drew: ``python -m benchmarks.meta_qa_episodes --policy runs/meta_qa``.

Every recipe runs the same inner loop on the same episodes (K labelled questions, 32 query
questions; :mod:`fewshot_kd.meta.span_episodes`) and is scored by the query span cross-entropy
and the share of gold start / end tokens ranked first. The fixed recipes are adapt()'s QA
hand-set knobs (temperature 2, alpha 0.5, lr 1e-4) on the last 3 layers and on layers 0, 2, 4
(adapt()'s QA default), and the ``qa`` suite's ``adapt@spread`` knobs (layers 0, 2, 4, lr 3e-4).
The episodes are numbered from meta-validation's first index, so they differ from every
training episode; their questions come from the same pool (the evaluation articles outside the
500 scored questions), so single questions may recur. ``--search``: also the best recipe of a
:mod:`benchmarks.recipe_search` run (the same compute spent on fixed recipes). Writes ``results.json`` and ``results.md``
(command, commit, machine, config) to ``benchmarks/results/meta_qa/``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from fewshot_kd.adapt.policy import HAND_SET_TEXT
from fewshot_kd.adapt.qa.policy import QAPolicy
from fewshot_kd.files import read_json
from fewshot_kd.measure import environment_info
from fewshot_kd.meta.config import MetaTrainConfig
from fewshot_kd.meta.episodes import MetaEpisode, load_family, make_episode
from fewshot_kd.meta.meta_policy import MetaPolicy
from fewshot_kd.meta.objective import InnerConfig, episode_loss, policy_decisions
from fewshot_kd.meta.validation import FIRST_INDEX

from benchmarks.cpu_speed import command_line, write_results
from benchmarks.fidelity.policies import policy_decisions as fixed_policy_decisions

RESULTS = Path(__file__).resolve().parent / "results" / "meta_qa"
LABELS = {"title": "QA meta policy against fixed recipes on unseen QA episodes", "metric": "query span CE",
          "accuracy": "query start/end accuracy"}
HAND = QAPolicy()
RECIPES = {
    "hand-set, last 3": {"temperature": HAND.temperature, "alpha": HAND.alpha, "lr": HAND.lr, "blocks": "last"},
    "hand-set, layers 0, 2, 4": {"temperature": HAND.temperature, "alpha": HAND.alpha, "lr": HAND.lr,
                                 "blocks": "spread"},
    "adapt@spread knobs (lr 3e-4), layers 0, 2, 4": {"temperature": HAND.temperature, "alpha": HAND.alpha,
                                                     "lr": 3.0e-4, "blocks": "spread"},
}


def fixed_decisions(recipe: dict, episode: MetaEpisode, base_lr: float = HAND_SET_TEXT.lr):
    """A fixed recipe's decisions on ``episode``: its knobs (its lr as a scale of ``base_lr``, the
    inner loop's rate), no per-layer preferences, and the last, first or every other (``"spread"``)
    blocks, ``keep_blocks`` of them."""
    desc, keep = episode.description, episode.family.keep_blocks
    decisions = fixed_policy_decisions({**recipe, "feature_weight": 0.0}, desc, episode.budget_macs,
                                       base_lr, keep_blocks=keep)
    if recipe["blocks"] == "last":
        return decisions
    count = len(desc.blocks)
    kept = {"spread": list(range(0, count, 2))[:keep], "first": list(range(keep))}[recipe["blocks"]]
    gates = torch.tensor([1.0 if b in kept else 0.0 for b in range(count)])
    return replace(decisions, block_gates=gates, kept_blocks=kept,
                   macs_fraction=desc.macs_fraction(decisions.ratios, gates))


def compare(net, episodes: list[MetaEpisode], inner: InnerConfig, progress=print, recipes: dict = RECIPES,
            base_lr: float = HAND_SET_TEXT.lr) -> dict:
    """Per recipe (the fixed ``recipes`` and ``net``'s): query cross-entropy, accuracy and kept
    layers per episode; ``base_lr``: the rate the inner loop scales (the family's)."""
    rows: dict[str, dict] = {}
    for episode in episodes:
        choices = {name: fixed_decisions(recipe, episode, base_lr) for name, recipe in recipes.items()}
        with torch.no_grad():  # scored, not trained: the decisions carry no graph
            choices["meta-learned"] = policy_decisions(net, episode)
        for name, decisions in choices.items():
            tick = time.perf_counter()
            _, metrics = episode_loss(decisions, episode, inner)
            row = rows.setdefault(name, {"query_ce": [], "query_acc": [], "kept_layers": [], "temperature": [],
                                         "alpha": [], "inner_lr": [], "seconds": []})
            row["query_ce"].append(metrics["query_ce"])
            row["query_acc"].append(metrics["query_acc"])
            row["kept_layers"].append(list(decisions.kept_blocks or []))
            row["temperature"].append(float(decisions.temperature))
            row["alpha"].append(float(decisions.alpha))
            row["inner_lr"].append(float(base_lr * decisions.inner_lr_scale))
            row["seconds"].append(time.perf_counter() - tick)
            progress(f"episode {episode.index - FIRST_INDEX} (K={episode.shots}) · {name}: "
                     f"query CE {metrics['query_ce']:.3f}, acc {metrics['query_acc']:.3f}")
    return rows


def _pm(values: list[float], digits: int = 3) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {spread:.{digits}f}"


def table(results: dict) -> str:
    """The recipes' query scores as a markdown table, then the verdict against the best fixed recipe."""
    rows, labels = results["rows"], {**LABELS, **results["config"].get("labels", {})}
    best_fixed = min((n for n in rows if n != "meta-learned"), key=lambda n: statistics.fmean(rows[n]["query_ce"]))
    meta = statistics.fmean(rows["meta-learned"]["query_ce"])
    fixed = statistics.fmean(rows[best_fixed]["query_ce"])
    spread = statistics.stdev(rows[best_fixed]["query_ce"]) if len(rows[best_fixed]["query_ce"]) > 1 else 0.0
    verdict = "beats" if meta < fixed - spread else ("loses to" if meta > fixed + spread else "ties")
    lines = [f"| recipe | kept layers | temperature | alpha | inner lr | {labels['metric']} | {labels['accuracy']} |",
             "|---|---|---|---|---|---:|---:|"]
    for name, row in rows.items():
        layers = sorted({tuple(k) for k in row["kept_layers"]})
        knobs = [f"{statistics.fmean(row[key]):.3g}" for key in ("temperature", "alpha", "inner_lr")]
        lines.append(f"| {name} | {' / '.join(', '.join(map(str, k)) for k in layers)} | {' | '.join(knobs)} | "
                     f"{_pm(row['query_ce'])} | {_pm(row['query_acc'])} |")
    lines.append(f"\nThe meta-learned policy **{verdict}** the best fixed recipe ({best_fixed}) by the one-std rule: "
                 f"{labels['metric']} {meta:.3f} against {fixed:.3f} ± {spread:.3f} (lower is better; "
                 f"mean ± std over {len(rows[best_fixed]['query_ce'])} episodes).")
    paired = [m - f for m, f in zip(rows["meta-learned"]["query_ce"], rows[best_fixed]["query_ce"])]
    lines.append(f"Paired by episode, meta-learned minus that recipe: {_pm(paired)} (negative: the meta policy is better).")
    return "\n".join(lines)


def render(results: dict) -> str:
    config, env = results["config"], results["environment"]
    return "\n".join([
        f"# {config.get('labels', {}).get('title', LABELS['title'])}\n",
        f"Command: `{results['command']}`  ", f"Commit: `{env.get('git_commit')}`  ",
        f"Machine: {env.get('cpu_model')}, torch {env.get('torch')}  ",
        f"Policy: `{config['policy']}`, made by `{config['policy_command']}` ({config['policy_steps']} meta-steps, "
        f"{config['policy_minutes']:.0f} minutes, commit `{config['policy_commit']}`)  ",
        f"Episodes: {config['episodes']} (K drawn from {config['shots']}), {config['inner_steps']} inner steps, "
        f"MACs budget {config['macs_range']}, int{config['bits']}\n", table(results), ""])


def main(argv=None, prog: str = "benchmarks.meta_qa_episodes", task: str = "squad-minilm", recipes: dict = RECIPES,
         base_lr: float = HAND_SET_TEXT.lr, out: Path = RESULTS, labels: dict | None = None,
         description: str = __doc__) -> int:
    """Score a policy against ``recipes`` on unseen episodes of ``task`` (defaults: the QA run)."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=description.split("\n\n")[0])
    parser.add_argument("--policy", required=True, help=f"a meta-learned policy folder trained on {task} episodes")
    parser.add_argument("--task", default=task)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default=str(out))
    parser.add_argument("--search", default=None,
                        help="a benchmarks.recipe_search result (search.json): its best recipe is scored too")
    args = parser.parse_args(argv)
    meta = MetaPolicy.load(args.policy)
    config = MetaTrainConfig.from_dict(meta.config)
    family = load_family(args.task, ways=config.ways, data_root=args.data_root)
    spec = config.episode_spec
    episodes = [make_episode([family], FIRST_INDEX + i, spec, config.seed) for i in range(args.episodes)]
    inner = replace(config.inner, order="first")  # the loss's value is the same at every order; first is cheapest
    searched = read_json(args.search) if args.search else None
    if searched is not None:
        name = (f"best of {searched['config']['trials']} random recipes (searched on "
                f"{searched['config']['episodes']} training episodes)")
        recipes = {**recipes, name: searched["best"]}
    rows = compare(meta.net, episodes, inner, recipes=recipes, base_lr=base_lr)
    made = read_json(Path(args.policy) / "policy.json")
    results = {"command": command_line(prog, argv), "environment": environment_info(),
               "config": {"policy": args.policy, "policy_command": meta.command, "policy_steps": len(meta.history),
                          "policy_minutes": (meta.seconds or 0.0) / 60,
                          "policy_commit": (made.get("environment") or {}).get("git_commit"), "task": args.task,
                          "episodes": args.episodes, "shots": list(family.task.shots),
                          "inner_steps": inner.steps, "macs_range": list(spec.macs_range), "bits": list(spec.bits)[0]
                          if len(spec.bits) == 1 else list(spec.bits), **({"labels": labels} if labels else {}),
                          **({"search": {"file": args.search, "command": searched["command"], "best": searched["best"],
                                         "minutes": searched["config"]["minutes"],
                                         "commit": searched["environment"].get("git_commit")}} if searched else {})},
               "rows": rows}
    write_results(args.out, results, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
