"""Run a suite's grid with a live view, resume finished cells, write JSON, markdown and plots."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fewshot_kd.errors import NotEnoughExamplesError
from fewshot_kd.files import write_json
from fewshot_kd.task_family import find_task_family

from benchmarks.harness import plots
from benchmarks.harness.cell import run_cell, sample_indices, teacher_reference
from benchmarks.harness.context import prepare_task
from benchmarks.harness.records import dirty_reasons
from benchmarks.harness.store import cell_key
from benchmarks.harness.suite import Suite
from benchmarks.harness.task_runner import open_invocation
from benchmarks.harness.tables import aggregate, markdown_table
from benchmarks.methods.base import method_options


def _live_table(records: list[dict], last: int = 12) -> Table:
    table = Table(title="finished cells (latest)", expand=False)
    for col in ("task", "method", "K", "seed", "acc %", "× bytes", "× MACs", "adapt s"):
        table.add_column(col, justify="right" if col not in ("task", "method") else "left")
    for r in records[-last:]:
        first = next(iter(r["eval"].values()))
        table.add_row(r["task"], r["method"], str(r["k"]), str(r["seed"]), f"{100 * first['accuracy']:.1f}",
                      f"{r['compression_bytes'] or 0:.1f}", f"{r['compression_macs'] or 0:.1f}", f"{r['adapt_seconds']:.1f}")
    return table


def run_suite(suite: Suite, out_dir: Path, data_root=None, fresh: bool = False, console: Console | None = None,
              outputs: Path | None = None) -> dict:
    """Run every cell of ``suite`` not already in ``out_dir/cells.jsonl`` and write the results.
    ``outputs``: the folder the whole command writes (default ``out_dir``); its uncommitted files do not
    make the tree dirty, since a resumed run rewrites them."""
    from benchmarks.harness.lm_runner import is_lm_suite, run_lm_suite

    if is_lm_suite(suite):  # causal language models: perplexity, not accuracy
        return run_lm_suite(suite, out_dir, data_root, fresh, console)
    from benchmarks.harness.qa_runner import is_qa_suite, run_qa_suite

    if is_qa_suite(suite):  # extractive question answering: exact match and F1
        return run_qa_suite(suite, out_dir, data_root, fresh, console)
    console = console or Console()
    for method in suite.methods:  # an unknown or mistyped option fails now, not hours into the run
        method_options(method, suite.method_options.get(method, {}))
    store, invocations, stamp = open_invocation(suite, out_dir, fresh, outputs)
    work = out_dir / "work"
    started = time.time()
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("{task.fields[now]}"))
    cells = list(suite.cells())
    bar = progress.add_task(f"suite {suite.name}", total=len(cells), now="")
    progress.update(bar, advance=sum(cell_key(t, m, k, s) in store for t, m, k, s in cells))
    contexts, references = {}, {}
    with Live(Group(progress, _live_table(store.all())), console=console, refresh_per_second=4) as live:
        for task_name, method, k, seed in cells:
            family = find_task_family(task_name)
            key = cell_key(family.name, method, k, seed)
            if key in store:
                continue
            progress.update(bar, now=f"{family.name} · {method} · K={k} · seed={seed}")
            _prepare(family, suite, data_root, work, contexts, references)
            record = run_cell(contexts[family.name], family.name, method, k, seed, suite.method_options.get(method, {}),
                              work / family.name / f"{method}-k{k}-s{seed}", references[family.name],
                              latency_repeats=suite.latency_repeats)
            record.update(stamp)
            store.add(record)
            progress.update(bar, advance=1)
            live.update(Group(progress, _live_table(store.all())))
    for task_name in dict.fromkeys(t for t, *_ in cells):  # a resumed run with nothing left still reports them
        _prepare(find_task_family(task_name), suite, data_root, work, contexts, references)
    invocations[-1]["wall_seconds"] = round(time.time() - started, 1)
    return write_outputs(suite, out_dir, store.all(), contexts, references, invocations)


def _prepare(family, suite: Suite, data_root, work: Path, contexts: dict, references: dict) -> None:
    """Load a task family's data, teacher and teacher reference once per invocation."""
    if family.name not in contexts:
        contexts[family.name] = prepare_task(family, data_root=data_root, eval_limit=suite.eval_limit.get(family.name),
                                             progress=False)
        _check_shots(family.name, contexts[family.name].splits.train, suite.shots)
        references[family.name] = teacher_reference(contexts[family.name], work / family.name)


def _check_shots(name: str, train, shots) -> None:
    """Refuse, before any cell runs, a K larger than the train split's smallest class holds."""
    fewest = train.max_shots
    too_many = sorted(k for k in set(shots) if k > fewest)
    if too_many:
        raise NotEnoughExamplesError(
            f"task {name}: K={', '.join(map(str, too_many))} asked, but its train split holds only {fewest} examples "
            f"of its smallest class; run it with --shots at most {fewest}")


def _cell_commits(records: list[dict]) -> str:
    """Which commits made the cells, when a resumed suite mixes several."""
    counts: dict[str, int] = {}
    for r in records:
        key = r.get("commit") or "not recorded (an earlier invocation)"
        key += " (dirty)" if r.get("git_dirty") is not False else ""
        counts[key] = counts.get(key, 0) + 1
    return "Cells made by: " + "; ".join(f"`{c}` ({n})" for c, n in counts.items()) + "  \n"


def _invocation_lines(invocations: list[dict]) -> str:
    lines = []
    for i, inv in enumerate(invocations):
        state = {False: "clean", True: "dirty tree"}.get(inv.get("dirty"), "tree state unknown")
        lines.append(f"{i}. `{inv.get('command')}` at `{inv.get('commit')}`, {state}, started {inv.get('started') or 'not recorded'}"
                     + (f" ({inv['note']})" if inv.get("note") else ""))
    return "\n".join(lines) + "\n"


def write_outputs(suite: Suite, out_dir: Path, records: list[dict], contexts: dict, references: dict,
                  invocations: list[dict]) -> dict:
    rows = aggregate(records)
    result = {
        "suite": suite.name,
        "invocations": invocations,
        "clean": not dirty_reasons({"invocations": invocations, "cells": records}),
        "teacher_reference": references,
        "eval_sets": {name: {split: len(d) for split, d in ctx.eval_sets.items()} for name, ctx in contexts.items()},
        "summary": rows,
        "cells": records,
    }
    write_json(out_dir / "results.json", result)
    machine = invocations[-1]["machine"]
    (out_dir / "results.md").write_text(
        f"# Suite `{suite.name}`\n\nInvocations:\n\n{_invocation_lines(invocations)}\n{_cell_commits(records)}"
        f"Machine: {machine.get('cpu_model')}, torch {machine.get('torch')}\n\n"
        f"Mean ± std over seeds. Ratios are teacher / method (bytes of the saved "
        f"artifact, MACs per example). \"int8 math\" says whether inference ran in integer arithmetic. "
        f"Energy per inference is measured (meas.: RAPL or NVML counters, whole package or GPU) or estimated "
        f"(est.: Horowitz, ISSCC 2014, op counts and bytes moved at the deployed weight bits).\n\n"
        + markdown_table(rows)
    )
    if rows:
        plots.accuracy_vs_compression(rows, out_dir / "accuracy_vs_compression.png")
        plots.accuracy_vs_shots(rows, out_dir / "accuracy_vs_shots.png")
        plots.accuracy_vs_time(rows, out_dir / "accuracy_vs_time.png")
        plots.accuracy_vs_energy(rows, out_dir / "accuracy_vs_energy.png")
        plots.adaptation_curves(records, out_dir / "adaptation_curves.png")
    for name, ctx in contexts.items():
        if ctx.task.modality != "image":
            continue
        data = next(iter(ctx.eval_sets.values()))
        shown = [r for r in records if r["task"] == name and r.get("sample_predictions")]
        if not shown:
            continue
        best = max(shown, key=lambda r: (r["method"] == "adapt", r["method"] != "teacher", r["k"], -r["seed"]))
        idx = sample_indices(data)
        plots.sample_predictions(data.input_batch(idx), data.labels[idx].tolist(), best["sample_predictions"],
                                 data.class_names, out_dir / f"sample_predictions_{name}.png",
                                 f"{name}: {best['method']} K={best['k']} seed={best['seed']} — predicted (true)")
    return result
