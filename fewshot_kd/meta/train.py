"""The meta-training loop: episodes -> bilevel meta-gradients -> Adam on the policy,
with atomic checkpoints every N meta-steps and exact resume."""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from fewshot_kd.errors import CorruptFileError, FewShotKDError
from fewshot_kd.files import load_torch, save_torch
from fewshot_kd.meta.backends import INNER_BACKENDS
from fewshot_kd.meta.config import MetaTrainConfig
from fewshot_kd.meta.distributed import all_reduce_gradients_, all_reduce_metrics, init_from_env, my_episodes
from fewshot_kd.meta.episodes import load_family, make_episode
from fewshot_kd.meta.meta_policy import MetaPolicy
from fewshot_kd.meta.policy_net import PolicyNet
from fewshot_kd.meta.vmapped import grouped_meta_losses
from fewshot_kd.meta.validation import EarlyStopping, score_policy, validation_episodes
from fewshot_kd.progress import format_metrics, progress_bar

CHECKPOINT = "checkpoint.pt"
_KEYS = ("config", "policy", "optimizer", "step", "history")
METRICS = ("meta_loss", "query_acc", "macs_fraction", "compression", "temperature", "alpha", "stop_fraction",
           "augment_strength")


def _restore(path: Path, config: MetaTrainConfig, net: PolicyNet, optimizer,
             stopping: EarlyStopping) -> tuple[int, list[dict]]:
    try:
        state = load_torch(path)
    except CorruptFileError as error:
        raise CorruptFileError(f"{error}; or start over with --fresh") from None
    missing = [k for k in _KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CorruptFileError(f"{path} is not a meta-training checkpoint (it lacks {missing}); start over with --fresh")
    try:
        same = MetaTrainConfig.from_dict(state["config"]) == config  # older runs lack newer keys
    except (FewShotKDError, TypeError):
        same = False
    if not same:
        raise FewShotKDError(
            f"{path} was written by a run with another config; resume with the same flags, or start over "
            f"in a new --out folder (or with --fresh)")
    net.load_state_dict(state["policy"])
    optimizer.load_state_dict(state["optimizer"])
    if "validation" in state:
        stopping.load_state_dict(state["validation"])
    return int(state["step"]), list(state["history"])


def meta_gradient(net: PolicyNet, families, config: MetaTrainConfig, indices: list[int], rank: int = 0,
                  world: int = 1, device: torch.device = torch.device("cpu")) -> dict:
    """Accumulate the mean meta-gradient of episodes ``indices`` into ``net``'s ``.grad``
    (this rank's share, all-reduced over ranks); returns the mean metrics."""
    totals = [0.0] * len(METRICS)
    # precision="bf16": the student under autocast; PolicyNet and the budget projection switch it off (fp32)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16")
    episode_loss = INNER_BACKENDS.get(config.backend)
    episodes = [make_episode(families, index, config.episode_spec, config.seed)
                for index in my_episodes(indices, rank, world)]
    # config.vmap: one torch.func.vmap call per group of same-shaped episodes (MetaTrainConfig checks order="first")
    groups = grouped_meta_losses(net, episodes, config.inner, episode_loss) if config.vmap else \
        ([(e, *episode_loss(net, e, config.inner))] for e in episodes)
    while True:
        with autocast:
            group = next(groups, None)
        if group is None:
            break
        for episode, loss, metrics in group:
            if not math.isfinite(loss.item()):
                raise FewShotKDError(f"meta-loss is {loss.item()} on episode {episode.index} ({episode.record()}); "
                                     f"lower --inner-lr or --outer-lr")
            for i, key in enumerate(METRICS):
                totals[i] += metrics[key]
        (sum(loss for _, loss, _ in group) / len(indices)).backward()
    all_reduce_gradients_(net.parameters(), world)
    totals = all_reduce_metrics(totals, world)
    return {key: value / len(indices) for key, value in zip(METRICS, totals)}


def block_prior(config: MetaTrainConfig) -> str:
    """``config.block_prior``, with ``"auto"`` resolved: ``"spread"`` (every other block) when every
    family is extractive QA or a causal LM (adapt() keeps every other layer there), else ``"last"``."""
    if config.block_prior != "auto":
        return config.block_prior
    from fewshot_kd.task_family import find_task_family

    modalities = {find_task_family(name).modality for name in config.tasks}
    return "spread" if modalities <= {"qa", "lm"} else "last"


def meta_train(config: MetaTrainConfig, out_dir: str | Path, *, resume: bool = False, data_root=None,
               device: str | torch.device = "cpu", progress: bool = True, stop_after: int | None = None,
               command: str | None = None) -> MetaPolicy:
    """Run (or resume) meta-training; writes ``policy.json`` + ``policy.safetensors`` (the
    policy adapt() reads) and ``checkpoint.pt`` into ``out_dir``. ``stop_after`` ends after
    that many meta-steps (as if killed), for resume tests."""
    out_dir = Path(out_dir)
    rank, world, device = init_from_env(device)  # on CUDA: cuda:LOCAL_RANK under torchrun
    torch.manual_seed(config.seed)
    net = PolicyNet(config.hidden, block_prior(config)).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.outer_lr)
    stopping = EarlyStopping(config.patience)
    checkpoint = out_dir / CHECKPOINT
    start, history = 0, []
    if resume and checkpoint.exists():
        start, history = _restore(checkpoint, config, net, optimizer, stopping)
    elif checkpoint.exists() and not resume:
        raise FewShotKDError(f"{checkpoint} exists: pass --resume to continue that run, or choose another --out")
    show = progress and rank == 0
    families = [load_family(name, config.ways, data_root, config.classes.get(name), progress=show, device=device)
                for name in config.tasks]
    held_out = [load_family(name, config.ways, data_root, progress=show, device=device) for name in config.validate]
    validation = validation_episodes(held_out, config.validate_episodes, config.episode_spec, config.seed) \
        if held_out else []
    tick = time.perf_counter()
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    stopped_early = stopping.should_stop
    with progress_bar(show) as bar:
        task = bar.add_task("meta-training", total=config.steps, completed=start, metrics="")
        for step in range(start, end):
            if stopped_early:
                break
            optimizer.zero_grad(set_to_none=True)
            first = step * config.meta_batch
            indices = list(range(first, min(first + config.meta_batch, config.episodes)))
            metrics = meta_gradient(net, families, config, indices, rank, world, device)
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
            done = step + 1
            if validation and (done % config.validate_every == 0 or done == config.steps):
                scores = score_policy(net, validation, config.inner, config.backend, rank, world)
                stopping.update(done, scores, net)
                metrics = {**metrics, **{f"val_{k}": v for k, v in scores.items()}}
                stopped_early = stopping.should_stop
            history.append({"step": done, **metrics})
            bar.update(task, advance=1, metrics=format_metrics(
                loss=metrics["meta_loss"], acc=metrics["query_acc"], macs=metrics["macs_fraction"],
                x=metrics["compression"], T=metrics["temperature"],
                **({"val": stopping.history[-1]["query_acc"]} if stopping.history else {})))
            if rank == 0 and (done % config.checkpoint_every == 0 or done == end or stopped_early):
                save_torch(checkpoint, {"config": config.to_dict(), "policy": net.state_dict(),
                                        "optimizer": optimizer.state_dict(), "step": done, "history": history,
                                        "validation": stopping.state_dict()})
    finished = stopped_early or end == config.steps
    record = None
    if validation:
        record = stopping.record(list(config.validate), len(validation), config.validate_every, stopped_early)
        if finished and stopping.best_state is not None:
            net.load_state_dict(stopping.best_state)  # the run ships the policy that validated best
    policy = MetaPolicy(net.cpu(), config=config.to_dict(), trained_on=[f.split_record() for f in families],
                        history=history, command=command, seconds=time.perf_counter() - tick, finished=finished,
                        validation=record)
    if rank == 0:
        policy.save(out_dir)
    return policy
