"""adapt() for a causal language model on running text: derive the student (every other
block, then heads / FFN neurons to the target), distil it on K sequences plus unlabelled text
through the classification loop and objective (one row per token position), quantize and
export it, and report perplexity, size and greedy generations."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import torch.nn as nn

from fewshot_kd.adapt.lm.data import (encode, eval_split, is_causal_lm, prompts_from, resolve_corpus,
                                      resolve_tokenizer, shot_and_unlabelled_sequences)
from fewshot_kd.adapt.lm.derive import derive_lm_student
from fewshot_kd.adapt.lm.export import export_lm_student, quantize_lm_
from fewshot_kd.adapt.lm.policy import LMPolicy
from fewshot_kd.adapt.lm.report import LMAdaptResult, LMReport
from fewshot_kd.adapt.target import Target
from fewshot_kd.adapt.task_steps import TaskSteps, check_classifier_only, check_reach, check_shots
from fewshot_kd.distill.lm_bank import NextTokenLogits, TokenBank
from fewshot_kd.errors import BadInputError, ClassCountMismatchError, FewShotKDError
from fewshot_kd.measure.generations import greedy_generations
from fewshot_kd.measure.perplexity import sliding_window_perplexity


def _vocab(model: nn.Module) -> int:
    with torch.no_grad():
        return int(model.eval()(input_ids=torch.zeros(1, 2, dtype=torch.long, device=next(model.parameters()).device)
                                ).logits.shape[-1])


def _given_student(teacher: nn.Module):
    def check(student) -> None:
        if not isinstance(student, nn.Module) or not hasattr(student, "config"):
            raise FewShotKDError(f"for a causal LM, student must be None, 'derive' or a causal LM module, "
                                 f"got {student!r}")
        if _vocab(student) != _vocab(teacher):
            raise ClassCountMismatchError(f"the student predicts {_vocab(student)} tokens but the teacher "
                                          f"{_vocab(teacher)}: give them one vocabulary")
    return check


def adapt_lm(teacher: nn.Module, student=None, shots: int = 20, data=None, target=None, policy=None, eval_data=None,
             device=None, seed: int = 0, export_dir=None, data_root=None, progress: bool = True,
             unlabelled=None, integer: bool = False, teachers=None) -> LMAdaptResult:
    """Compress the causal LM ``teacher`` from ``shots`` sequences of ``policy.sequence_length``
    tokens of ``data``'s train split (plus ``unlabelled``: a count of further train sequences or
    text, soft targets only). See :func:`fewshot_kd.adapt` for the shared arguments; ``policy``
    is an :class:`LMPolicy`, a dict of its fields or a :class:`~fewshot_kd.meta.MetaPolicy` (on the
    hand-set LMPolicy), ``eval_data`` a split name. ``integer``
    and ``teachers`` are for classifiers and raise here."""
    if not is_causal_lm(teacher):
        raise BadInputError(f"running text needs a causal language-model teacher (a Hugging Face model with an "
                            f"lm_head, e.g. the 'tinyshakespeare-gpt2' recipe), got {type(teacher).__name__}")
    check_classifier_only(integer, teachers, "a causal LM student")
    corpus, tokenizer = resolve_corpus(data, data_root), resolve_tokenizer(teacher)
    (meta, policy), target = LMPolicy.with_meta(policy), Target.parse(target)
    check_shots(shots, "few-shot sequences")
    check_reach(getattr(teacher.config, "n_positions", None),
                {"sequence_length": policy.sequence_length, "eval_window": policy.eval_window})
    split = eval_split(corpus, eval_data)
    train_ids = encode(tokenizer, corpus.train)
    shot_ids, extra_ids = shot_and_unlabelled_sequences(train_ids, shots, policy.sequence_length, unlabelled,
                                                        tokenizer, seed)
    ids = shot_ids if extra_ids is None else torch.cat([shot_ids, extra_ids])
    labelled = torch.arange(len(ids)) < len(shot_ids)
    steps = TaskSteps(teacher, device, policy, target, seed, progress, NextTokenLogits, "LM")
    teacher, device, example = steps.teacher, steps.device, shot_ids[:1]
    meta_info = None
    if meta is not None:  # the learned knobs and blocks, decided on the K sequences
        from fewshot_kd.meta.lm_decide import decide_lm

        policy, target, meta_info = decide_lm(meta, teacher, shot_ids.to(device), target, policy)
        steps.policy, steps.target = policy, target
    student, decisions, derived = steps.student(student, derive_lm_student, example, _given_student(teacher))
    derive_seconds = steps.lap()
    bank = TokenBank.build(teacher, ids.to(device), labelled.to(device))
    cache_seconds = steps.lap()
    history = steps.distill(student, bank)
    distill_seconds = steps.lap()
    with tempfile.TemporaryDirectory(prefix="fewshot_kd-adapt-lm-") as tmp:
        work = Path(tmp)
        artifact, artifact_bytes, qat_history = steps.export(
            student, bank, work, quantize_lm_, lambda model, bits, out: export_lm_student(model, tokenizer, bits, out),
            lambda model: model.tie_weights())
        history += qat_history
        quantize_seconds, adapt_seconds = steps.lap(), steps.elapsed()
        steps.check_budget(artifact_bytes)
        student.eval()
        student.tokenizer = tokenizer
        text = corpus[split]
        eval_ids = encode(tokenizer, text)
        ppl = {role: sliding_window_perplexity(model, eval_ids, policy.eval_window, policy.eval_stride)
               for role, model in (("teacher", teacher), ("student", student))}
        prompts = prompts_from(text, policy.generations, policy.prompt_chars)
        report = LMReport(
            shots=len(shot_ids), sequence_length=policy.sequence_length, shot_tokens=int(shot_ids.numel()),
            unlabelled_sequences=0 if extra_ids is None else len(extra_ids), seed=seed,
            student_kind="derived" if derived else "given",
            **steps.sizes(student, {"input_ids": example.to(device)}, artifact_bytes),
            perplexity={"split": split, "window": policy.eval_window, "stride": policy.eval_stride,
                        "tokens": ppl["teacher"]["tokens"], "teacher": ppl["teacher"]["perplexity"],
                        "student": ppl["student"]["perplexity"],
                        "ratio": ppl["student"]["perplexity"] / ppl["teacher"]["perplexity"]},
            generations={"decoding": "greedy", "max_new_tokens": policy.generation_tokens, "prompts": prompts,
                         "teacher": greedy_generations(teacher, tokenizer, prompts, policy.generation_tokens),
                         "student": greedy_generations(student, tokenizer, prompts, policy.generation_tokens)},
            decisions={**decisions, **({"meta_policy": meta_info} if meta_info is not None else {})},
            stages={"derive_seconds": derive_seconds, "teacher_cache_seconds": cache_seconds,
                    "teacher_logits_cached": bank.teacher_logits is not None, "distill_seconds": distill_seconds,
                    "quantize_seconds": quantize_seconds, "qat_steps": policy.qat_steps if target.bits else None},
            adapt_seconds=adapt_seconds, target=target, policy=policy)
        return steps.finish(LMAdaptResult(student=student, adapt_report=report, artifact=artifact, history=history),
                            work, export_dir)
