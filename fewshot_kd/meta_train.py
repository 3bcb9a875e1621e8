"""``python -m fewshot_kd.meta_train``: meta-learn the compression policy adapt() uses.

With no arguments it meta-trains on the embedded digits family (offline, a few minutes on
2 CPU cores) and writes ``runs/meta_train/policy.json`` + ``policy.safetensors``. Scale out
with ``torchrun --nproc_per_node=N -m fewshot_kd.meta_train ...`` (episodes split over
ranks, meta-gradients all-reduced).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from fewshot_kd.meta.config import BACKENDS, PRECISIONS, MetaTrainConfig
from fewshot_kd.meta.layer_choice import BLOCK_PRIORS
from fewshot_kd.meta.objective import ORDERS

DEFAULTS = MetaTrainConfig()


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fewshot_kd.meta_train", description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default=",".join(DEFAULTS.tasks), help="task families (names in tasks/ or files), comma-separated")
    p.add_argument("--episodes", type=int, default=DEFAULTS.episodes)
    p.add_argument("--meta-batch", type=int, default=DEFAULTS.meta_batch, help="episodes per meta-gradient step")
    p.add_argument("--shots", type=_ints, default=DEFAULTS.shots, help="K values episodes draw from, e.g. 5,10,20")
    p.add_argument("--ways", type=int, default=DEFAULTS.ways)
    p.add_argument("--query-per-class", type=int, default=DEFAULTS.query_per_class, help="query examples per class and episode")
    p.add_argument("--views", type=int, default=DEFAULTS.views, help="augmented views per support shot")
    p.add_argument("--macs-range", type=float, nargs=2, metavar=("LOW", "HIGH"), default=DEFAULTS.macs_range,
                   help="MACs budgets (fractions of the teacher's) episodes draw from")
    p.add_argument("--bits", type=_ints, default=DEFAULTS.bits,
                   help="average weight bit widths episodes draw from, e.g. 8,5,4 (below 8: per-layer 4 or 8 bits)")
    p.add_argument("--inner-steps", type=int, default=DEFAULTS.inner_steps)
    p.add_argument("--inner-lr", type=float, default=DEFAULTS.inner_lr)
    p.add_argument("--outer-lr", type=float, default=DEFAULTS.outer_lr)
    p.add_argument("--backend", choices=BACKENDS, default=DEFAULTS.backend)
    p.add_argument("--order", choices=ORDERS, default=DEFAULTS.order)
    p.add_argument("--truncate", type=int, default=DEFAULTS.truncate, help="last inner steps differentiated to second order (--order truncated)")
    p.add_argument("--validate", default="", help="families held out of training and scored during it (meta-validation), comma-separated")
    p.add_argument("--validate-every", type=int, default=DEFAULTS.validate_every, help="meta-steps between validation scorings")
    p.add_argument("--validate-episodes", type=int, default=DEFAULTS.validate_episodes, help="fixed validation episodes")
    p.add_argument("--patience", type=int, default=DEFAULTS.patience,
                   help="stop after this many validation scorings without improvement (0: never); the best-validated policy is shipped")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=PRECISIONS, default=DEFAULTS.precision,
                   help="the student's inner loop in fp32 or under bf16 autocast (faster on GPUs, noisier meta-gradients)")
    p.add_argument("--vmap", action="store_true",
                   help="run the meta-batch's same-shaped episodes in one torch.func.vmap call (needs --order first, fp32)")
    p.add_argument("--block-prior", choices=("auto",) + BLOCK_PRIORS, default=DEFAULTS.block_prior,
                   help="blocks an untrained policy keeps: last, or spread (every other); auto: spread for QA and LM "
                        "families, as adapt() keeps")
    p.add_argument("--checkpoint-every", type=int, default=DEFAULTS.checkpoint_every, help="meta-steps between checkpoints")
    p.add_argument("--out", default="runs/meta_train", help="output folder (policy, checkpoint, plot)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--resume", action="store_true", help="continue the run whose checkpoint is in --out")
    p.add_argument("--fresh", action="store_true", help="delete --out's checkpoint and start over")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def launcher(env=None) -> str:
    """How this process was started, as policy.json records it: ``torchrun --nproc_per_node=N``
    under torchrun (its ``LOCAL_WORLD_SIZE``, and ``--nnodes`` when there are several), else ``python``."""
    env = os.environ if env is None else env
    world, local = int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_WORLD_SIZE", env.get("WORLD_SIZE", "1")))
    if world <= 1:
        return "python"
    nodes = world // max(local, 1)
    return f"torchrun --nproc_per_node={local}" + (f" --nnodes={nodes}" if nodes > 1 else "")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from fewshot_kd.errors import FewShotKDError
    from fewshot_kd.meta.plots import plot_history
    from fewshot_kd.meta.train import CHECKPOINT, meta_train

    config = MetaTrainConfig(
        tasks=tuple(t for t in args.tasks.split(",") if t), episodes=args.episodes, meta_batch=args.meta_batch,
        shots=args.shots, ways=args.ways, query_per_class=args.query_per_class, views=args.views,
        macs_range=tuple(args.macs_range), bits=args.bits,
        inner_steps=args.inner_steps, inner_lr=args.inner_lr,
        outer_lr=args.outer_lr, backend=args.backend, order=args.order, truncate=args.truncate, seed=args.seed,
        checkpoint_every=args.checkpoint_every, validate=tuple(t for t in args.validate.split(",") if t),
        validate_every=args.validate_every, validate_episodes=args.validate_episodes, patience=args.patience,
        precision=args.precision, vmap=args.vmap, block_prior=args.block_prior)
    out = Path(args.out)
    if args.fresh and (out / CHECKPOINT).exists():
        (out / CHECKPOINT).unlink()
    command = launcher() + " -m fewshot_kd.meta_train " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    try:
        policy = meta_train(config, out, resume=args.resume, data_root=args.data_root, device=args.device,
                            progress=not args.no_progress, command=command.strip())
    except FewShotKDError as error:
        raise SystemExit(f"error: {error}") from None
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_rank() == 0:
        plot_history(policy.history, out / "meta_training.png")
        last = policy.history[-10:]
        if last:
            acc = sum(h["query_acc"] for h in last) / len(last)
            print(f"wrote {out / 'policy.json'} ({len(policy.history)} meta-steps, {policy.seconds:.0f} s; "
                  f"query accuracy over the last {len(last)} steps {acc:.3f}); use it with "
                  f"fewshot_kd.adapt(..., policy='{out}')")
            if policy.validation:
                v = policy.validation
                best = next(h for h in v["history"] if h["step"] == v["best_step"])
                print(f"meta-validation on {', '.join(v['families'])}: best at step {v['best_step']} (meta-loss "
                      f"{best['meta_loss']:.3f}, query accuracy {best['query_acc']:.3f})"
                      + ("; stopped early" if v["stopped_early"] else "") + "; that policy was saved")
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
