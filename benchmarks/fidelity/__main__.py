"""Meta-objective fidelity: does the meta objective rank policies the way deployment does?

``python -m benchmarks.fidelity [--families digits,cifar10-resnet20] [--policies 20]``

For each family, ``--policies`` policies are drawn from adapt_random_search's distribution.
Each is scored three ways: by the deployed adapt() accuracy (K shots from the family's episode
pool, which its teacher never saw, derived student at half the MACs, int8; accuracy on the
family's held-out evaluation split), by the meta objective of the current inner loop, and by
the meta objective of the inner loop at ``--old-commit`` (run from a git worktree of that
commit). Reported: Spearman's rank correlation of ``-meta_loss`` with accuracy, per family
and loop. Finished parts are kept in ``cells.jsonl``; a rerun resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.fidelity.policies import as_dict, draw_policies
from fewshot_kd.adapt.policy import hand_set_for
from benchmarks.harness.records import REPO, tree_state

OLD_COMMIT = "2025b19"  # the last commit with the 5-step SGD inner loop
FAMILIES = {  # per family: evaluation split, default MACs budget (of the teacher's), extra target, query size
    "digits": {"eval_split": "test", "macs": 0.5},
    "cifar10-resnet20": {"eval_split": "test_exact", "macs": 0.5},
    # MiniLM cut to its last 3 layers (about half the teacher's MACs), heads and FFN neurons pruned to 0.3
    "sst2": {"eval_split": "test", "macs": 0.3, "target": {"layers": "last 3"}, "query_per_class": 50},
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fidelity", description=__doc__.split("\n\n")[0])
    p.add_argument("--families", default="digits,cifar10-resnet20,sst2")
    p.add_argument("--policies", type=int, default=20)
    p.add_argument("--episodes", type=int, default=3, help="meta-objective episodes per policy")
    p.add_argument("--shots", type=int, default=10)
    p.add_argument("--macs", type=float, default=None, help="MACs budget, a fraction of the teacher's "
                   "(default: the family's, 0.5 for images, 0.3 for text)")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--inner-steps", type=int, default=None, help="new loop's horizon (default: InnerConfig.steps)")
    p.add_argument("--parts", default="deployed,new,old",
                   help="deployed[@SEED] (adapt() accuracy), new[@STEPS] (current loop, optional horizon), old")
    p.add_argument("--old-commit", default=OLD_COMMIT)
    p.add_argument("--out", default="benchmarks/results/meta_fidelity")
    p.add_argument("--data-root", default=None)
    return p.parse_args(argv)


def _cells(path: Path) -> dict:
    if not path.is_file():
        return {}
    return {cell["key"]: cell for cell in (json.loads(line) for line in path.read_text().splitlines() if line.strip())}


def _append(path: Path, cell: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(cell) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _family_setup(name: str, args):
    from fewshot_kd.task_family import load_task_splits
    from fewshot_kd.meta.episodes import load_family

    family = load_family(name, 10, args.data_root)
    splits = load_task_splits(family.task, args.data_root)
    return family, splits[FAMILIES.get(name, {}).get("eval_split", "test")]


def _macs(name: str, args) -> float:
    return args.macs if args.macs is not None else FAMILIES.get(name, {}).get("macs", 0.5)


def _target(name: str, args) -> dict:
    return {**FAMILIES.get(name, {}).get("target", {}), "macs": _macs(name, args), "bits": args.bits}


def run_deployed(family, eval_set, policy, args, seed: int = 0) -> dict:
    from fewshot_kd import adapt

    tick = time.perf_counter()
    result = adapt(family.teacher, None, shots=args.shots, data=family.train, target=_target(family.name, args),
                   policy=policy, eval_data=eval_set, seed=seed, progress=False)
    student = result.report["eval"]["eval"]["student"]
    return {"accuracy": student["accuracy"], "seconds": time.perf_counter() - tick,
            "compression_bytes": result.report["compression"]["bytes"]}


def _spec(name: str, policies: list[dict], args, inner: dict, base_lr: float) -> dict:
    from fewshot_kd.adapt.policy import HAND_SET

    return {"family": name, "ways": 10, "shots": args.shots, "views": HAND_SET.views_per_shot,
            "query_per_class": FAMILIES.get(name, {}).get("query_per_class", 10), "macs": _macs(name, args),
            "bits": args.bits, "seed": 0, "episodes": args.episodes, "policies": policies, "base_lr": base_lr,
            "data_root": args.data_root, "inner": inner}


def run_meta(name: str, policies: list[dict], args, loop: str, steps: int | None = None,
             base_lr: float | None = None) -> list[dict]:
    """Meta-objective scores of ``policies``: the current loop (``steps``: its horizon) or the
    old one, run from a worktree of ``--old-commit``."""
    script = REPO / "benchmarks" / "fidelity" / "score.py"
    inner = {"order": "first"}  # the loss's value does not depend on the order; no graph is kept
    steps = steps or args.inner_steps
    if loop == "new" and steps:
        inner["steps"] = steps
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        if loop == "old":
            views = 4  # the old loop's own episode views
            worktree = Path(tmp) / "old"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(worktree), args.old_commit],
                           check=True, capture_output=True)
            env["PYTHONPATH"] = str(worktree)
            _task_file_for_old(name, worktree)
            spec = {**_spec(name, policies, args, inner, base_lr), "views": views}
        else:
            spec = _spec(name, policies, args, inner, base_lr)
        spec_path.write_text(json.dumps(spec))
        try:
            subprocess.run([sys.executable, str(script), str(spec_path), str(out_path)], check=True, env=env,
                           cwd=str(worktree if loop == "old" else REPO))
            return json.loads(out_path.read_text())
        finally:
            if loop == "old":
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)],
                               capture_output=True)


def _task_file_for_old(name: str, worktree: Path) -> None:
    """A family added after the old commit gets its task file in the old worktree, minus the
    keys the old code does not know (``episodes``: the old loop drew episodes from train)."""
    import yaml

    target = worktree / "tasks" / f"{name}.yaml"
    source = REPO / "tasks" / f"{name}.yaml"
    if target.exists() or not source.exists():
        return
    data = yaml.safe_load(source.read_text())
    data.pop("episodes", None)
    target.write_text(yaml.safe_dump(data))


def main(argv=None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cells_path = out / "cells.jsonl"
    done = _cells(cells_path)
    state = tree_state(out)
    stamp = {"commit": state["commit"], "git_dirty": state["dirty"], "dirty_paths": state["dirty_paths"]}
    invocation = {"command": " ".join(["python", "-m", "benchmarks.fidelity", *(argv or sys.argv[1:])]),
                  "config": vars(args), **state, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    from benchmarks.fidelity.report import record_invocation, write_report

    invocations = record_invocation(out, invocation)  # kept even if this run is killed
    for name in [f for f in args.families.split(",") if f]:
        family, eval_set = _family_setup(name, args)
        base = hand_set_for(family.text)
        policies = [as_dict(p) for p in draw_policies(args.policies, [g.root for g in family.structure.groups],
                                                      base=base)]
        for part in [p for p in args.parts.split(",") if p]:
            kind, _, option = part.partition("@")
            if kind == "old" and family.text:
                continue  # the old loop built image episodes only
            if kind == "deployed":
                from fewshot_kd.adapt.policy import Policy

                for i, policy in enumerate(policies):
                    key = f"{name}/{part}/{i}"
                    if key not in done:
                        cell = {"key": key, "family": name, "part": part, "policy_index": i, "policy": policy,
                                **run_deployed(family, eval_set, Policy.from_dict(policy), args, int(option or 0)),
                                **stamp}
                        _append(cells_path, cell)
                        print(json.dumps({k: cell[k] for k in ("key", "accuracy", "seconds")}), flush=True)
            else:
                key = f"{name}/{part}"
                missing = [i for i in range(len(policies)) if f"{key}/{i}" not in done]
                if missing:
                    rows = run_meta(name, [policies[i] for i in missing], args, kind, int(option) if option else None,
                                    base.lr)
                    for i, row in zip(missing, rows):
                        _append(cells_path, {"key": f"{key}/{i}", "family": name, "part": part, "policy_index": i,
                                             **row, **stamp})
    write_report(out, invocations)


if __name__ == "__main__":
    main()
