"""adapt() for extractive question answering: derive the student (every other layer of the
teacher by default, then heads / FFN neurons to the target), distil it on K labelled questions plus unlabelled ones
(the teacher's start / end distributions) through the shared loop and objective, quantize and
export it, and report exact match and F1 of teacher and student on a fixed set of questions."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch.nn as nn

from fewshot_kd.adapt.qa.data import (evaluated_questions, is_qa_model, resolve_qa_tokenizer, resolve_questions,
                                      shot_and_unlabelled_questions)
from fewshot_kd.adapt.qa.derive import derive_qa_student
from fewshot_kd.adapt.qa.export import export_qa_student, quantize_qa_
from fewshot_kd.adapt.qa.policy import QAPolicy
from fewshot_kd.adapt.qa.report import QAAdaptResult, QAReport
from fewshot_kd.adapt.target import Target
from fewshot_kd.adapt.task_steps import TaskSteps, check_classifier_only, check_reach
from fewshot_kd.distill import map_layers
from fewshot_kd.distill.qa_bank import SpanBank, SpanLogits
from fewshot_kd.errors import BadInputError, FewShotKDError
from fewshot_kd.measure.squad_eval import squad_evaluation
from fewshot_kd.models.qa_features import qa_features


def _given_student(teacher: nn.Module):
    def check(student) -> None:
        if not is_qa_model(student):
            raise FewShotKDError(f"for extractive QA, student must be None, 'derive' or a QA model (a Hugging Face "
                                 f"...ForQuestionAnswering), got {student!r}")
        if student.config.vocab_size != teacher.config.vocab_size:
            raise BadInputError(f"the student reads a vocabulary of {student.config.vocab_size} tokens, the teacher "
                                f"{teacher.config.vocab_size}: give them one tokenizer")
    return check


def _derive(teacher: nn.Module, target: Target, example: dict) -> tuple[nn.Module, dict]:
    return derive_qa_student(teacher, target, {k: v.cpu() for k, v in example.items()})


def hinted_layers(teacher: nn.Module, student: nn.Module, policy: QAPolicy) -> list[tuple[str, str]]:
    """``(teacher layer, student layer)`` encoder pairs whose hidden states the policy distils: each
    student layer with the teacher layer it stands for (uniform map; a linear adaptor where widths
    differ); none at ``feature_weight=0``."""
    return map_layers(teacher, student, "uniform") if policy.feature_weight > 0 else []


def _scores(model: nn.Module, tokenizer, questions, policy: QAPolicy) -> dict:
    s = squad_evaluation(model, tokenizer, questions, policy.max_length, policy.doc_stride, policy.allow_no_answer)
    return {k: v for k, v in s.items() if k not in ("max_length", "doc_stride", "num_questions")}


def adapt_qa(teacher: nn.Module, student=None, shots: int = 128, data=None, target=None, policy=None, eval_data=None,
             device=None, seed: int = 0, export_dir=None, data_root=None, progress: bool = True,
             unlabelled=None, integer: bool = False, teachers=None) -> QAAdaptResult:
    """Compress the extractive QA ``teacher`` from ``shots`` labelled questions of ``data``'s
    train split (plus ``unlabelled``: a count of further train questions, or QAExamples; the
    teacher's start / end distributions only). See :func:`fewshot_kd.adapt` for the shared
    arguments; ``policy`` is a :class:`QAPolicy`, a dict of its fields or a
    :class:`~fewshot_kd.meta.MetaPolicy` (on the hand-set QAPolicy), ``eval_data`` a split
    name or a ``QADataset`` (default: the test split's fixed subset of ``policy.eval_questions``).
    ``integer`` and ``teachers`` are for classifiers and raise here."""
    if not is_qa_model(teacher):
        raise BadInputError(f"questions need an extractive QA teacher (a Hugging Face ...ForQuestionAnswering, e.g. "
                            f"the 'squad-minilm' recipe), got {type(teacher).__name__}")
    check_classifier_only(integer, teachers, "a QA student")
    splits, tokenizer = resolve_questions(data, data_root), resolve_qa_tokenizer(teacher)
    meta, policy = QAPolicy.with_meta(policy)
    target = Target.parse(target)
    check_reach(getattr(teacher.config, "max_position_embeddings", None), {"max_length": policy.max_length})
    labelled, extra = shot_and_unlabelled_questions(splits, shots, unlabelled, seed)
    split_name, evaluated = evaluated_questions(splits, eval_data, policy.eval_questions)
    steps = TaskSteps(teacher, device, policy, target, seed, progress, SpanLogits, "QA")
    teacher, device = steps.teacher, steps.device
    questions = list(labelled) + ([] if extra is None else list(extra))
    features = qa_features(tokenizer, questions, policy.max_length, policy.doc_stride)
    shot_windows = int((features.example_index < len(labelled)).sum())
    meta_info = None
    if meta is not None:  # the learned knobs and layers, decided on the labelled questions' windows
        from fewshot_kd.meta.qa_decide import decide_qa

        policy, target, meta_info = decide_qa(meta, teacher, features.batch(slice(0, shot_windows)), len(labelled),
                                              target, policy)
        steps.policy, steps.target = policy, target
    example = features.batch(slice(0, 1))
    student, decisions, derived = steps.student(student, _derive, example, _given_student(teacher))
    derive_seconds = steps.lap()
    pairs = hinted_layers(teacher, student, policy)
    bank = SpanBank.build(teacher, features, device, [t for t, _ in pairs])
    hinted = [f"qa.{s}" for _, s in pairs]  # inside the SpanLogits view of the student
    cache_seconds = steps.lap()
    history = steps.distill(student, bank, layers=hinted)
    distill_seconds = steps.lap()
    with tempfile.TemporaryDirectory(prefix="fewshot_kd-adapt-qa-") as tmp:
        work = Path(tmp)
        artifact, artifact_bytes, qat_history = steps.export(
            student, bank, work, quantize_qa_, lambda model, bits, out: export_qa_student(model, tokenizer, bits, out),
            layers=hinted)
        history += qat_history
        quantize_seconds, adapt_seconds = steps.lap(), steps.elapsed()
        steps.check_budget(artifact_bytes)
        student.eval()
        student.tokenizer = tokenizer
        scores = {role: _scores(model, tokenizer, evaluated, policy) for role, model in (("teacher", teacher),
                                                                                         ("student", student))}
        report = QAReport(
            shots=len(labelled), shot_windows=shot_windows, unlabelled_questions=0 if extra is None else len(extra),
            seed=seed, student_kind="derived" if derived else "given",
            **steps.sizes(student, {k: v.to(device) for k, v in example.items()}, artifact_bytes),
            squad={"split": split_name, "questions": len(evaluated), "articles": len(evaluated.titles),
                   "max_length": policy.max_length, "doc_stride": policy.doc_stride, **scores,
                   "f1_gap": scores["teacher"]["f1"] - scores["student"]["f1"]},
            decisions={**decisions, "hinted_layers": [list(p) for p in pairs],
                       **({"meta_policy": meta_info} if meta_info is not None else {})},
            stages={"derive_seconds": derive_seconds, "windows": len(bank), "teacher_cache_seconds": cache_seconds,
                    "distill_seconds": distill_seconds, "quantize_seconds": quantize_seconds,
                    "qat_steps": policy.qat_steps if target.bits else None},
            adapt_seconds=adapt_seconds, target=target, policy=policy)
        return steps.finish(QAAdaptResult(student=student, adapt_report=report, artifact=artifact, history=history),
                            work, export_dir)
