"""Where adapt()'s time goes on this CPU, and how fast pruned students run:
``python -m benchmarks.cpu_speed [--data-root DIR] [--out DIR] [--steps 30]``.

CIFAR-10 ResNet-56 (pretrained), K=10:
- a plain Adam training step of the full ResNet-56 at batch 32, and adapt()'s distillation step of
  the derived half-MACs student (its distill time over its steps), each as a FLOP rate
  (forward + backward = 3 x the forward's 2 x MACs per example): channel pruning with and without
  channels-last, width pruning (the residual streams too, counts rounded to multiples of 8) and
  block dropping;
- each cut's student alone: a plain Adam step of it at the same batch (cross-entropy, no hooks, adaptors or
  teacher), so the distillation loop's own cost reads apart from what the pruned architecture costs;
- latency at batch 1 and 64 of the teacher and of half-MACs students (timed round-robin): channel
  pruning, channel pruning with counts rounded to multiples of 8, width pruning with and without that
  rounding, and block dropping, in default and channels-last memory format;
- adapt()'s latency target at batch 64: channel pruning to 0.7 and 0.5 of the teacher's time, width
  pruning and block dropping to 0.5 (timings in default memory format, measured inside the search,
  teacher and student round-robin).
Writes ``results.json`` and ``results.md`` (the command, commit and machine inside).
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from fewshot_kd import adapt, create_model, load_dataset
from fewshot_kd.adapt.policy import HAND_SET
from fewshot_kd.files import write_json
from fewshot_kd.measure import count_macs, environment_info, paired_latency_ms
from fewshot_kd.prune import prune_
from fewshot_kd.prune.blocks import drop_blocks_

RESULTS = Path(__file__).resolve().parent / "results" / "cpu_speed"
#: width pruning keeps channel counts at multiples of 8 (odd counts are slower than their MACs)
ROUND_TO = {"width": 8}


def _structure(row: dict) -> str:
    """A row's structure, with its rounding (rows made before rounding was recorded have none)."""
    round_to = row.get("round_to")
    return row["structure"] + (f", round_to={round_to}" if round_to else "")


def adam_step_times(model, batch, steps: int) -> list[float]:
    """Seconds of each of ``steps`` Adam steps (forward, cross-entropy, backward, update) at ``batch``."""
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    labels = torch.randint(0, 10, (len(batch),), generator=torch.Generator().manual_seed(0))
    model.train()
    times = []
    for _ in range(steps):
        tick = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(batch), labels).backward()
        optimizer.step()
        times.append(time.perf_counter() - tick)
    return times


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def train_step_seconds(model, batch, repeats: int) -> float:
    """Median seconds of one Adam step at ``batch``, after two untimed warm-up steps."""
    return median(adam_step_times(model, batch, repeats + 2)[2:])


def command_line(module: str, argv) -> str:
    """How ``python -m module`` was called (``argv``, else the process's arguments)."""
    return f"python -m {module} " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))


def write_results(out: str | Path, results: dict, render) -> None:
    """``results.json`` and ``render(results)`` as ``results.md`` in ``out``; the markdown is printed too."""
    out = Path(out)
    write_json(out / "results.json", results)
    (out / "results.md").write_text(render(results))
    print(render(results))


def gflops(macs_per_example: int, batch: int, seconds: float) -> float:
    return 3 * 2 * macs_per_example * batch / seconds / 1e9


def distill_rates(teacher, data, shots, steps: int) -> list[dict]:
    warm = replace(HAND_SET, steps=3, qat_steps=0)  # the first adapt() in a process also pays the kernels' set-up
    adapt(teacher, None, shots=10, data=data, target={"macs": 0.5, "bits": 8}, policy=warm, eval_data={}, progress=False)
    rows = []
    for structure, channels_last in (("channels", False), ("channels", True), ("width", False), ("width", True),
                                     ("blocks", True)):
        policy = replace(HAND_SET, steps=steps, qat_steps=0, channels_last=channels_last, structure=structure,
                         prune_round_to=ROUND_TO.get(structure))
        result = adapt(teacher, None, shots=10, data=data, target={"macs": 0.5, "bits": 8}, policy=policy,
                       eval_data={}, progress=False)
        r = result.report
        per_step = r["stages"]["distill_seconds"] / steps
        own = student_step_seconds(result.student, shots[:policy.batch_size], channels_last, steps)
        rows.append({"structure": structure, "round_to": policy.prune_round_to, "channels_last": channels_last,
                     "steps": steps, "seconds_per_step": per_step,
                     "student_macs": r["student"]["macs"], "batch": policy.batch_size,
                     "gflops": gflops(r["student"]["macs"], policy.batch_size, per_step),
                     "student_plain_seconds": own,
                     "student_plain_gflops": gflops(r["student"]["macs"], policy.batch_size, own),
                     "adapt_seconds": r["adapt_seconds"]})
    return rows


def student_step_seconds(student, inputs, channels_last: bool, repeats: int) -> float:
    """Median seconds of a plain Adam step (cross-entropy, no teacher, hooks or adaptors) of a
    trainable copy of ``student`` on the batch ``inputs``: what its architecture costs without the
    distillation loop."""
    model = copy.deepcopy(student).float().requires_grad_(True)
    if channels_last:
        model, inputs = model.to(memory_format=torch.channels_last), inputs.contiguous(memory_format=torch.channels_last)
    return train_step_seconds(model, inputs, repeats)


def students(teacher, shots) -> dict:
    example = shots[:1]
    half = 0.5 * count_macs(teacher, example)
    out = {"teacher": teacher}
    for name, round_to, streams in (("channels", None, False), ("channels round_to=8", 8, False),
                                    ("width", None, True), ("width round_to=8", 8, True)):
        model = copy.deepcopy(teacher)
        prune_(model, example, target_macs=half, round_to=round_to, tolerance=0.03, below_ok=True, streams=streams)
        out[name] = model
    blocks = copy.deepcopy(teacher)
    drop_blocks_(blocks, shots, half)
    out["blocks"] = blocks
    return out


def latencies(models: dict, repeats: int) -> list[dict]:
    """Per model: its MACs and median ms at batch 1 and 64 in each memory format, the models of one
    setting timed round-robin (a slow spell of the machine hits them all alike)."""
    rows = {name: {"model": name, "macs": count_macs(model, torch.zeros(1, 3, 32, 32))} for name, model in models.items()}
    for fmt, memory in (("default", torch.contiguous_format), ("channels_last", torch.channels_last)):
        placed = {name: copy.deepcopy(model).to(memory_format=memory).eval() for name, model in models.items()}
        for batch in (1, 64):
            x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=memory)
            for name, ms in paired_latency_ms(placed, x, warmup=3, repeats=repeats).items():
                rows[name][f"{fmt}_b{batch}_ms"] = ms
    return list(rows.values())


def latency_target(teacher, data) -> list[dict]:
    """adapt()'s derive stage under a latency target at batch 64 (MACs at most 0.5), per structure."""
    from fewshot_kd.errors import FewShotKDError

    rows = []
    for structure, fraction in (("channels", 0.7), ("channels", 0.5), ("width", 0.5), ("blocks", 0.5)):
        policy = replace(HAND_SET, steps=1, qat_steps=0, structure=structure, prune_round_to=ROUND_TO.get(structure))
        target = {"macs": 0.5, "bits": None, "latency": fraction, "latency_batch": 64}
        row = {"structure": structure, "round_to": policy.prune_round_to, "target": target}
        try:
            result = adapt(teacher, None, shots=10, data=data, target=target, policy=policy, eval_data={},
                           progress=False)
        except FewShotKDError as error:
            rows.append({**row, "unreachable": str(error)})
            continue
        fit = result.report["decisions"]["latency_fit"]
        chosen = fit["attempts"][fit["chosen"]]
        rows.append({**row, "teacher_ms": chosen["teacher_ms"], "student_ms": chosen["ms"],
                     "speedup": chosen["teacher_ms"] / chosen["ms"],
                     "macs_fraction": result.report["decisions"]["macs_fraction"], "attempts": fit["attempts"]})
    return rows


def render(results: dict) -> str:
    """``results.md``: the command, commit and machine, then :func:`tables`."""
    return "\n".join([f"# CPU speed (`{results['command']}`)", "",
                      f"Commit `{results['environment']['git_commit'][:12]}`, {results['environment']['cpu_model']}, "
                      f"{results['environment']['torch_threads']} threads, torch {results['environment']['torch']}.", "",
                      tables(results)])


def tables(results: dict) -> str:
    """The FLOP-rate, latency and latency-target tables (markdown)."""
    lines = ["| step | s per step | GFLOP/s | share of the plain step's rate | the student's own plain step: s, share |",
             "|---|---:|---:|---:|---:|"]
    plain = results["plain_train_step"]
    lines.append(f"| plain Adam step, full ResNet-56, batch 32 | {plain['seconds']:.3f} | {plain['gflops']:.1f} | 100 % | |")
    for row in results["distill_step"]:
        own = (f"{row['student_plain_seconds']:.3f}, {row['student_plain_gflops'] / plain['gflops']:.0%}"
               if "student_plain_seconds" in row else "not measured")
        lines.append(f"| adapt() distillation step, half-MACs student ({_structure(row)}"
                     f"{', channels-last' if row['channels_last'] else ''}) | "
                     f"{row['seconds_per_step']:.3f} | {row['gflops']:.1f} | {row['gflops'] / plain['gflops']:.0%} | {own} |")
    lines += ["", "| model | MACs | b1 ms | b64 ms | b1 ms (CL) | b64 ms (CL) | b64 speed-up (CL) |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    teacher = results["latency"][0]
    for row in results["latency"]:
        lines.append(f"| {row['model']} | {row['macs'] / 1e6:.1f} M | {row['default_b1_ms']:.2f} | {row['default_b64_ms']:.1f} | "
                     f"{row['channels_last_b1_ms']:.2f} | {row['channels_last_b64_ms']:.1f} | "
                     f"{teacher['channels_last_b64_ms'] / row['channels_last_b64_ms']:.2f}x |")
    lines += ["", "| latency target (batch 64, MACs at most 0.5) | structure | MACs kept | teacher ms | student ms | speed-up |",
              "|---|---|---:|---:|---:|---:|"]
    for row in results["latency_target"]:
        head = f"| {row['target']['latency']} | {_structure(row)} |"
        if "unreachable" in row:
            lines.append(f"{head} unreachable | | | |")
        else:
            lines.append(f"{head} {row['macs_fraction']:.3f} | {row['teacher_ms']:.1f} | {row['student_ms']:.1f} | "
                         f"{row['speedup']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--steps", type=int, default=30, help="distillation steps timed per adapt() run")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per latency and training step")
    args = parser.parse_args(argv)
    data = load_dataset("cifar10", data_root=args.data_root)
    teacher = create_model("cifar_resnet56", pretrained=True, data_root=args.data_root).eval()
    shots = data.train.few_shot(10, seed=0).all_inputs()
    macs = count_macs(teacher, shots[:1])
    seconds = train_step_seconds(copy.deepcopy(teacher), shots[:32], args.repeats)
    results = {"command": command_line("benchmarks.cpu_speed", argv),
               "environment": environment_info(),
               "plain_train_step": {"seconds": seconds, "batch": 32, "macs": macs, "gflops": gflops(macs, 32, seconds)},
               "distill_step": distill_rates(teacher, data, shots, args.steps),
               "latency": latencies(students(teacher, shots), args.repeats),
               "latency_target": latency_target(teacher, data)}
    write_results(args.out, results, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
