"""``fewshot_kd.adapt(teacher, student, shots=10, data=...)``: few-shot compression in one call."""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

from fewshot_kd.adapt.out_folder import publish_files
from fewshot_kd.adapt._data import check_classes, resolve_pool, resolve_unlabelled
from fewshot_kd.adapt._fidelity import heldout_agreement
from fewshot_kd.adapt._preflight import preflight
from fewshot_kd.adapt.lm.data import is_causal_lm
from fewshot_kd.adapt.qa.data import is_qa_model
from fewshot_kd.adapt.bit_sensitivity import quantizable_layers
from fewshot_kd.adapt.mixed_bits import with_chosen_bits
from fewshot_kd.adapt.policy import Policy, hand_set_for
from fewshot_kd.adapt.adapt_report import AdaptReport, Compression, Decisions, ModelSize, StudentSize
from fewshot_kd.adapt.report import AdaptResult, layer_decisions
from fewshot_kd.adapt.stages import Job, run_stages
from fewshot_kd.adapt.target import Target
from fewshot_kd.adapt.teachers_arg import resolve_teachers, union_report
from fewshot_kd.data.lm_corpus import TextCorpus
from fewshot_kd.data.qa_examples import QASplits
from fewshot_kd.distill.teacher_union import is_teacher_union
from fewshot_kd.errors import BadInputError, FewShotKDError
from fewshot_kd.measure import count_macs, count_params, evaluate, measure_energy, measure_peak_memory, saved_size_bytes
from fewshot_kd.model_io import CallableModule, model_device

ENERGY_SECONDS = 0.25
"""How long the report's energy counters time each model's forward passes, where there are counters."""


def _policy(policy, is_text: bool):
    """A :class:`Policy`, or a :class:`~fewshot_kd.meta.MetaPolicy` (decided per task later)."""
    from fewshot_kd.meta.meta_policy import MetaPolicy

    if policy is None:
        return hand_set_for(is_text)
    if isinstance(policy, (Policy, MetaPolicy)):
        return policy
    if isinstance(policy, dict):
        return Policy.from_dict(policy)
    if isinstance(policy, (str, Path)):
        meta = Path(policy).is_dir() or MetaPolicy.is_policy_file(policy)  # a broken policy.json still names itself
        return MetaPolicy.load(policy) if meta else Policy.load(policy)
    raise FewShotKDError(f"policy must be a Policy, a MetaPolicy, a dict or a policy file path, got {type(policy).__name__}")


def _eval_sets(eval_data, default) -> dict:
    if eval_data is None:
        return {"test": default} if default is not None else {}
    if isinstance(eval_data, dict):
        return eval_data
    return {"eval": eval_data}


def adapt(
    teacher: nn.Module | None = None,
    student: nn.Module | str | None = None,
    shots: int = 10,
    data=None,
    target: Target | dict | None = None,
    policy: Policy | dict | str | None = None,
    eval_data=None,
    device: str | torch.device | None = None,
    seed: int = 0,
    export_dir: str | Path | None = None,
    integer: bool = False,
    data_root=None,
    progress: bool = True,
    unlabelled=None,
    teachers=None,
) -> AdaptResult:
    """Compress ``teacher`` into a student from ``shots`` labelled examples per class.

    ``student``: ``None`` or ``"derive"`` derives it from the teacher (physically pruned to
    ``target.macs`` / ``target.params`` of the teacher, keeping its weights), or an
    ``nn.Module`` of another architecture (distilled from scratch or from its own init).
    ``data``: a pool to draw exactly ``shots`` per class from (a dataset name, a
    ``LabelledDataset``, a ``DatasetSplits`` or ``(inputs, labels)``). ``target.bits``
    quantizes weights (``None``: float); below 8 bits the policy's default finishes with
    quantization-aware steps (``qat_steps``). ``policy``: the
    hand-set default, a ``Policy``, a dict, or a policy JSON file. ``eval_data``: a dataset or
    ``{name: dataset}`` to report accuracy / macro-F1 on (default: the test split when
    ``data`` has one). ``export_dir`` receives the exported files once everything succeeded
    (default: they are written to a temporary folder, measured, and removed). ``integer=True`` also builds
    the int8 onnxruntime model and reports its accuracy and that it computes in integers (a text
    student's takes token ids: dynamic int8, with the tokenizer files beside it and its logits'
    agreement with the student on the shots in the report).
    ``unlabelled``: optional inputs without labels (a tensor, a list of strings, a dataset
    whose labels are ignored, or ``n`` to draw ``n`` from ``data`` beside the shots and drop
    their labels); the student learns the teacher's soft targets on them too. The report holds
    both models' energy per inference, measured by the device's counters or else estimated, each labelled.
    ``teachers=[(model, classes), ...]`` (instead of ``teacher``): specialist teachers, each listing
    the data's classes its outputs stand for (label ids or names, in output order), every class
    from exactly one teacher; they are distilled together (``multi_teacher_kd_loss``: the mixture
    of their softened probabilities) into ``student``, a module with one output per class.
    A causal language-model ``teacher`` (GPT-2 architecture) with running text as ``data`` (a
    ``TextCorpus`` or its name) takes the language-model path (:func:`~fewshot_kd.adapt.lm.adapt_lm`):
    ``shots`` sequences, an :class:`~fewshot_kd.adapt.lm.policy.LMPolicy`, perplexity in the report.
    An extractive QA ``teacher`` (a ``...ForQuestionAnswering``) or questions as ``data`` (``QASplits``,
    e.g. ``"squad"``) take the QA path (:func:`~fewshot_kd.adapt.qa.adapt_qa`): ``shots`` labelled
    questions, a :class:`~fewshot_kd.adapt.qa.policy.QAPolicy`, exact match and F1 in the report.
    """
    if is_qa_model(teacher) or isinstance(data, QASplits):
        from fewshot_kd.adapt.qa import adapt_qa

        return adapt_qa(teacher, student, shots, data, target, policy, eval_data, device, seed, export_dir, data_root,
                        progress, unlabelled, integer, teachers)
    if is_causal_lm(teacher) or isinstance(data, TextCorpus):
        from fewshot_kd.adapt.lm import adapt_lm

        return adapt_lm(teacher, student, shots, data, target, policy, eval_data, device, seed, export_dir, data_root,
                        progress, unlabelled, integer, teachers)
    pool, default_eval = resolve_pool(data, data_root)
    teacher = resolve_teachers(teacher, teachers, student, pool)
    notes = preflight(teacher, student, pool, shots, seed, target, policy, eval_data, device, export_dir, integer, unlabelled)
    support = pool.few_shot(shots, seed=seed)
    policy, target = _policy(policy, support.is_text), Target.parse(target)
    unlabelled = resolve_unlabelled(unlabelled, pool, shots, seed)
    device = torch.device(device) if device is not None else next(teacher.parameters()).device
    teacher = teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    check_classes(teacher, support, "teacher")
    derive = student is None or (isinstance(student, str) and student == "derive")
    if not derive and not isinstance(student, nn.Module):
        raise FewShotKDError(f"student must be None, 'derive' or an nn.Module, got {student!r}")
    if not derive:
        check_classes(student, support, "student")
    meta_info = None
    if not isinstance(policy, Policy):
        if is_teacher_union(teacher):
            raise BadInputError("a meta-learned policy describes one teacher's layers; with several teachers pass "
                                "the hand-set default (policy=None), a Policy, a dict or a policy JSON file")
        policy, meta_info = policy.decide(teacher, support, target, None if derive else student)
    if is_teacher_union(teacher):
        teacher = _union_for(teacher, policy)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory(prefix="fewshot_kd-adapt-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        job = Job(teacher, support, unlabelled, target, seed, device, work, derive, progress)
        done, peak = measure_peak_memory(lambda: run_stages(job, None if derive else student, policy))
        student, decisions = done.student, done.decisions
        adapt_seconds = time.perf_counter() - start
        bits = with_chosen_bits(policy, decisions).per_layer_bits
        sizes = _sizes(teacher, student, support, target, done.artifact_bytes, bits)
        heldout, collapsed = heldout_agreement(teacher, student, support, policy, seed)
        eval_sets = _eval_sets(eval_data, default_eval)
        evaluated = {name: {"teacher": _metrics(teacher, d), "student": _metrics(student, d)} for name, d in eval_sets.items()}
        report = AdaptReport(
            shots=len(support) // support.num_classes, seed=seed, student_kind="derived" if derive else "new-architecture",
            teacher=sizes[0], student=sizes[1], compression=Compression.of(*sizes), adapt_seconds=adapt_seconds,
            peak_memory_bytes=peak, stages=done.stages,
            decisions=Decisions(**decisions, layers=layer_decisions(student, decisions, target.bits, bits)),
            target=target, policy=policy, meta_policy=meta_info, heldout_agreement=heldout,
            warnings=tuple(notes + collapsed), eval=evaluated, energy=_energy(teacher, student, support, target),
            integer=_integer_path(student, support, eval_sets, work) if integer else None,
            multi_teacher=union_report(teacher, support.class_names) if is_teacher_union(teacher) else None)
        artifact = publish_files(work, Path(export_dir), done.artifact) if export_dir is not None else None
    result = AdaptResult(student=student, adapt_report=report, artifact=artifact, history=done.history)
    if progress:
        result.print()
    return result


def _union_for(union, policy: Policy):
    """The teachers mixed at the distillation temperature (so the cached KD target is their mixture)."""
    if policy.synthetic_inputs:
        raise BadInputError("synthetic_inputs (DeepInversion) inverts one teacher; with several teachers set the "
                            "policy's synthetic_inputs to 0")
    return union.at_temperature(policy.temperature)


def _metrics(model, data) -> dict:
    metrics = evaluate(model, data)
    metrics.pop("confusion_matrix", None)
    return metrics


def _sizes(teacher, student, support, target, artifact_bytes, per_layer_bits) -> tuple[ModelSize, StudentSize]:
    example = support.input_batch(slice(0, 1))
    widths = sorted({per_layer_bits.get(name, target.bits) for name in quantizable_layers(student)} if target.bits else ())
    kind = "/".join(f"int{b}" for b in widths or [target.bits]) + (" per layer" if len(widths) > 1 else "")
    weights = (f"{kind} (stored packed, embeddings included; float inference with dequantized weights)"
               if target.bits else "fp32")
    return (ModelSize(params=count_params(teacher), macs=count_macs(teacher, example), bytes=saved_size_bytes(teacher)),
            StudentSize(params=count_params(student), macs=count_macs(student, example), bytes=artifact_bytes, weights=weights))


def _energy(teacher, student, support, target) -> dict:
    """Joules per inference (batch of 1) of teacher and student, measured or estimated, each labelled;
    the student's estimate counts its weights at the target's bits."""
    example = support.input_batch(slice(0, 1))
    return {"teacher": measure_energy(teacher, example, min_seconds=ENERGY_SECONDS).to_dict(),
            "student": measure_energy(student, example, weight_bits=target.bits, min_seconds=ENERGY_SECONDS).to_dict()}


def _integer_path(student, support, eval_sets, out_dir) -> dict:
    """Build student.int8.onnx (static int8 for images; for text dynamic int8 taking token ids,
    with the tokenizer files beside it) and evaluate it; for text also its logits' agreement
    with the student on the shots."""
    from fewshot_kd.quant import logit_agreement, to_integer_model, to_integer_text_model
    from fewshot_kd.quant.text_onnx import save_tokenizer

    on_cpu = student if model_device(student).type == "cpu" else copy.deepcopy(student).cpu()  # ONNX runs on the CPU
    agreement = None
    if support.is_text:
        int8 = to_integer_text_model(on_cpu, out_dir / "student.int8.onnx")
        save_tokenizer(on_cpu, out_dir)
        agreement = logit_agreement(on_cpu, int8, support.input_batch(slice(0, 64)))
    else:
        calibration = [support.input_batch(slice(s, s + 64)) for s in range(0, len(support), 64)]
        int8 = to_integer_model(on_cpu, calibration, out_dir / "student.int8.onnx")
    wrapped = CallableModule(int8)
    report = {
        "backend": int8.backend,
        "scheme": int8.scheme,
        "integer_arithmetic": int8.integer_arithmetic,
        "bytes": int8.size_bytes,
        "eval": {name: _metrics(wrapped, d) for name, d in eval_sets.items()},
    }
    return report if agreement is None else {**report, "agreement_on_shots": agreement}
