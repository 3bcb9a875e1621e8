"""``python -m fewshot_kd.adapt``: load the teacher and the data named on the command line (a
classifier with labelled classes, a causal LM with running text or an extractive QA model with
questions), run :func:`~fewshot_kd.adapt.adapt`, and write the student, report.json and
(``--onnx``, classifiers) student.onnx (for text, with the tokenizer files) to ``--out``, all at
once when everything succeeded."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from fewshot_kd.adapt.cli_args import build_parser, resolve_policy
from fewshot_kd.adapt.out_folder import check_free, staged_folder
from fewshot_kd.errors import BadInputError, FewShotKDError

ONNX_FILE = "student.onnx"


def _data(args: argparse.Namespace):
    from fewshot_kd.data.by_path import load_data_path, looks_like_path
    from fewshot_kd.data.catalog import DATASETS, load_dataset

    if args.data not in DATASETS and looks_like_path(args.data):
        return load_data_path(args.data, image_size=args.image_size, text_column=args.text_column,
                              label_column=args.label_column, seed=args.seed)
    return load_dataset(args.data, data_root=args.data_root)


def _unlabelled(args: argparse.Namespace):
    if args.unlabelled is None or isinstance(args.unlabelled, int):
        return args.unlabelled
    from fewshot_kd.data.unlabelled import load_unlabelled_path

    return load_unlabelled_path(args.unlabelled, args.image_size, text_column=args.text_column,
                                label_column=args.label_column)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _check_onnx_wanted(args: argparse.Namespace) -> None:
    if not (args.onnx or args.integer):
        return
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise BadInputError("--onnx / --integer need onnx and onnxruntime: pip install 'fewshot_kd[export]'") from None


def _one_or_all(values: list | None):
    """A repeated option as report.json has always held it when given once: the value itself."""
    return values[0] if values and len(values) == 1 else values


def _classifier_inputs(args: argparse.Namespace, data) -> dict:
    """adapt()'s teacher (or teachers), student, shots, policy and unlabelled inputs for classification."""
    from fewshot_kd.adapt.cli_tasks import CLASSIFICATION, DEFAULT_SHOTS, check_same_task, spec_task, teacher_task
    from fewshot_kd.adapt.cli_teachers import build_student, load_teachers

    for spec in args.teacher:  # a causal LM or QA folder or recipe fails here, before it loads or trains
        check_same_task(spec, spec_task(spec), args.data, CLASSIFICATION)
    teacher, teachers = load_teachers(args, data)
    if teacher is not None:
        check_same_task(args.teacher[0], teacher_task(teacher), args.data, CLASSIFICATION)
    student = build_student(args.student, data, args.data_root)
    if args.onnx and data.train.is_text:
        from fewshot_kd.adapt._preflight import check_text_export

        check_text_export(student if student is not None else teacher, "--onnx")
    policy = resolve_policy(args.policy, args.steps, data.train.is_text, new_arch=student is not None)
    shots = args.shots if args.shots is not None else DEFAULT_SHOTS[CLASSIFICATION]
    return {"teacher": teacher, "teachers": teachers, "student": student, "shots": shots, "policy": policy,
            "unlabelled": _unlabelled(args)}


def run(args: argparse.Namespace, command: str = "") -> Path:
    """Everything the command does; returns the output folder."""
    from fewshot_kd.adapt.api import adapt
    from fewshot_kd.adapt.cli_tasks import CLASSIFICATION, data_task, task_inputs
    from fewshot_kd.files import write_json

    out = Path(args.out).expanduser()
    check_free(out, args.overwrite)  # before minutes of work, not after
    data = _data(args)
    _check_onnx_wanted(args)
    task = data_task(data)
    inputs = _classifier_inputs(args, data) if task == CLASSIFICATION else task_inputs(args, data, task)
    with staged_folder(out, args.overwrite) as stage:
        result = adapt(data=data, target=args.target, device=_device(args.device), seed=args.seed, export_dir=stage,
                       integer=args.integer, data_root=args.data_root, progress=not args.no_progress, **inputs)
        if args.onnx:
            from fewshot_kd.quant.integer import export_onnx

            export_onnx(result.student, data.train.input_batch(slice(0, 1)), stage / ONNX_FILE)
        if (args.onnx or args.integer) and data.train.is_text:
            from fewshot_kd.quant.text_onnx import save_tokenizer

            save_tokenizer(result.student, stage)
        cli = {"command": command, "teacher": _one_or_all(args.teacher), "weights": _one_or_all(args.weights),
               "data": args.data}
        if inputs.get("teachers") is not None:
            cli["teacher_classes"] = args.teacher_classes
        if args.student is not None:
            cli["student"] = args.student
        write_json(stage / "report.json", {**result.report, "history": result.history, "cli": cli})
        files = sorted(p.name for p in stage.iterdir())
    print(f"wrote {out}: {', '.join(files)}")
    if "student.arch.json" in files:
        print(f"reload the student with fewshot_kd.adapt.load_student({str(out)!r})")
    else:
        print("(weights only: this teacher's kind has no architecture file, so load_student cannot rebuild it)")
    return out


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    words = argv if argv is not None else sys.argv[1:]
    command = "python -m fewshot_kd.adapt " + " ".join(shlex.quote(w) for w in words)
    try:
        run(args, command)
    except FewShotKDError as error:
        raise SystemExit(f"error: {error}") from None
