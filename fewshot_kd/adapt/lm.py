"""adapt() for a causal language model on running text: derive the student (every other
block, then heads / FFN neurons to the target), distil it on K sequences plus unlabelled text
through the classification loop and objective (one row per token position), quantize and
export it, and report perplexity, size and greedy generations."""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

from fewshot_kd.adapt.out_folder import publish_files
from fewshot_kd.adapt._distill_loop import distill_
from fewshot_kd.adapt.adapt_report import Compression, ModelSize, StudentSize
from fewshot_kd.adapt.lm_data import (encode, eval_split, is_causal_lm, prompts_from, resolve_corpus,
                                      resolve_tokenizer, shot_and_unlabelled_sequences)
from fewshot_kd.adapt.lm_derive import derive_lm_student
from fewshot_kd.adapt.lm_export import export_lm_student, quantize_lm_
from fewshot_kd.adapt.lm_policy import LMPolicy
from fewshot_kd.adapt.lm_report import LMAdaptResult, LMReport
from fewshot_kd.adapt.target import Target
from fewshot_kd.distill.lm_bank import NextTokenLogits, TokenBank
from fewshot_kd.errors import BadInputError, ClassCountMismatchError, FewShotKDError
from fewshot_kd.measure import count_macs, count_params, saved_size_bytes
from fewshot_kd.measure.generations import greedy_generations
from fewshot_kd.measure.perplexity import sliding_window_perplexity


def _vocab(model: nn.Module) -> int:
    with torch.no_grad():
        return int(model.eval()(input_ids=torch.zeros(1, 2, dtype=torch.long, device=next(model.parameters()).device)
                                ).logits.shape[-1])


def _student(teacher: nn.Module, student, target: Target, example: torch.Tensor) -> tuple[nn.Module, dict, bool]:
    derive = student is None or (isinstance(student, str) and student == "derive")
    if derive:
        source = teacher if next(teacher.parameters()).device.type == "cpu" else copy.deepcopy(teacher).cpu()
        built, decisions = derive_lm_student(source, target, example)
        for p in built.parameters():
            p.requires_grad_(True)  # copied from the frozen teacher
        return built, decisions, True
    if not isinstance(student, nn.Module) or not hasattr(student, "config"):
        raise FewShotKDError(f"for a causal LM, student must be None, 'derive' or a causal LM module, got {student!r}")
    if _vocab(student) != _vocab(teacher):
        raise ClassCountMismatchError(f"the student predicts {_vocab(student)} tokens but the teacher {_vocab(teacher)}: "
                                      f"give them one vocabulary")
    return student, {"derived_from_teacher": False}, False


def _distill(student: nn.Module, bank: TokenBank, policy: LMPolicy, steps: int, lr: float, seed: int, progress: bool,
             description: str) -> list[dict]:
    return distill_(NextTokenLogits(student), bank, [], steps=steps, lr=lr, weight_decay=policy.weight_decay,
                    batch_size=policy.batch_size, temperature=policy.temperature, alpha=policy.alpha,
                    feature_weight=0.0, seed=seed, progress=progress, description=description)


def adapt_lm(teacher: nn.Module, student=None, shots: int = 20, data=None, target=None, policy=None, eval_data=None,
             device=None, seed: int = 0, export_dir=None, data_root=None, progress: bool = True,
             unlabelled=None, integer: bool = False, teachers=None) -> LMAdaptResult:
    """Compress the causal LM ``teacher`` from ``shots`` sequences of ``policy.sequence_length``
    tokens of ``data``'s train split (plus ``unlabelled``: a count of further train sequences or
    text, soft targets only). See :func:`fewshot_kd.adapt` for the shared arguments; ``policy``
    is an :class:`LMPolicy` or a dict of its fields, ``eval_data`` a split name. ``integer``
    and ``teachers`` are for classifiers and raise here."""
    if not is_causal_lm(teacher):
        raise BadInputError(f"running text needs a causal language-model teacher (a Hugging Face model with an "
                            f"lm_head, e.g. the 'tinyshakespeare-gpt2' recipe), got {type(teacher).__name__}")
    if integer or teachers is not None:
        raise BadInputError("integer=True (onnxruntime int8) and teachers=[...] are for classifiers; a causal LM "
                            "student is exported with packed int weights by target.bits")
    corpus, tokenizer = resolve_corpus(data, data_root), resolve_tokenizer(teacher)
    policy, target = LMPolicy.parse(policy), Target.parse(target)
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise BadInputError(f"shots is the number of few-shot sequences, a whole number >= 1; got {shots!r}")
    limit = getattr(teacher.config, "n_positions", None)
    if limit is not None and max(policy.sequence_length, policy.eval_window) > limit:
        raise BadInputError(f"the teacher reads at most {limit} tokens; lower the policy's sequence_length / "
                            f"eval_window ({policy.sequence_length} / {policy.eval_window})")
    split = eval_split(corpus, eval_data)
    train_ids = encode(tokenizer, corpus.train)
    shot_ids, extra_ids = shot_and_unlabelled_sequences(train_ids, shots, policy.sequence_length, unlabelled,
                                                        tokenizer, seed)
    device = torch.device(device) if device is not None else next(teacher.parameters()).device
    teacher = teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    torch.manual_seed(seed)
    start = time.perf_counter()
    example = shot_ids[:1]
    student, decisions, derived = _student(teacher, student, target, example)
    student = student.to(device)
    derive_seconds = time.perf_counter() - start
    ids = shot_ids if extra_ids is None else torch.cat([shot_ids, extra_ids])
    labelled = torch.arange(len(ids)) < len(shot_ids)
    tick = time.perf_counter()
    bank = TokenBank.build(teacher, ids.to(device), labelled.to(device))
    cache_seconds = time.perf_counter() - tick
    tick = time.perf_counter()
    history = _distill(student, bank, policy, policy.steps, policy.lr, seed, progress, "distilling LM")
    distill_seconds = time.perf_counter() - tick
    with tempfile.TemporaryDirectory(prefix="fewshot_kd-adapt-lm-") as tmp:
        work, tick = Path(tmp), time.perf_counter()
        if target.bits is not None:
            from fewshot_kd.quant import dequantize_model_

            quantize_lm_(student, target.bits)
            if policy.qat_steps:
                history += _distill(student, bank, policy, policy.qat_steps, policy.qat_lr, seed + 1, progress,
                                    f"QAT int{target.bits}")
            artifact, artifact_bytes = export_lm_student(student, target.bits, work)
            dequantize_model_(student)
            student.tie_weights()
        else:
            artifact, artifact_bytes = export_lm_student(student, None, work)
        quantize_seconds = time.perf_counter() - tick
        adapt_seconds = time.perf_counter() - start
        teacher_bytes = saved_size_bytes(teacher)
        budget = target.size_budget(teacher_bytes)
        if budget is not None and artifact_bytes > budget:
            raise FewShotKDError(f"the exported student takes {artifact_bytes:,} bytes, over the target of {budget:,}; "
                                 f"lower target.bits or target.macs, or raise the size budget")
        student.eval()
        student.tokenizer = tokenizer
        text = corpus[split]
        eval_ids = encode(tokenizer, text)
        ppl = {role: sliding_window_perplexity(model, eval_ids, policy.eval_window, policy.eval_stride)
               for role, model in (("teacher", teacher), ("student", student))}
        prompts = prompts_from(text, policy.generations, policy.prompt_chars)
        inputs = {"input_ids": example.to(device)}
        weights = (f"int{target.bits} (stored packed, embeddings included; float inference with dequantized weights)"
                   if target.bits else "fp32")
        teacher_size = ModelSize(params=count_params(teacher), macs=count_macs(teacher, inputs), bytes=teacher_bytes)
        student_size = StudentSize(params=count_params(student), macs=count_macs(student, inputs), bytes=artifact_bytes,
                                   weights=weights)
        report = LMReport(
            shots=len(shot_ids), sequence_length=policy.sequence_length, shot_tokens=int(shot_ids.numel()),
            unlabelled_sequences=0 if extra_ids is None else len(extra_ids), seed=seed,
            student_kind="derived" if derived else "given", teacher=teacher_size, student=student_size,
            compression=Compression.of(teacher_size, student_size),
            perplexity={"split": split, "window": policy.eval_window, "stride": policy.eval_stride,
                        "tokens": ppl["teacher"]["tokens"], "teacher": ppl["teacher"]["perplexity"],
                        "student": ppl["student"]["perplexity"],
                        "ratio": ppl["student"]["perplexity"] / ppl["teacher"]["perplexity"]},
            generations={"decoding": "greedy", "max_new_tokens": policy.generation_tokens, "prompts": prompts,
                         "teacher": greedy_generations(teacher, tokenizer, prompts, policy.generation_tokens),
                         "student": greedy_generations(student, tokenizer, prompts, policy.generation_tokens)},
            decisions=decisions,
            stages={"derive_seconds": derive_seconds, "teacher_cache_seconds": cache_seconds,
                    "teacher_logits_cached": bank.teacher_logits is not None, "distill_seconds": distill_seconds,
                    "quantize_seconds": quantize_seconds, "qat_steps": policy.qat_steps if target.bits else None},
            adapt_seconds=adapt_seconds, target=target, policy=policy)
        artifact = publish_files(work, Path(export_dir), artifact) if export_dir is not None else None
    result = LMAdaptResult(student=student, adapt_report=report, artifact=artifact, history=history)
    if progress:
        result.print()
    return result
