"""adapt() for extractive question answering: derive the student (the teacher's last 3 layers,
then heads / FFN neurons to the target), distil it on K labelled questions plus unlabelled ones
(the teacher's start / end distributions) through the shared loop and objective, quantize and
export it, and report exact match and F1 of teacher and student on a fixed set of questions."""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

from fewshot_kd.adapt._distill_loop import distill_
from fewshot_kd.adapt.adapt_report import Compression, ModelSize, StudentSize
from fewshot_kd.adapt.out_folder import publish_files
from fewshot_kd.adapt.qa_data import (evaluated_questions, is_qa_model, resolve_qa_tokenizer, resolve_questions,
                                      shot_and_unlabelled_questions)
from fewshot_kd.adapt.qa_derive import derive_qa_student
from fewshot_kd.adapt.qa_export import export_qa_student, quantize_qa_
from fewshot_kd.adapt.qa_policy import QAPolicy
from fewshot_kd.adapt.qa_report import QAAdaptResult, QAReport
from fewshot_kd.adapt.target import Target
from fewshot_kd.distill.qa_bank import SpanBank, SpanLogits
from fewshot_kd.errors import BadInputError, FewShotKDError
from fewshot_kd.measure import count_macs, count_params, saved_size_bytes
from fewshot_kd.measure.squad_eval import squad_evaluation
from fewshot_kd.models.qa_features import qa_features


def _student(teacher: nn.Module, student, target: Target, example: dict) -> tuple[nn.Module, dict, bool]:
    if student is None or (isinstance(student, str) and student == "derive"):
        source = teacher if next(teacher.parameters()).device.type == "cpu" else copy.deepcopy(teacher).cpu()
        built, decisions = derive_qa_student(source, target, {k: v.cpu() for k, v in example.items()})
        for p in built.parameters():
            p.requires_grad_(True)  # copied from the frozen teacher
        return built, decisions, True
    if not is_qa_model(student):
        raise FewShotKDError(f"for extractive QA, student must be None, 'derive' or a QA model (a Hugging Face "
                             f"...ForQuestionAnswering), got {student!r}")
    if student.config.vocab_size != teacher.config.vocab_size:
        raise BadInputError(f"the student reads a vocabulary of {student.config.vocab_size} tokens, the teacher "
                            f"{teacher.config.vocab_size}: give them one tokenizer")
    return student, {"derived_from_teacher": False}, False


def _distill(student: nn.Module, bank: SpanBank, policy: QAPolicy, steps: int, lr: float, seed: int, progress: bool,
             description: str) -> list[dict]:
    return distill_(SpanLogits(student), bank, [], steps=steps, lr=lr, weight_decay=policy.weight_decay,
                    batch_size=policy.batch_size, temperature=policy.temperature, alpha=policy.alpha,
                    feature_weight=0.0, seed=seed, progress=progress, description=description)


def _scores(model: nn.Module, tokenizer, questions, policy: QAPolicy) -> dict:
    s = squad_evaluation(model, tokenizer, questions, policy.max_length, policy.doc_stride, policy.allow_no_answer)
    return {k: v for k, v in s.items() if k not in ("max_length", "doc_stride", "num_questions")}


def adapt_qa(teacher: nn.Module, student=None, shots: int = 128, data=None, target=None, policy=None, eval_data=None,
             device=None, seed: int = 0, export_dir=None, data_root=None, progress: bool = True,
             unlabelled=None, integer: bool = False, teachers=None) -> QAAdaptResult:
    """Compress the extractive QA ``teacher`` from ``shots`` labelled questions of ``data``'s
    train split (plus ``unlabelled``: a count of further train questions, or QAExamples; the
    teacher's start / end distributions only). See :func:`fewshot_kd.adapt` for the shared
    arguments; ``policy`` is a :class:`QAPolicy` or a dict of its fields, ``eval_data`` a split
    name or a ``QADataset`` (default: the test split's fixed subset of ``policy.eval_questions``).
    ``integer`` and ``teachers`` are for classifiers and raise here."""
    if not is_qa_model(teacher):
        raise BadInputError(f"questions need an extractive QA teacher (a Hugging Face ...ForQuestionAnswering, e.g. "
                            f"the 'squad-minilm' recipe), got {type(teacher).__name__}")
    if integer or teachers is not None:
        raise BadInputError("integer=True (onnxruntime int8) and teachers=[...] are for classifiers; a QA student "
                            "is exported with packed int weights by target.bits")
    splits, tokenizer = resolve_questions(data, data_root), resolve_qa_tokenizer(teacher)
    policy, target = QAPolicy.parse(policy), Target.parse(target)
    limit = getattr(teacher.config, "max_position_embeddings", None)
    if limit is not None and policy.max_length > limit:
        raise BadInputError(f"the teacher reads at most {limit} tokens; lower the policy's max_length ({policy.max_length})")
    labelled, extra = shot_and_unlabelled_questions(splits, shots, unlabelled, seed)
    split_name, evaluated = evaluated_questions(splits, eval_data, policy.eval_questions)
    device = torch.device(device) if device is not None else next(teacher.parameters()).device
    teacher = teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    torch.manual_seed(seed)
    start = time.perf_counter()
    questions = list(labelled) + ([] if extra is None else list(extra))
    features = qa_features(tokenizer, questions, policy.max_length, policy.doc_stride)
    shot_windows = int((features.example_index < len(labelled)).sum())
    example = features.batch(slice(0, 1))
    student, decisions, derived = _student(teacher, student, target, example)
    student = student.to(device)
    derive_seconds = time.perf_counter() - start
    tick = time.perf_counter()
    bank = SpanBank.build(teacher, features, device)
    cache_seconds = time.perf_counter() - tick
    tick = time.perf_counter()
    history = _distill(student, bank, policy, policy.steps, policy.lr, seed, progress, "distilling QA")
    distill_seconds = time.perf_counter() - tick
    with tempfile.TemporaryDirectory(prefix="fewshot_kd-adapt-qa-") as tmp:
        work, tick = Path(tmp), time.perf_counter()
        if target.bits is not None:
            from fewshot_kd.quant import dequantize_model_

            quantize_qa_(student, target.bits)
            if policy.qat_steps:
                history += _distill(student, bank, policy, policy.qat_steps, policy.qat_lr, seed + 1, progress,
                                    f"QAT int{target.bits}")
            artifact, artifact_bytes = export_qa_student(student, tokenizer, target.bits, work)
            dequantize_model_(student)
        else:
            artifact, artifact_bytes = export_qa_student(student, tokenizer, None, work)
        quantize_seconds = time.perf_counter() - tick
        adapt_seconds = time.perf_counter() - start
        teacher_bytes = saved_size_bytes(teacher)
        budget = target.size_budget(teacher_bytes)
        if budget is not None and artifact_bytes > budget:
            raise FewShotKDError(f"the exported student takes {artifact_bytes:,} bytes, over the target of {budget:,}; "
                                 f"lower target.bits or target.macs, or raise the size budget")
        student.eval()
        student.tokenizer = tokenizer
        scores = {role: _scores(model, tokenizer, evaluated, policy) for role, model in (("teacher", teacher),
                                                                                         ("student", student))}
        inputs = {k: v.to(device) for k, v in example.items()}
        weights = (f"int{target.bits} (stored packed, embeddings included; float inference with dequantized weights)"
                   if target.bits else "fp32")
        teacher_size = ModelSize(params=count_params(teacher), macs=count_macs(teacher, inputs), bytes=teacher_bytes)
        student_size = StudentSize(params=count_params(student), macs=count_macs(student, inputs), bytes=artifact_bytes,
                                   weights=weights)
        report = QAReport(
            shots=len(labelled), shot_windows=shot_windows, unlabelled_questions=0 if extra is None else len(extra),
            seed=seed, student_kind="derived" if derived else "given", teacher=teacher_size, student=student_size,
            compression=Compression.of(teacher_size, student_size),
            squad={"split": split_name, "questions": len(evaluated), "articles": len(evaluated.titles),
                   "max_length": policy.max_length, "doc_stride": policy.doc_stride, **scores,
                   "f1_gap": scores["teacher"]["f1"] - scores["student"]["f1"]},
            decisions=decisions,
            stages={"derive_seconds": derive_seconds, "windows": len(bank), "teacher_cache_seconds": cache_seconds,
                    "distill_seconds": distill_seconds, "quantize_seconds": quantize_seconds,
                    "qat_steps": policy.qat_steps if target.bits else None},
            adapt_seconds=adapt_seconds, target=target, policy=policy)
        artifact = publish_files(work, Path(export_dir), artifact) if export_dir is not None else None
    result = QAAdaptResult(student=student, adapt_report=report, artifact=artifact, history=history)
    if progress:
        result.print()
    return result
