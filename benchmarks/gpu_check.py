"""The prepared GPU check, at most 8 minutes on one GPU: ``python -m benchmarks.gpu_check``.

Runs ``pytest -m gpu``; times one meta-step per inner-loop backend and order (fp32 and bf16
autocast), meta-training episodes per second (``meta_gradient``, as ``meta_train`` runs it)
and adapt() at K=10 on CIFAR-10 ResNet-56 (derived student, int8; the pretrained weights and
CIFAR-10 from the library's data root); records peak GPU memory per part. Writes one JSON named
after the device to ``benchmarks/results/gpu/``. A part that would start past ``--budget-s`` is
skipped and says so; a part that fails records its error and the rest still run. Episodes per
second are measured with and without vmap over episodes. On a machine without CUDA it refuses
(exit 2) unless ``--allow-cpu``, a smoke test of this script that writes only where ``--out`` says.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent / "results" / "gpu"
NO_GPU = ("no CUDA device here: this check measures a GPU. Run it on a machine with one, or pass --allow-cpu "
          "(with --out) for a smoke test of the script itself; its CPU figures are not GPU results")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--allow-cpu", action="store_true", help="run without CUDA (smoke test of the script)")
    p.add_argument("--out", default=None, help=f"folder for the JSON (default {OUT}; required with --allow-cpu)")
    p.add_argument("--budget-s", type=float, default=480.0, help="skip parts that would start after this")
    p.add_argument("--repeats", type=int, default=3, help="timed meta-steps per backend, order and precision")
    p.add_argument("--episodes", type=int, default=8, help="episodes in the episodes-per-second meta-batch")
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=10)
    p.add_argument("--views", type=int, default=12)
    p.add_argument("--inner-steps", type=int, default=60)
    p.add_argument("--orders", default="first,truncated,second", help="inner-loop orders to time, comma-separated")
    p.add_argument("--skip-pytest", action="store_true")
    p.add_argument("--skip-adapt", action="store_true")
    p.add_argument("--data-root", default=None)
    p.add_argument("--commit", default=None,
                   help="the source commit, recorded instead of the git history of the copy this runs in")
    return p.parse_args(argv)


class Clock:
    """Seconds since the start, against the budget."""

    def __init__(self, budget: float) -> None:
        self.start, self.budget = time.perf_counter(), budget

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak(device: torch.device) -> int | None:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def run_gpu_tests(timeout: float) -> dict:
    """``pytest -m gpu`` over the test files that hold GPU tests (collecting only those, so a
    package the rest of the suite needs may be missing there): exit code and summary line."""
    tests = Path(__file__).resolve().parent.parent / "tests"
    files = sorted(str(f) for f in tests.rglob("test_*.py") if "pytest.mark.gpu" in f.read_text())
    command = [sys.executable, "-m", "pytest", "-q", "-rfEs", "-m", "gpu", "-p", "no:cacheprovider", *files]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"returncode": None, "summary": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return {"returncode": done.returncode, "files": [str(Path(f).relative_to(tests.parent)) for f in files],
            "summary": lines[-1] if lines else done.stderr[-500:], "output_tail": done.stdout[-6000:]}


def _config(args, **overrides):
    from fewshot_kd.meta.config import MetaTrainConfig

    return MetaTrainConfig(ways=args.ways, shots=(args.shots,), views=args.views, inner_steps=args.inner_steps,
                           **overrides)


def time_meta_steps(args, family, device: torch.device, clock: Clock) -> list[dict]:
    """Median milliseconds of one episode's meta-loss and backward per backend, order, precision."""
    from benchmarks.meta_inner_gpu import meta_step_times
    from fewshot_kd.meta.config import BACKENDS

    rows = []
    orders = [o for o in args.orders.split(",") if o]
    for backend, order, bf16 in [(b, o, p) for b in BACKENDS for o in orders for p in (False, True)]:
        if clock.left() <= 0:
            rows.append({"backend": backend, "order": order, "bf16": bf16, "skipped": "over the time budget"})
            continue
        config = _config(args, backend=backend, order=order)
        _reset_peak(device)
        times = meta_step_times(family, config, device, bf16, args.repeats)
        rows.append({"backend": backend, "order": order, "bf16": bf16, "inner_steps": config.inner_steps,
                     "median_ms": statistics.median(times), "repeats": args.repeats, "peak_bytes": _peak(device)})
    return rows


EPISODE_RATES = [("fp32", {}), ("fp32", {"order": "first"}), ("bf16", {}), ("bf16", {"order": "first"}),
                 ("fp32", {"order": "first", "vmap": True})]
"""Precision and config overrides of each episodes-per-second row (vmap runs in fp32 only)."""


def episodes_per_second(args, family, device: torch.device) -> list[dict]:
    """One meta-batch of ``--episodes`` through ``meta_gradient``, as ``meta_train`` runs it,
    per precision (fp32, and the student under bf16 autocast): at the default order and at
    order first, and in fp32 at order first with vmap over episodes (``MetaTrainConfig.vmap``,
    fp32 only; all episodes share K here, so they stack into one vmap call)."""
    from fewshot_kd.meta.policy_net import PolicyNet
    from fewshot_kd.meta.train import meta_gradient

    rows = []
    for precision, overrides in EPISODE_RATES:
        config = _config(args, meta_batch=args.episodes, precision=precision, **overrides)
        families = [family]
        net = PolicyNet(config.hidden).to(device)
        warm_up = [args.episodes + 1, args.episodes + 2]  # two: the vmapped path warms up too
        meta_gradient(net, families, config, warm_up, device=device)
        _reset_peak(device)
        _sync(device)
        tick = time.perf_counter()
        meta_gradient(net, families, config, list(range(1, args.episodes + 1)), device=device)
        _sync(device)
        seconds = time.perf_counter() - tick
        rows.append({"precision": precision, "episodes": args.episodes, "seconds": seconds,
                     "episodes_per_second": args.episodes / seconds, "order": config.order,
                     "inner_steps": config.inner_steps, "vmap": config.vmap, "peak_bytes": _peak(device)})
    return rows


def bf16_agreement(args, family, device: torch.device) -> list[dict]:
    """Cosine between one episode's policy meta-gradient under bf16 autocast and in fp32, at
    adapt()'s Adam epsilon (1e-8) and at 1e-3 (see ``MetaTrainConfig.precision``)."""
    from dataclasses import replace

    from fewshot_kd.meta.episodes import make_episode
    from fewshot_kd.meta.objective import episode_loss
    from fewshot_kd.meta.policy_net import PolicyNet

    config = _config(args)
    episode = make_episode([family], 0, config.episode_spec, config.seed)
    rows = []
    for eps in (1e-8, 1e-3):
        grads = []
        for bf16 in (False, True):
            torch.manual_seed(0)
            net = PolicyNet(config.hidden).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss, _ = episode_loss(net, episode, replace(config.inner, adam_eps=eps))
            loss.backward()
            grads.append(torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None]))
        cosine = torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0).item()
        relative = ((grads[1] - grads[0]).norm() / grads[0].norm()).item()
        rows.append({"adam_eps": eps, "cosine": cosine, "relative_error": relative,
                     "inner_steps": config.inner_steps, "order": config.order})
    return rows


def time_adapt(args, device: torch.device) -> dict:
    """adapt() at K=10 on CIFAR-10 ResNet-56, derived student at half the MACs, int8: the first
    call in the process and a second one."""
    from fewshot_kd import adapt, create_model, load_dataset

    teacher = create_model("cifar_resnet56", pretrained=True, data_root=args.data_root).eval()
    data = load_dataset("cifar10", data_root=args.data_root)
    runs = []
    for _ in range(2):  # the first call in a process also pays for kernel selection and warm-up
        _reset_peak(device)
        tick = time.perf_counter()
        result = adapt(teacher, None, shots=10, data=data, target={"macs": 0.5, "bits": 8}, device=device,
                       eval_data={}, progress=False)
        _sync(device)
        runs.append({"wall_seconds": time.perf_counter() - tick, "adapt_seconds": result.report["adapt_seconds"],
                     "stages": result.report["stages"], "compression": result.report["compression"],
                     "peak_bytes": _peak(device)})
    return {"shots": 10, "target": {"macs": 0.5, "bits": 8}, "runs": runs}


def _part(results: dict, name: str, clock: Clock, fn) -> None:
    """``results[name] = fn()``, or what stopped it (the time budget, or its error)."""
    if clock.left() <= 0:
        results[name] = {"skipped": "over the time budget"}
        return
    tick = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as error:  # a GPU check reports every part it can; a failure is a result too
        results[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-4000:]}
    print(f"{name}: {time.perf_counter() - tick:.1f} s{' (failed)' if 'error' in results[name] else ''}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print(f"error: {NO_GPU}", file=sys.stderr)
        return 2
    if not cuda and args.out is None:
        print("error: --allow-cpu needs --out: CPU smoke results never go to benchmarks/results/gpu/", file=sys.stderr)
        return 2
    from fewshot_kd.files import write_json
    from fewshot_kd.measure.environment import environment_info

    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    name = torch.cuda.get_device_name(device) if cuda else "cpu (smoke test, not a GPU result)"
    clock = Clock(args.budget_s)
    environment = environment_info()
    if args.commit:  # the source commit, given: a copy made elsewhere may carry a git history of its own
        environment.update(git_commit=args.commit, git_commit_from="--commit", git_dirty_of_the_copy=environment.pop("git_dirty"))
    results: dict = {"device": name, "cuda": cuda, "torch": torch.__version__, "environment": environment,
                     "settings": {k: v for k, v in vars(args).items() if k != "out"}}
    if not args.skip_pytest:
        _part(results, "pytest_gpu", clock, lambda: run_gpu_tests(max(clock.left() - 180, 60)))
    from fewshot_kd.meta.episodes import load_family

    family = load_family("digits", args.ways, args.data_root, progress=False, device=device)
    _part(results, "meta_step", clock, lambda: time_meta_steps(args, family, device, clock))
    _part(results, "meta_training", clock, lambda: episodes_per_second(args, family, device))
    if cuda:
        _part(results, "meta_gradient_bf16_vs_fp32", clock, lambda: bf16_agreement(args, family, device))
    if not args.skip_adapt:
        _part(results, "adapt_resnet56_k10", clock, lambda: time_adapt(args, device))
    results["peak_bytes"] = _peak(device)
    results["seconds"] = time.perf_counter() - clock.start
    out = Path(args.out) if args.out is not None else OUT
    path = write_json(out / f"{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_').lower()}.json", results)
    print(f"wrote {path} ({results['seconds']:.0f} s)")
    failed = results.get("pytest_gpu", {}).get("returncode") not in (None, 0, 5)  # 5: no test collected
    failed = failed or any(isinstance(v, dict) and "error" in v for v in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
