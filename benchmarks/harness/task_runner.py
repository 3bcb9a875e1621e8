"""What the causal-LM and extractive-QA harnesses share: the resumable loop over a suite's cells
(one teacher, data set and reference per task family), mean and std over seeds, and the head of
results.json and results.md."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rich.console import Console

from fewshot_kd.data.catalog import load_dataset
from fewshot_kd.files import write_json
from fewshot_kd.task_family import build_teacher, find_task_family, teacher_source

from benchmarks.harness.records import cell_stamp, dirty_reasons, previous_invocations, start_invocation
from benchmarks.harness.store import CellStore, cell_key
from benchmarks.harness.suite import Suite


@dataclass(frozen=True)
class TaskHarness:
    """One task type's harness: ``check_options(method, options)`` refuses bad options up front,
    ``reference(teacher, data)`` measures the teacher, ``run(method, family, teacher, data, k, seed,
    workdir, options)`` adapts one cell, ``record(task, method, k, seed, result, reference, seconds,
    data)`` makes its record (``result`` None for the teacher itself), ``line(record)`` sums it up,
    and ``write(suite, out_dir, records, references, invocations)`` writes the outputs."""

    check_options: Callable
    reference: Callable
    run: Callable
    record: Callable
    line: Callable[[dict], str]
    write: Callable


def open_invocation(suite: Suite, out_dir: Path, fresh: bool, outputs: Path | None = None
                    ) -> tuple[CellStore, list[dict], dict]:
    """``(store, invocations, stamp)`` for a run of ``suite`` into ``out_dir`` (``fresh``: forget earlier cells;
    ``outputs``: the command's whole output folder, ``out_dir`` by default)."""
    invocation = start_invocation(suite.to_dict(), outputs or out_dir)  # before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    cells_path = out_dir / "cells.jsonl"
    if fresh and cells_path.exists():
        cells_path.unlink()
    invocations = [] if fresh else previous_invocations(out_dir / "results.json")
    invocations.append(invocation)
    return CellStore(cells_path), invocations, cell_stamp(invocation, len(invocations) - 1)


def run_task_suite(suite: Suite, out_dir: Path, harness: TaskHarness, data_root=None, fresh: bool = False,
                   console: Console | None = None) -> dict:
    """Run every cell of ``suite`` not already in ``out_dir/cells.jsonl`` through ``harness``; write the results."""
    console = console or Console()
    for method in suite.methods:  # an unknown method or option fails now, not after the first cells
        if method != "teacher":
            harness.check_options(method, suite.method_options.get(method, {}))
    store, invocations, stamp = open_invocation(suite, out_dir, fresh)
    started = time.time()
    contexts: dict = {}
    for task_name, method, k, seed in suite.cells():
        family = find_task_family(task_name)
        key = cell_key(family.name, method, k, seed)
        if family.name not in contexts:  # the teacher's reference goes into the outputs even when every cell is done
            teacher = build_teacher(family, data_root=data_root, progress=False)
            data = load_dataset(family.dataset, data_root=data_root)
            reference = {**harness.reference(teacher, data), "teacher": teacher_source(family)}
            contexts[family.name] = (teacher, data, reference)
        if key in store:
            continue
        teacher, data, reference = contexts[family.name]
        console.print(f"{family.name} · {method} · K={k} · seed={seed}")
        tick = time.perf_counter()
        result = None
        if method != "teacher":
            workdir = out_dir / "work" / family.name / f"{method}-k{k}-s{seed}"
            result = harness.run(method, family, teacher, data, k, seed, workdir,
                                 dict(suite.method_options.get(method, {})))
        record = harness.record(family.name, method, k, seed, result, reference, time.perf_counter() - tick, data)
        record.update(stamp)
        store.add(record)
        console.print(harness.line(record))
    invocations[-1]["wall_seconds"] = round(time.time() - started, 1)
    references = {name: ctx[2] for name, ctx in contexts.items()}
    return harness.write(suite, out_dir, store.all(), references, invocations)


def cell_base(task: str, method: str, k: int, seed: int) -> dict:
    """The fields that name a cell."""
    return {"key": cell_key(task, method, k, seed), "task": task, "method": method, "k": k, "seed": seed}


def teacher_sizes(reference: dict) -> dict:
    """The size fields of the teacher's own cell (ratios 1, no adaptation)."""
    return {"params": reference["params"], "macs": reference["macs"], "bytes": reference["bytes"],
            "compression_bytes": 1.0, "compression_macs": 1.0, "adapt_seconds": 0.0, "notes": {}}


def student_sizes(result, reference: dict, seconds: float, notes: dict) -> dict:
    """A student cell's size, ratio, time and history fields; ``notes`` adds the task's own notes to
    the report's policy, target, decisions and weights."""
    r = result.report
    return {"params": r["student"]["params"], "macs": r["student"]["macs"], "bytes": r["student"]["bytes"],
            "artifact": result.artifact.name, "compression_bytes": reference["bytes"] / r["student"]["bytes"],
            "compression_macs": reference["macs"] / r["student"]["macs"], "adapt_seconds": r["adapt_seconds"],
            "wall_seconds": seconds, "history": [h["loss"] for h in result.history[:: max(1, len(result.history) // 30)]],
            "notes": {"policy": r["policy"], "target": r["target"], "decisions": r["decisions"], **notes,
                      "weights": r["student"]["weights"]}}


def cell_groups(records: list[dict]) -> dict[tuple, list[dict]]:
    """Records by (task, method, K), in first-seen order."""
    groups: dict = {}
    for r in records:
        groups.setdefault((r["task"], r["method"], r["k"]), []).append(r)
    return groups


def size_means(group: list[dict]) -> dict:
    """Mean compression ratios, bytes and adapt seconds over a group's seeds."""
    return {name: statistics.fmean(r[name] for r in group)
            for name in ("compression_bytes", "compression_macs", "bytes", "adapt_seconds")}


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def write_results(suite: Suite, out_dir: Path, records: list[dict], references: dict, invocations: list[dict],
                  rows: list[dict]) -> tuple[dict, str]:
    """Write results.json; returns its content and the head of results.md (suite, invocations, machine)."""
    result = {"suite": suite.name, "invocations": invocations,
              "clean": not dirty_reasons({"invocations": invocations, "cells": records}),
              "teacher_reference": references, "summary": rows, "cells": records}
    write_json(out_dir / "results.json", result)
    machine = invocations[-1]["machine"]
    commands = "\n".join(f"{i}. `{inv.get('command')}` at `{inv.get('commit')}`, "
                         f"{'dirty tree' if inv.get('dirty') else 'clean'}" for i, inv in enumerate(invocations))
    head = (f"# Suite `{suite.name}`\n\nInvocations:\n\n{commands}\n\nMachine: {machine.get('cpu_model')}, "
            f"torch {machine.get('torch')}\n\n")
    return result, head
