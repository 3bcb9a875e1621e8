"""The command line's tasks: which one the data and the teacher are for (classification, causal
LM, extractive QA), the error when they differ, and a causal-LM or QA run's inputs: its teacher,
its policy from ``--policy`` / ``--steps``, its shots and unlabelled text."""

from __future__ import annotations

import argparse
from pathlib import Path

from fewshot_kd.errors import BadInputError, TaskMismatchError
from fewshot_kd.teachers.hf_task_folder import CAUSAL_LM, CLASSIFICATION, EXTRACTIVE_QA

DEFAULT_SHOTS = {CLASSIFICATION: 10, CAUSAL_LM: 20, EXTRACTIVE_QA: 128}
TEACHER_IS = {CLASSIFICATION: "a classifier", CAUSAL_LM: "a causal language model",
              EXTRACTIVE_QA: "an extractive QA model"}
DATA_IS = {CLASSIFICATION: "labelled classes", CAUSAL_LM: "running text", EXTRACTIVE_QA: "questions"}
DATA_NEEDS = {
    CLASSIFICATION: "a classifier teacher (a *ForSequenceClassification folder, a model file or name, or a "
                    "classifier recipe such as digits-cnn)",
    CAUSAL_LM: "a causal language-model teacher (a GPT-2 *LMHeadModel folder or the tinyshakespeare-gpt2 recipe)",
    EXTRACTIVE_QA: "an extractive QA teacher (a *ForQuestionAnswering folder or the squad-minilm recipe)",
}


def data_task(data) -> str:
    """The task ``data`` is for: running text, questions, else labelled classes."""
    from fewshot_kd.data.lm_corpus import TextCorpus
    from fewshot_kd.data.qa_examples import QASplits

    if isinstance(data, TextCorpus):
        return CAUSAL_LM
    return EXTRACTIVE_QA if isinstance(data, QASplits) else CLASSIFICATION


def teacher_task(teacher) -> str:
    """The task a loaded teacher is for (its head: ``lm_head``, ``qa_outputs``, else class logits)."""
    from fewshot_kd.adapt.lm.data import is_causal_lm
    from fewshot_kd.adapt.qa.data import is_qa_model

    if is_causal_lm(teacher):
        return CAUSAL_LM
    return EXTRACTIVE_QA if is_qa_model(teacher) else CLASSIFICATION


def spec_task(spec: str) -> str | None:
    """The task ``--teacher spec`` names before it loads: a Hugging Face folder's architecture or
    a recipe's kind; ``None`` when only the loaded model tells."""
    from fewshot_kd.teachers.hf_folder import is_hf_folder
    from fewshot_kd.teachers.hf_task_folder import folder_task
    from fewshot_kd.teachers.lm_recipe import LMTeacherRecipe
    from fewshot_kd.teachers.qa_recipe import QATeacherRecipe
    from fewshot_kd.teachers.recipe import RECIPES

    path = Path(spec).expanduser()
    if is_hf_folder(path):
        return folder_task(path)
    if not path.exists() and spec in RECIPES:
        recipe = RECIPES.get(spec)
        if isinstance(recipe, LMTeacherRecipe):
            return CAUSAL_LM
        return EXTRACTIVE_QA if isinstance(recipe, QATeacherRecipe) else CLASSIFICATION
    return None


def check_same_task(spec: str, teacher_is: str | None, data_name: str, data_is: str) -> None:
    """Refuse a teacher for one task with data for another (``teacher_is`` None: not known yet)."""
    if teacher_is is not None and teacher_is != data_is:
        raise TaskMismatchError(f"--teacher {spec} is {TEACHER_IS[teacher_is]} but --data {data_name} holds "
                                f"{DATA_IS[data_is]}, which need {DATA_NEEDS[data_is]}")


def _refuse_classifier_options(args: argparse.Namespace, task: str) -> None:
    flags = [flag for flag, given in (("--onnx", args.onnx), ("--integer", args.integer),
                                      ("--teacher-classes", args.teacher_classes), ("--weights", args.weights),
                                      ("several --teacher", len(args.teacher) > 1)) if given]
    if flags:
        raise BadInputError(f"{', '.join(flags)}: for classifiers only; with {DATA_IS[task]} as --data, the student "
                            f"is written as packed int weights (by --target bits) beside student.arch.json")


def task_policy(text: str | None, steps: int | None, task: str):
    """``--policy`` for a causal LM or QA run: ``hand-set`` (default), a JSON file, inline JSON or
    ``key=value,...`` pairs of :class:`LMPolicy` / :class:`QAPolicy` fields; ``--steps`` overrides the steps."""
    from fewshot_kd.adapt.cli_args import inline_json, key_values
    from fewshot_kd.adapt.lm.policy import LMPolicy
    from fewshot_kd.adapt.qa.policy import QAPolicy
    from fewshot_kd.files import read_json

    policy_class = LMPolicy if task == CAUSAL_LM else QAPolicy
    if text is None or text == "hand-set":
        settings = {}
    elif text.lstrip().startswith("{"):
        settings = inline_json(text)
    elif Path(text).is_file():
        settings = read_json(text)
    elif "=" in text:
        settings = key_values(text, "--policy")
    else:
        raise BadInputError(f"--policy {text!r}: no such file; for {TEACHER_IS[task]} pass hand-set, a JSON file, "
                            f"inline JSON or key=value pairs of {policy_class.__name__} fields (steps=50,lr=1e-4)")
    if not isinstance(settings, dict):
        raise BadInputError(f"--policy {text!r} holds {type(settings).__name__}, not an object of "
                            f"{policy_class.__name__} fields")
    if steps is not None:
        settings = {**settings, "steps": steps}
    return policy_class.from_dict(settings)


def task_unlabelled(value, task: str):
    """``--unlabelled``: a count as it is; for a causal LM a path is a text file whose text is cut into sequences."""
    if value is None or isinstance(value, int):
        return value
    path = Path(value).expanduser()
    if task != CAUSAL_LM:
        raise BadInputError(f"--unlabelled {value}: for {TEACHER_IS[task]} give a count of further train questions")
    if not path.is_file():
        raise BadInputError(f"--unlabelled {value}: no such text file")
    return path.read_text(encoding="utf-8")


def task_inputs(args: argparse.Namespace, data, task: str) -> dict:
    """adapt()'s teacher, student, shots, policy and unlabelled for a causal LM or QA run, checked
    before anything trains: the options that are for classifiers only, and the teacher's task."""
    from fewshot_kd.teachers.by_path import load_teacher

    _refuse_classifier_options(args, task)
    spec = args.teacher[0]
    check_same_task(spec, spec_task(spec), args.data, task)
    policy = task_policy(args.policy, args.steps, task)
    unlabelled = task_unlabelled(args.unlabelled, task)
    teacher = load_teacher(spec, data_root=args.data_root, progress=not args.no_progress)
    check_same_task(spec, teacher_task(teacher), args.data, task)
    student = None
    if args.student is not None:
        student = load_teacher(args.student, data_root=args.data_root, progress=False).train()
    shots = args.shots if args.shots is not None else DEFAULT_SHOTS[task]
    return {"teacher": teacher, "student": student, "shots": shots, "policy": policy, "unlabelled": unlabelled}
