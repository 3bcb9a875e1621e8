"""The meta-learning proof on families held out of meta-training.

``python -m benchmarks.meta_heldout --held-out fashion-mnist --train digits,omniglot,cifar10-resnet20
--validate cifar10-resnet32``

For one held-out family: (1) meta-train on ``--train`` with meta-validation on ``--validate``
(neither includes the held-out family); (2) search a tuned fixed recipe on the same training
families with the same wall-clock time the meta-training took; (3) score hand-set, tuned fixed,
random search and meta-learned adapt() on the held-out family at both budgets, K and seeds
(the benchmark harness: ``cells.jsonl``, ``results.md``, plots); (4) render the verdicts of
every held-out family so far into ``summary.md``. Each part resumes where it stopped.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from rich.console import Console

from benchmarks.meta_heldout.plan import BUDGET_POLICY, BUDGETS, heldout_suite
from benchmarks.meta_heldout.summary import render

RESULTS = Path(__file__).resolve().parents[1] / "results" / "meta_heldout"


def _names(text: str) -> tuple[str, ...]:
    return tuple(t for t in text.split(",") if t)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def _record_harness_only(family_dir: Path, meta_dir: Path, tuned_dir: Path, command: str) -> None:
    """Check the earlier run's policies are there and finished; add the scoring command to ``plan.json``."""
    from fewshot_kd.files import read_json, write_json
    from fewshot_kd.meta import MetaPolicy

    plan = family_dir / "plan.json"
    if not (MetaPolicy.is_policy_file(meta_dir) and MetaPolicy.load(meta_dir).finished
            and (tuned_dir / "tune.json").is_file() and read_json(tuned_dir / "tune.json").get("finished")
            and plan.is_file()):
        raise SystemExit(f"error: --harness-only needs a finished meta policy in {meta_dir}, a finished recipe search "
                         f"in {tuned_dir} and {plan}; run without --harness-only to make them")
    write_json(plan, {**read_json(plan), "harness_command": command})


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.meta_heldout", description=__doc__.split("\n\n")[0])
    p.add_argument("--held-out", required=True, help="the task family scored (never meta-trained or tuned on)")
    p.add_argument("--train", required=True, help="meta-training (and recipe-search) families, comma-separated")
    p.add_argument("--validate", default="", help="meta-validation families, comma-separated (held out of training)")
    p.add_argument("--episodes", type=int, default=120)
    p.add_argument("--meta-batch", type=int, default=4)
    p.add_argument("--inner-steps", type=int, default=30)
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--query-per-class", type=int, default=10)
    p.add_argument("--macs-range", type=float, nargs=2, default=(0.3, 0.6), help="MACs budgets episodes draw from")
    p.add_argument("--bits", type=_ints, default=(8, 5), help="average weight bits episodes draw from")
    p.add_argument("--validate-every", type=int, default=10)
    p.add_argument("--validate-episodes", type=int, default=4)
    p.add_argument("--patience", type=int, default=0)
    p.add_argument("--tune-seconds", type=float, default=None,
                   help="the recipe search's time (default: what meta-training took)")
    p.add_argument("--tune-episodes", type=int, default=6, help="fixed episodes every recipe-search trial is scored on")
    p.add_argument("--budgets", default=",".join(BUDGETS), help="a: 0.5 MACs int8; b: 0.35 MACs, 5 bits, >= 12x smaller")
    p.add_argument("--shots", type=_ints, default=(5, 10, 20))
    p.add_argument("--seeds", type=_ints, default=(0, 1, 2))
    p.add_argument("--eval-limit", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0, help="meta-training and search seed")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--harness-only", action="store_true",
                   help="score the meta policy and tuned recipe already in the family's folder (part 3 and 4 only; "
                        "for policies made by an earlier run, perhaps for another task of the same family)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    import torch

    from fewshot_kd.errors import NotEnoughExamplesError
    from fewshot_kd.files import write_json
    from fewshot_kd.meta import MetaPolicy, MetaTrainConfig, meta_train
    from fewshot_kd.meta.episodes import load_family
    from fewshot_kd.task_family import find_task_family

    from benchmarks.harness.runner import run_suite
    from benchmarks.meta_heldout.tune import tune_fixed_policy

    args = parse_args(argv)
    torch.set_num_threads(args.threads)  # small convs on a loaded 2-core CPU run far faster on one thread
    train, validate = _names(args.train), _names(args.validate)
    if args.held_out in train + validate:
        raise SystemExit(f"error: {args.held_out} is the held-out family; leave it out of --train and --validate")
    command = "python -m benchmarks.meta_heldout " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    console = Console()
    held_out = find_task_family(args.held_out).name  # a family name, or a task file's
    if held_out in {find_task_family(n).name for n in train + validate}:
        raise SystemExit(f"error: {held_out} is the held-out family; leave it out of --train and --validate")
    family_dir = args.out / held_out
    meta_dir, tuned_dir = family_dir / "policies" / "meta", family_dir / "policies" / "tuned"
    config = MetaTrainConfig(
        tasks=train, validate=validate, episodes=args.episodes, meta_batch=args.meta_batch, ways=args.ways,
        shots=args.shots, query_per_class=args.query_per_class, views=args.views, macs_range=tuple(args.macs_range),
        bits=args.bits, inner_steps=args.inner_steps, seed=args.seed, validate_every=args.validate_every,
        validate_episodes=args.validate_episodes, patience=args.patience, checkpoint_every=1)
    if args.harness_only:
        _record_harness_only(family_dir, meta_dir, tuned_dir, command)
    else:
        done = MetaPolicy.is_policy_file(meta_dir) and MetaPolicy.load(meta_dir).finished
        meta = MetaPolicy.load(meta_dir) if done else meta_train(
            config, meta_dir, resume=True, data_root=args.data_root, command=command)
        console.print(f"[bold]meta-training[/bold] on {', '.join(train)}: {meta.seconds:.0f} s")
        seconds = args.tune_seconds if args.tune_seconds is not None else meta.seconds
        families = [load_family(name, args.ways, args.data_root) for name in train]
        tuned = tune_fixed_policy(families, seconds=seconds, seed=args.seed, shots=args.shots,
                                  query_per_class=args.query_per_class,
                                  target_options=[BUDGETS[b] for b in _names(args.budgets)],
                                  option_policies=[BUDGET_POLICY.get(b, {}) for b in _names(args.budgets)], out_dir=tuned_dir,
                                  episodes=args.tune_episodes)
        console.print(f"[bold]tuned fixed recipe[/bold]: {tuned_dir / 'tuned_policy.json'}")
        write_json(family_dir / "plan.json", {
            "command": command, "held_out": held_out, "train": list(train), "validate": list(validate),
            "meta_config": config.to_dict(), "meta_seconds": meta.seconds, "tune_seconds_budget": seconds,
            "tune_seconds_used": tuned.seconds_used, "tune_trials": len(tuned.trials), "tune_sampler": tuned.sampler,
            "budgets": {b: BUDGETS[b] for b in _names(args.budgets)},
            "budget_policies": {b: BUDGET_POLICY[b] for b in _names(args.budgets) if b in BUDGET_POLICY}})
    suite = heldout_suite(args.held_out, meta_dir, tuned_dir, budgets=_names(args.budgets),
                          shots=args.shots, seeds=args.seeds, eval_limit=args.eval_limit)
    try:
        run_suite(suite, family_dir, data_root=args.data_root, console=console, outputs=args.out)  # it writes summary.md
    except NotEnoughExamplesError as error:  # e.g. K=20 on Omniglot, whose train split holds 15 a class
        raise SystemExit(f"error: {error}") from None
    (args.out / "summary.md").write_text(render(args.out))
    console.print((args.out / "summary.md").read_text())


if __name__ == "__main__":
    main()
