"""Run one cell (task, method, K, seed) and measure what the method returns."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from fewshot_kd.measure import (count_macs, count_params, evaluate, latency_profile, measure_energy, measure_peak_memory,
                                paired_latency_ms, predict, saved_size_bytes)
from fewshot_kd.model_io import CallableModule, model_device

from benchmarks.harness.context import TaskContext
from benchmarks.harness.store import cell_key
from benchmarks.methods.base import MethodInput, get_method

SAMPLE_PREDICTIONS = 16


def sample_indices(data) -> list[int]:
    """Evaluation examples spread evenly over the split (splits are often sorted by class)."""
    return torch.linspace(0, len(data) - 1, SAMPLE_PREDICTIONS).long().tolist()


def teacher_reference(ctx: TaskContext, workdir: Path) -> dict:
    """Bytes of the teacher's saved weights and its MACs, the denominators of every ratio."""
    return {"bytes": saved_size_bytes(ctx.teacher), "macs": count_macs(ctx.teacher, ctx.example_inputs()),
            "params": count_params(ctx.teacher)}


def speedups(teacher, model, make_inputs, batch_sizes=(1, 64), repeats: int = 20) -> dict:
    """Per batch size, the teacher's and ``model``'s median ms timed round-robin (a slow spell of
    the machine hits both alike) and their ratio, the speed-up: ``{"b64": {"teacher_ms", "ms",
    "speedup"}, ...}``. Empty when the two sit on different devices."""
    model = model if isinstance(model, torch.nn.Module) else CallableModule(model)
    if model_device(model) != model_device(teacher):
        return {}
    out = {}
    for batch in batch_sizes:
        ms = paired_latency_ms({"teacher": teacher, "model": model}, make_inputs(batch), warmup=3, repeats=repeats)
        out[f"b{batch}"] = {"teacher_ms": ms["teacher"], "ms": ms["model"], "speedup": ms["teacher"] / ms["model"]}
    return out


def run_cell(ctx: TaskContext, task_name: str, method: str, k: int, seed: int, options: dict,
             workdir: Path, reference: dict, latency_repeats: int = 20, progress: bool = False) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    shots = ctx.splits.train.few_shot(k, seed=seed)  # the same shots for every method
    inp = MethodInput(teacher=ctx.teacher, shots=shots, k=k, seed=seed, make_student=ctx.make_student,
                      example_inputs=ctx.example_inputs(), workdir=workdir, modality=ctx.task.modality,
                      augment=ctx.task.augment if ctx.task.modality == "image" else "none", target=ctx.task.target,
                      progress=progress, options=dict(options),
                      unlabelled=lambda n: ctx.splits.train.unlabelled_inputs(n, k, seed))
    torch.manual_seed(seed)
    start = time.perf_counter()
    out, peak = measure_peak_memory(lambda: get_method(method)(inp))
    adapt_seconds = time.perf_counter() - start
    module = out.counted_module
    artifact_bytes = out.artifact.stat().st_size if out.artifact is not None else None
    macs = count_macs(module, ctx.example_inputs())
    latency = latency_profile(out.model, ctx.make_inputs, (1, 64), warmup=3, repeats=latency_repeats)
    paired = speedups(ctx.teacher, out.model, ctx.make_inputs, (1, 64), latency_repeats)
    energy = measure_energy(out.model, ctx.example_inputs(), estimate_from=module, weight_bits=out.weight_bits)
    record = {
        "key": cell_key(task_name, method, k, seed),
        "task": task_name, "method": method, "k": k, "seed": seed,
        "eval": {name: evaluate(out.model, data) for name, data in ctx.eval_sets.items()},
        "params": count_params(module),
        "macs": macs,
        "bytes": artifact_bytes,
        "artifact": out.artifact.name if out.artifact is not None else None,
        "compression_bytes": reference["bytes"] / artifact_bytes if artifact_bytes else None,
        "compression_macs": reference["macs"] / macs if macs else None,
        "latency_b1_ms": latency[1].median_ms,
        "latency_b64_ms": latency[64].median_ms,
        "paired_latency": paired,
        "speedup_b1": paired["b1"]["speedup"] if paired else None,
        "speedup_b64": paired["b64"]["speedup"] if paired else None,
        "energy_uj": energy.microjoules,
        "energy_method": energy.method,
        "energy": energy.to_dict(),
        "adapt_seconds": adapt_seconds,
        "peak_memory_bytes": peak,
        "integer_arithmetic": out.integer_arithmetic,
        "simulated_quantization": out.simulated_quantization,
        "history": out.notes.pop("history", None),
        "notes": out.notes,
    }
    for split in record["eval"].values():
        split.pop("confusion_matrix", None)
    if not ctx.task.modality == "text":
        data = next(iter(ctx.eval_sets.values()))
        record["sample_predictions"] = predict(out.model, data.subset(sample_indices(data))).tolist()
    return record
