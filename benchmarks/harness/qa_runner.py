"""The harness for extractive-QA suites (task families of modality ``qa``): every cell runs a
method of :mod:`benchmarks.methods.qa`, records the student's exact match and F1 next to the
teacher's on the same fixed questions, sizes and compression, and resumes like the other harnesses."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from fewshot_kd.adapt.qa.data import evaluated_questions
from fewshot_kd.adapt.qa.policy import QAPolicy
from fewshot_kd.measure import count_macs, count_params, saved_size_bytes
from fewshot_kd.measure.squad_eval import squad_evaluation
from fewshot_kd.models.qa_features import qa_features
from fewshot_kd.task_family import find_task_family

from benchmarks.harness.suite import Suite
from benchmarks.harness.task_runner import (TaskHarness, cell_base, cell_groups, mean_std, run_task_suite, size_means,
                                           student_sizes, teacher_sizes, write_results)
from benchmarks.methods.qa import QAMethodInput, get_qa_method, qa_options

TARGET_GAP = 5.0
"""The issue's target: the student's F1 within 5 points of the teacher's."""


def is_qa_suite(suite: Suite) -> bool:
    return all(find_task_family(t).modality == "qa" for t in suite.tasks)


def teacher_reference(teacher, questions, policy: QAPolicy) -> dict:
    """The teacher's EM / F1 on the fixed evaluation questions and its size (MACs on one window)."""
    split, evaluated = evaluated_questions(questions, None, policy.eval_questions)
    scores = squad_evaluation(teacher, teacher.tokenizer, evaluated, policy.max_length, policy.doc_stride,
                              policy.allow_no_answer)
    window = qa_features(teacher.tokenizer, list(evaluated)[:1], policy.max_length, policy.doc_stride).batch(slice(0, 1))
    return {"split": split, "questions": len(evaluated), "articles": len(evaluated.titles),
            "max_length": policy.max_length, "doc_stride": policy.doc_stride,
            "exact_match": scores["exact_match"], "f1": scores["f1"], "params": count_params(teacher),
            "macs": count_macs(teacher, window), "bytes": saved_size_bytes(teacher)}


def _record(task: str, method: str, k: int, seed: int, result, reference: dict, seconds: float,
            questions=None) -> dict:
    """One cell's record; a student's F1 gap is to the teacher's F1 on the very questions it was scored on
    (the report holds both, so ``questions`` is not read)."""
    base = cell_base(task, method, k, seed)
    if result is None:  # the teacher itself
        return {**base, "exact_match": reference["exact_match"], "f1": reference["f1"], "f1_gap": 0.0,
                **teacher_sizes(reference)}
    r = result.report
    s = r["squad"]
    return {**base, "exact_match": s["student"]["exact_match"], "f1": s["student"]["f1"],
            "f1_gap": s["f1_gap"], "teacher_f1": s["teacher"]["f1"], "eval_questions": s["questions"],
            **student_sizes(result, reference, seconds, {"shot_windows": r["shot_windows"],
                                                         "unlabelled_questions": r["unlabelled_questions"]})}


def _run(method: str, family, teacher, questions, k: int, seed: int, workdir: Path, options: dict):
    return get_qa_method(method)(QAMethodInput(teacher, questions, k, seed, dict(family.target), workdir, options))


def _line(record: dict) -> str:
    return f"  EM {record['exact_match']:.1f}, F1 {record['f1']:.1f} ({record['f1_gap']:+.1f} below the teacher)"


def run_qa_suite(suite: Suite, out_dir: Path, data_root=None, fresh: bool = False, console: Console | None = None) -> dict:
    """Run every cell of a QA ``suite`` not already in ``out_dir/cells.jsonl``; write the results."""
    harness = TaskHarness(check_options=qa_options,
                          reference=lambda teacher, questions: teacher_reference(teacher, questions, QAPolicy()),
                          run=_run, record=_record, line=_line, write=write_qa_outputs)
    return run_task_suite(suite, out_dir, harness, data_root, fresh, console)


def aggregate_qa(records: list[dict]) -> list[dict]:
    """Per (task, method, K): EM, F1 and the gap to the teacher's F1, mean and std over seeds."""
    rows = []
    for (task, method, k), group in cell_groups(records).items():
        gaps = [r["f1_gap"] for r in group]
        rows.append({"task": task, "method": method, "k": k, "seeds": len(group),
                     "exact_match": mean_std([r["exact_match"] for r in group]),
                     "f1": mean_std([r["f1"] for r in group]), "f1_gap": mean_std(gaps),
                     "within_target": sum(g <= TARGET_GAP for g in gaps), **size_means(group)})
    return rows


def qa_table(rows: list[dict]) -> str:
    lines = ["| task | method | K | seeds | EM | F1 | teacher F1 − F1 | within 5 F1 | × bytes | × MACs | bytes | adapt s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        (em, ems), (f1, f1s), (gap, gaps) = r["exact_match"], r["f1"], r["f1_gap"]
        lines.append(f"| {r['task']} | {r['method']} | {r['k']} | {r['seeds']} | {em:.1f} ± {ems:.1f} "
                     f"| {f1:.1f} ± {f1s:.1f} | {gap:.1f} ± {gaps:.1f} | {r['within_target']}/{r['seeds']} "
                     f"| {r['compression_bytes']:.2f} | {r['compression_macs']:.2f} | {r['bytes']:,.0f} "
                     f"| {r['adapt_seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def write_qa_outputs(suite: Suite, out_dir: Path, records: list[dict], references: dict, invocations: list[dict]) -> dict:
    rows = aggregate_qa(records)
    result, head = write_results(suite, out_dir, records, references, invocations, rows)
    refs = "\n".join(f"- {task}: teacher EM {ref['exact_match']:.1f}, F1 {ref['f1']:.1f} on {ref['questions']} fixed "
                     f"questions of the {ref['split']} split ({ref['articles']} articles no teacher or shot saw; "
                     f"windows of {ref['max_length']} tokens, stride {ref['doc_stride']}), {ref['params']:,} params, "
                     f"{ref['bytes']:,} bytes" for task, ref in references.items())
    (out_dir / "results.md").write_text(
        f"{head}{refs}\n\nMean ± std over seeds. EM and F1 in percent as the official "
        f"SQuAD v1.1 script computes them. Ratios: teacher / method for bytes (the saved artifact) and MACs (one "
        f"window). \"within 5 F1\": seeds whose student F1 is at most {TARGET_GAP:.0f} points below the teacher's. "
        f"Nothing was tuned on the evaluated articles.\n\n" + qa_table(rows))
    if rows:
        from benchmarks.harness.qa_plots import f1_by_method

        f1_by_method(rows, references, out_dir / "f1_by_method.png")
    return result
