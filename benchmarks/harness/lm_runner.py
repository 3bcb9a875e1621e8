"""The harness for causal-LM suites (task families of modality ``lm``): every cell runs a
method of :mod:`benchmarks.methods.lm`, records the student's sliding-window perplexity next to
the teacher's, sizes and greedy generations, and resumes like the classification harness."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from fewshot_kd.adapt.lm.data import encode, eval_split, prompts_from
from fewshot_kd.adapt.lm.policy import LMPolicy
from fewshot_kd.measure import count_macs, count_params, saved_size_bytes
from fewshot_kd.measure.generations import greedy_generations
from fewshot_kd.measure.perplexity import sliding_window_perplexity
from fewshot_kd.task_family import find_task_family

from benchmarks.harness.suite import Suite
from benchmarks.harness.task_runner import (TaskHarness, cell_base, cell_groups, mean_std, run_task_suite, size_means,
                                           student_sizes, teacher_sizes, write_results)
from benchmarks.methods.lm import LMMethodInput, get_lm_method, lm_options

TARGET_RATIO = 1.15
"""The issue's target: the student's perplexity within 15 % of the teacher's."""


def is_lm_suite(suite: Suite) -> bool:
    return all(find_task_family(t).modality == "lm" for t in suite.tasks)


def teacher_reference(teacher, corpus, policy: LMPolicy) -> dict:
    """The teacher's perplexity on the evaluated split, its size and greedy generations."""
    split = eval_split(corpus, None)
    text = corpus[split]
    ids = encode(teacher.tokenizer, text)
    ppl = sliding_window_perplexity(teacher, ids, policy.eval_window, policy.eval_stride)
    prompts = prompts_from(text, policy.generations, policy.prompt_chars)
    example = {"input_ids": ids[: policy.sequence_length][None]}
    return {"split": split, "window": policy.eval_window, "stride": policy.eval_stride, "tokens": ppl["tokens"],
            "perplexity": ppl["perplexity"], "test_perplexity": test_perplexity(teacher, corpus, policy),
            "params": count_params(teacher), "macs": count_macs(teacher, example),
            "bytes": saved_size_bytes(teacher), "prompts": prompts,
            "generations": greedy_generations(teacher, teacher.tokenizer, prompts, policy.generation_tokens)}


def test_perplexity(model, corpus, policy: LMPolicy) -> float:
    """Perplexity on the test split, which no setting was chosen on (the validation split was looked at)."""
    ids = encode(model.tokenizer, corpus["test"])
    return sliding_window_perplexity(model, ids, policy.eval_window, policy.eval_stride)["perplexity"]


def _record(task: str, method: str, k: int, seed: int, result, reference: dict, seconds: float,
            corpus=None) -> dict:
    base = cell_base(task, method, k, seed)
    if result is None:  # the teacher itself
        return {**base, "perplexity": reference["perplexity"], "ratio_to_teacher": 1.0,
                "test_perplexity": reference["test_perplexity"], "test_ratio_to_teacher": 1.0,
                "generations": reference["generations"], **teacher_sizes(reference)}
    r = result.report
    test = test_perplexity(result.student, corpus, LMPolicy.from_dict(r["policy"]))
    return {**base, "perplexity": r["perplexity"]["student"], "ratio_to_teacher": r["perplexity"]["ratio"],
            "test_perplexity": test, "test_ratio_to_teacher": test / reference["test_perplexity"],
            "teacher_perplexity": r["perplexity"]["teacher"], "generations": r["generations"]["student"],
            **student_sizes(result, reference, seconds, {"shot_tokens": r["shot_tokens"],
                                                         "unlabelled_sequences": r["unlabelled_sequences"]})}


def _run(method: str, family, teacher, corpus, k: int, seed: int, workdir: Path, options: dict):
    return get_lm_method(method)(LMMethodInput(teacher, corpus, k, seed, dict(family.target), workdir, options))


def _line(record: dict) -> str:
    return f"  perplexity {record['perplexity']:.3f} (x{record['ratio_to_teacher']:.3f} the teacher's)"


def run_lm_suite(suite: Suite, out_dir: Path, data_root=None, fresh: bool = False, console: Console | None = None) -> dict:
    """Run every cell of an LM ``suite`` not already in ``out_dir/cells.jsonl``; write the results."""
    harness = TaskHarness(check_options=lm_options,
                          reference=lambda teacher, corpus: teacher_reference(teacher, corpus, LMPolicy()),
                          run=_run, record=_record, line=_line, write=write_lm_outputs)
    return run_task_suite(suite, out_dir, harness, data_root, fresh, console)


def aggregate_lm(records: list[dict]) -> list[dict]:
    """Per (task, method, K): perplexity and its ratio to the teacher's, mean and std over seeds."""
    rows = []
    for (task, method, k), group in cell_groups(records).items():
        ratios = [r["ratio_to_teacher"] for r in group]
        rows.append({"task": task, "method": method, "k": k, "seeds": len(group),
                     "perplexity": mean_std([r["perplexity"] for r in group]), "ratio_to_teacher": mean_std(ratios),
                     "test_perplexity": mean_std([r["test_perplexity"] for r in group]),
                     "test_ratio_to_teacher": mean_std([r["test_ratio_to_teacher"] for r in group]),
                     "within_target": sum(x <= TARGET_RATIO for x in ratios), **size_means(group)})
    return rows


def lm_table(rows: list[dict]) -> str:
    lines = ["| task | method | K | seeds | perplexity | × teacher's perplexity | within 15 % | test perplexity "
             "| test × teacher's | × bytes | × MACs | bytes | adapt s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        (p, ps), (x, xs) = r["perplexity"], r["ratio_to_teacher"]
        (tp, tps), (tx, txs) = r["test_perplexity"], r["test_ratio_to_teacher"]
        lines.append(f"| {r['task']} | {r['method']} | {r['k']} | {r['seeds']} | {p:.3f} ± {ps:.3f} | {x:.3f} ± {xs:.3f} "
                     f"| {r['within_target']}/{r['seeds']} | {tp:.3f} ± {tps:.3f} | {tx:.3f} ± {txs:.3f} "
                     f"| {r['compression_bytes']:.2f} | {r['compression_macs']:.2f} "
                     f"| {r['bytes']:,.0f} | {r['adapt_seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def _generations_md(records: list[dict], references: dict) -> str:
    out = []
    for task, ref in references.items():
        out.append(f"\n### Greedy generations, {task} (seed 0, {len(ref['prompts'])} prompts from the {ref['split']} split)\n")
        shown = [r for r in records if r["task"] == task and r["seed"] == min(x["seed"] for x in records)]
        for i, prompt in enumerate(ref["prompts"]):
            out.append(f"\nPrompt {i + 1}: `{prompt!r}`\n")
            for r in sorted(shown, key=lambda r: r["method"]):
                if i < len(r["generations"]):
                    out.append(f"- {r['method']} (K={r['k']}): `{r['generations'][i]!r}`")
        out.append("")
    return "\n".join(out) + "\n"


def write_lm_outputs(suite: Suite, out_dir: Path, records: list[dict], references: dict, invocations: list[dict]) -> dict:
    rows = aggregate_lm(records)
    result, head = write_results(suite, out_dir, records, references, invocations, rows)
    refs = "\n".join(f"- {task}: teacher perplexity {ref['perplexity']:.3f} on the {ref['split']} split "
                     f"({ref['tokens']:,} tokens scored; window {ref['window']}, stride {ref['stride']}), "
                     f"{ref['test_perplexity']:.3f} on the test split, "
                     f"{ref['params']:,} params, {ref['bytes']:,} bytes" for task, ref in references.items())
    (out_dir / "results.md").write_text(
        f"{head}{refs}\n\nMean ± std over seeds. Perplexity by a sliding window (stated "
        f"above), byte-level tokens. Ratios: teacher / method for bytes (the saved artifact) and MACs (one "
        f"sequence); method / teacher for perplexity. \"within 15 %\": seeds whose student perplexity is at most "
        f"{TARGET_RATIO:.2f}x the teacher's (validation). The LM policy's alpha was chosen on the validation split "
        f"(seed 0); the test split, same window and stride, was looked at by nothing.\n\n" + lm_table(rows) + _generations_md(records, references))
    if rows:
        from benchmarks.harness.lm_plots import perplexity_by_method

        perplexity_by_method(rows, references, out_dir / "perplexity_by_method.png")
    return result
