"""Does ``torch.compile`` pay for adapt() on this CPU? ``python -m benchmarks.compile_probe``.

The derived half-MACs CIFAR-10 ResNet-56 student (channel-pruned, pretrained weights), a plain
Adam training step at batch 32, eager against ``torch.compile`` (inductor): the compile time (the
first compiled step) with an empty compile cache (a new architecture: every pruned student is one)
and again with the cache that run left (the same shapes compiled before), the median step after
it, and the steps after which compiling breaks even against adapt()'s 300 hand-set steps. Writes ``results.json`` and ``results.md`` (command, commit
and machine inside) to ``benchmarks/results/compile_probe/``.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
from pathlib import Path

import torch

from fewshot_kd import create_model
from fewshot_kd.adapt.policy import HAND_SET
from fewshot_kd.measure import count_macs, environment_info
from fewshot_kd.prune import prune_

from benchmarks.cpu_speed import adam_step_times, command_line, median, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "compile_probe"


def probe(data_root, steps: int) -> dict:
    teacher = create_model("cifar_resnet56", pretrained=True, data_root=data_root).eval()
    batch = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    student = copy.deepcopy(teacher)
    prune_(student, batch[:1], target_macs=0.5)
    eager = adam_step_times(copy.deepcopy(student), batch, steps)
    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # an empty cache: nothing compiled before
        try:
            cold = adam_step_times(torch.compile(copy.deepcopy(student)), batch, steps)
            torch._dynamo.reset()
            warm = adam_step_times(torch.compile(copy.deepcopy(student)), batch, 3)
        finally:
            if before is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR")
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = before
    eager_s, compiled_s = median(eager[2:]), median(cold[2:])
    saving = eager_s - compiled_s
    return {"macs_fraction": count_macs(student, batch[:1]) / count_macs(teacher, batch[:1]), "batch": 32,
            "eager_step_s": eager_s, "compiled_step_s": compiled_s, "first_compiled_step_s": cold[0],
            "first_compiled_step_warm_cache_s": warm[0], "speedup": eager_s / compiled_s,
            "break_even_steps": cold[0] / saving if saving > 0 else None,
            "break_even_steps_warm_cache": warm[0] / saving if saving > 0 else None,
            "adapt_steps": HAND_SET.steps, "threads": torch.get_num_threads()}


def render(results: dict) -> str:
    r = results["probe"]
    even = "never" if r["break_even_steps"] is None else f"{r['break_even_steps']:.0f} steps"
    warm = r.get("break_even_steps_warm_cache")
    pays = r["break_even_steps"] is not None and r["break_even_steps"] < r["adapt_steps"]
    return (f"# torch.compile on this CPU\n\nCommand: `{results['command']}`  \n"
            f"Commit: `{results['environment'].get('git_commit')}`  \nMachine: {results['environment'].get('cpu_model')}, "
            f"{r['threads']} thread(s), torch {results['environment'].get('torch')}\n\n"
            f"| half-MACs ResNet-56 student ({r['macs_fraction']:.3f} MACs), Adam step at batch {r['batch']} | value |\n"
            f"|---|---:|\n| eager, median s | {r['eager_step_s']:.3f} |\n| compiled, median s | {r['compiled_step_s']:.3f} |\n"
            f"| speed-up | {r['speedup']:.2f}x |\n| first compiled step (compile, empty cache), s | "
            f"{r['first_compiled_step_s']:.1f} |\n| break-even (empty cache) | {even} |\n"
            + (f"| first compiled step (cache of the same shapes), s | {r['first_compiled_step_warm_cache_s']:.1f} |\n"
               f"| break-even (cached) | {'never' if warm is None else f'{warm:.0f} steps'} |\n"
               if "first_compiled_step_warm_cache_s" in r else "")
            + f"\nadapt() runs {r['adapt_steps']} steps: compiling a new student "
            f"{'pays' if pays else 'does not pay'} for one adapt() call here.\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compile_probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--steps", type=int, default=12, help="timed steps per mode (the first two are not counted)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {"command": command_line("benchmarks.compile_probe", argv),
               "environment": environment_info(), "probe": probe(args.data_root, args.steps)}
    write_results(args.out, results, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
