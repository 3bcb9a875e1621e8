"""The command line of ``python -m fewshot_kd.adapt``: its arguments and how their values read."""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace
from pathlib import Path

from fewshot_kd.errors import BadInputError

EXAMPLES = """\
examples:
  python -m fewshot_kd.adapt --teacher digits-cnn --data digits --shots 10 --out runs/digits
  python -m fewshot_kd.adapt --teacher resnet18 --weights resnet18_flowers.pt --data photos/ \\
      --image-size 64 --shots 10 --target macs=0.5,bits=8 --onnx --out runs/flowers
  python -m fewshot_kd.adapt --teacher my-bert/ --data reviews.csv --shots 16 --out runs/bert
  python -m fewshot_kd.adapt --teacher a.safetensors --teacher-classes 0,1,2,3,4 \\
      --teacher b.safetensors --teacher-classes 5,6,7,8,9 --student small_cnn --data digits --out runs/two
  python -m fewshot_kd.adapt --teacher tinyshakespeare-gpt2 --data tinyshakespeare --shots 20 --out runs/lm
  python -m fewshot_kd.adapt --teacher my-gpt2/ --data tinyshakespeare --policy steps=100,sequence_length=64 \\
      --out runs/my-lm
  python -m fewshot_kd.adapt --teacher squad-minilm --data squad --shots 128 --out runs/qa

Three tasks, told by --data: labelled classes (classification: images or text), running text
(causal language modelling: a GPT-2 teacher; perplexity and greedy generations in the report) or
questions (extractive question answering: a ...ForQuestionAnswering teacher; exact match and F1).
--teacher: a Hugging Face folder (save_pretrained, with its tokenizer) of a sequence classifier,
  a causal LM (GPT-2 *LMHeadModel) or an extractive QA model (*ForQuestionAnswering), read
  offline without running its code; a folder this command wrote; a .safetensors with
  X.arch.json beside it (or written by fewshot_kd's save_pruned); a torchvision or fewshot_kd
  architecture name with --weights FILE (a state dict: .pt/.pth read with weights_only=True, or
  .safetensors); a teacher recipe name (digits-cnn, tinyshakespeare-gpt2, squad-minilm: trained
  once and cached).
--data: a dataset name (fewshot_kd.list_datasets()) or a path: an image folder (one sub-folder
  per class, or train/ and test/ holding them), an .npz (x, y, class_names), a .csv/.tsv/.jsonl
  with text and label columns, or a Hugging Face save_to_disk folder. Without a test split, 20%
  of every class is held out to report accuracy on. Running text and questions are named
  datasets (tinyshakespeare, squad).
--out receives report.json, the student (student.int8.safetensors or student.safetensors, and
  student.arch.json; fewshot_kd.adapt.load_student reads them back) and, with --onnx,
  student.onnx, which onnxruntime runs without fewshot_kd (a text student's takes input_ids and
  attention_mask; its tokenizer.json is written beside it). A causal LM's or QA model's student
  is written as packed int weights (or fp32 with bits=none) and student.arch.json. It is written
  only once everything succeeded.
"""

_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_INT_KEYS = ("bits", "latency_batch")


def _bytes(text: str) -> int:
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise BadInputError(f"size_bytes={text!r}: give bytes, optionally with a unit (500kB, 2MB, 1MiB)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def _target_value(key: str, text: str):
    if text.strip().lower() in ("none", "null", "float", "off"):
        return None
    if key == "layers":
        return text.strip()
    if key == "size_bytes":
        return _bytes(text)
    try:
        return int(text) if key in _INT_KEYS else float(text)
    except ValueError:
        raise BadInputError(f"target {key}={text!r} is not a number") from None


def _pairs(text: str, flag: str, example: str) -> list[tuple[str, str]]:
    """``"a=1,b=2"`` as ``[("a", "1"), ("b", "2")]``; ``example`` shows the form in the error."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInputError(f"{flag} items are key=value, comma-separated ({example}); got {item!r}")
        pairs.append((key.strip(), value))
    return pairs


def parse_target(text: str) -> dict:
    """``"macs=0.5,bits=8"`` as ``{"macs": 0.5, "bits": 8}`` (``bits=none``: a float student;
    ``size_bytes=2MB``; ``layers=last 3``). Keys and ranges are checked by :class:`Target`."""
    target = {key: _target_value(key, value) for key, value in _pairs(text, "--target", "macs=0.5,bits=8")}
    if "params" in target:
        target.setdefault("macs", None)  # a params budget replaces the default MACs one
    from fewshot_kd.adapt.target import Target
    from fewshot_kd.errors import FewShotKDError

    try:
        Target.parse(target)  # unknown keys and bad values fail here, before anything loads
    except FewShotKDError as error:
        raise BadInputError(str(error)) from None
    return target


def _target_arg(text: str) -> dict:
    from fewshot_kd.errors import FewShotKDError

    try:
        return parse_target(text)
    except FewShotKDError as error:  # argparse shows an ArgumentTypeError's own words
        raise argparse.ArgumentTypeError(str(error)) from None


def shipped_policy(name: str) -> Path:
    return Path(__file__).resolve().parents[1] / "policies" / name


def inline_json(text: str):
    """``--policy``'s inline JSON (``'{"steps": 50}'``), read."""
    try:
        return json.loads(text)
    except ValueError as error:
        raise BadInputError(f"--policy is not valid JSON ({error}); e.g. --policy '{{\"steps\": 50}}'") from None


def key_values(text: str, flag: str) -> dict:
    """``"steps=50,alpha=0.5,eval_questions=null"`` as a dict, each value read as JSON when it is
    (numbers, true, false, null), else kept as text."""
    settings = {}
    for key, value in _pairs(text, flag, "steps=50,lr=1e-4"):
        try:
            settings[key] = json.loads(value)
        except ValueError:
            settings[key] = value.strip()
    return settings


def resolve_policy(text: str | None, steps: int | None, is_text: bool, new_arch: bool = False):
    """``--policy``: ``hand-set`` (default), ``meta`` (the shipped meta-learned policy), a
    policy JSON file or meta-policy folder, or inline JSON (``'{"steps": 50}'``); ``--steps``
    then overrides the distillation steps of a hand-set or JSON policy (``new_arch_steps`` for
    a ``--student`` of another architecture)."""
    from fewshot_kd.adapt.api import _policy

    if text is None or text == "hand-set":
        policy = _policy(None, is_text)
    elif text == "meta":
        policy = _policy(shipped_policy("meta_default"), is_text)
    elif text.lstrip().startswith("{"):
        policy = _policy(inline_json(text), is_text)
    elif Path(text).exists():
        policy = _policy(text, is_text)
    else:
        raise BadInputError(f"--policy {text!r}: no such file; pass hand-set, meta, a policy JSON file or folder, or "
                            f"inline JSON like '{{\"steps\": 50}}'")
    if steps is None:
        return policy
    from fewshot_kd.adapt.policy import Policy

    if not isinstance(policy, Policy):
        raise BadInputError("--steps sets a hand-set or JSON policy's steps; a meta-learned policy decides its own")
    return replace(policy, **{"new_arch_steps" if new_arch else "steps": steps})


def _unlabelled(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fewshot_kd.adapt", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Compress a teacher into a smaller student from a few examples (distillation, pruning and\n"
                    "quantization), and write the student and a report. Three tasks: classification (a few labelled\n"
                    "examples per class), causal language modelling (a few sequences of running text) and extractive\n"
                    "question answering (a few answered questions).")
    need = p.add_argument_group("what to compress")
    need.add_argument("--teacher", required=True, action="append", metavar="PATH_OR_NAME",
                      help="the teacher (see below); repeat it, each followed by --teacher-classes, to distil "
                           "several specialist teachers into one --student")
    need.add_argument("--teacher-classes", action="append", metavar="IDS_OR_NAMES",
                      help="the data's classes the preceding --teacher's outputs stand for, in its output order: "
                           "label ids (0,1,2,3,4) or class names (cat,dog); every class from exactly one teacher")
    need.add_argument("--weights", action="append", metavar="FILE",
                      help="a state-dict file for an architecture-name teacher (once per --teacher when several)")
    need.add_argument("--data", required=True, metavar="PATH_OR_NAME",
                      help="the data to draw the shots from: labelled classes, running text or questions")
    need.add_argument("--shots", type=int, metavar="K",
                      help="labelled examples per class (default 10); for a causal LM, sequences (default 20); for "
                           "QA, answered questions (default 128)")
    need.add_argument("--out", required=True, metavar="DIR", help="output folder (created; see below)")
    how = p.add_argument_group("how to compress")
    how.add_argument("--student", metavar="NAME_OR_PATH",
                     help="a student of another architecture: a fewshot_kd model name (built for the data's classes "
                          "and image size) or a model file read like --teacher (default: derived from the teacher; "
                          "required with several teachers)")
    how.add_argument("--target", type=_target_arg, default={"macs": 0.5, "bits": 8}, metavar="KEY=VALUE,...",
                     help="what the student must fit: macs or params (fraction of the teacher's), bits (2-8 or none), "
                          "size_bytes (500kB, 2MB), size_ratio, layers (text: 'last 3'), latency (default macs=0.5,bits=8)")
    how.add_argument("--policy", metavar="NAME_OR_FILE",
                     help="hand-set (default), meta (the shipped meta-learned policy), a policy JSON file or folder, "
                          "or inline JSON such as '{\"steps\": 50}'; for a causal LM or QA, a JSON file, inline JSON "
                          "or key=value pairs of LMPolicy / QAPolicy fields (steps=50,sequence_length=64)")
    how.add_argument("--steps", type=int, metavar="N", help="distillation steps (overrides the policy's)")
    how.add_argument("--unlabelled", type=_unlabelled, metavar="N|PATH",
                     help="unlabelled inputs the student also learns the teacher's outputs on: N drawn from --data "
                          "beside the shots, or a path (any --data format with labels ignored, a folder of "
                          "images, or a .txt file with one text per line; for a causal LM, a text file of running "
                          "text)")
    how.add_argument("--seed", type=int, default=0, help="draws the shots and seeds training (default 0)")
    how.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when present, else cpu)")
    data = p.add_argument_group("reading the data")
    data.add_argument("--image-size", type=int, metavar="PX", help="resize images to PX x PX (needed when sizes differ)")
    data.add_argument("--text-column", default="text", help="a table's text column (default text)")
    data.add_argument("--label-column", default="label", help="a table's label column (default label)")
    data.add_argument("--data-root", metavar="DIR", help="where named datasets live (default $FEWSHOT_KD_DATA)")
    out = p.add_argument_group("output")
    out.add_argument("--onnx", action="store_true",
                     help="also write student.onnx (float graph; text students take token ids)")
    out.add_argument("--integer", action="store_true",
                     help="also build and evaluate the int8 onnxruntime model (student.int8.onnx: static int8 for "
                          "images, dynamic int8 for text)")
    out.add_argument("--overwrite", action="store_true", help="replace --out if it already holds files")
    out.add_argument("--no-progress", action="store_true", help="no progress bars and no report table")
    return p
