"""adapt()'s pre-flight: every argument checked before any work starts, the data against
the teacher (and a given student) with one example forward, so bad input fails in a second
with a :class:`BadInputError` saying what was wrong and what to do."""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from fewshot_kd.adapt.target import Target
from fewshot_kd.data.dataset import DatasetSplits, LabelledDataset, model_ready
from fewshot_kd.errors import BadInputError, ClassCountMismatchError


def preflight(teacher, student, pool: LabelledDataset, shots, seed, target, policy, eval_data, device,
              export_dir, integer, unlabelled) -> list[str]:
    """Raise :class:`BadInputError` for anything that would fail later; return (and
    ``warnings.warn``) a note for what runs but looks wrong."""
    _whole("shots", shots, 1, "shots per class, e.g. shots=10")
    _whole("seed", seed, 0, "e.g. seed=0")
    if not isinstance(teacher, nn.Module):
        raise BadInputError(f"teacher must be a trained torch.nn.Module, got {_kind(teacher)}; build the model "
                            f"and load its weights first (e.g. fewshot_kd.create_model(name, pretrained=True))")
    if not (student is None or student == "derive" or isinstance(student, nn.Module)):
        raise BadInputError(f"student must be None or 'derive' (derive it from the teacher) or an nn.Module, got "
                            f"{_kind(student)}; build a named model with fewshot_kd.create_model(...)")
    _device(device, teacher)
    Target.parse(target)
    if isinstance(policy, (str, Path)) and not Path(policy).exists():
        raise BadInputError(f"policy file {str(policy)!r} does not exist; pass a saved policy's path, "
                            f"a Policy, a dict of Policy fields, or None for the hand-set default")
    _export_dir(export_dir)
    if integer and not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime")):
        raise BadInputError("integer=True needs onnx and onnxruntime: pip install 'fewshot_kd[export]'")
    if integer and pool.is_text:
        check_text_export(student if isinstance(student, nn.Module) else teacher, "integer=True")
    example = pool.input_batch(slice(0, 2))
    notes = _fits("teacher", teacher, example, pool.num_classes)
    if isinstance(student, nn.Module):
        notes += _fits("student", student, example, pool.num_classes)
    _unlabelled(unlabelled, example)
    for name, data in (eval_data.items() if isinstance(eval_data, dict) else [("eval_data", eval_data)]):
        _eval_set(str(name), data, pool, example)
    for note in notes:
        warnings.warn(note, stacklevel=3)
    return notes


def check_text_export(model: nn.Module, what: str) -> None:
    """A text student's ONNX export takes token ids: ``model`` (the student, or the teacher it
    is derived from) must be a text classifier that has them, else a :class:`BadInputError`."""
    from fewshot_kd.quant.text_onnx import is_text_classifier

    if not is_text_classifier(model):
        raise BadInputError(f"{what} exports a text student as an ONNX graph taking token ids, which needs a "
                            f"TextClassifier (fewshot_kd's text models), a Hugging Face sequence-classification "
                            f"folder's model or a transformers *ForSequenceClassification; this student would be a "
                            f"{type(model).__name__}: leave {what} out (the student is still saved as safetensors)")


def _kind(value) -> str:
    return repr(value) if isinstance(value, (str, int, float)) or value is None else f"a {type(value).__name__}"


def _whole(name: str, value, low: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise BadInputError(f"{name} must be a whole number >= {low}, got {value!r} ({hint})")


def _device(device, teacher: nn.Module) -> None:
    if device is None:
        if next(teacher.parameters(), None) is None:
            raise BadInputError(f"the teacher ({type(teacher).__name__}) has no parameters: there is nothing to "
                                f"distil from; pass a trained classifier")
        return
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise BadInputError(f"device {device!r} is not a device; use 'cpu', 'cuda', 'cuda:1', 'mps' or None "
                            f"(the teacher's)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise BadInputError(f"device {str(device)!r} asked, but {count} CUDA device(s) are usable here; "
                                f"pass device='cpu' (or None for the teacher's device)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise BadInputError("device 'mps' asked, but MPS is not available here; pass device='cpu'")


def _export_dir(export_dir) -> None:
    """``export_dir`` must be a writable folder, or creatable in one; nothing is created here."""
    if export_dir is None:
        return
    path = Path(export_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise BadInputError(f"export_dir {str(path)!r} is a file, not a folder; pass a folder to write the student to")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise BadInputError(f"export_dir {str(path)!r} cannot be created: {str(existing)!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInputError(f"export_dir {str(path)!r} is not writable (no write permission on {str(existing)!r}); "
                            f"pass a folder you can write to")


def _shape(inputs) -> str:
    return f"[N, {', '.join(map(str, inputs.shape[1:]))}]" if isinstance(inputs, torch.Tensor) else "text (strings)"


def _fits(role: str, model: nn.Module, example, num_classes: int) -> list[str]:
    """One forward of ``example``: the model must run on it and give ``num_classes`` logits."""
    expected = getattr(model, "input_shape", None)
    wants = f" (its inputs: [N, {', '.join(map(str, expected))}])" if expected else ""
    fix = f"give data shaped like the {role}'s inputs, or a {role} built for this data"
    is_image = isinstance(example, torch.Tensor) and example.dim() == 4
    if is_image and expected is not None and len(expected) == 3 and expected[0] != example.shape[1]:
        raise BadInputError(f"the data's images have {example.shape[1]} channel(s) but the {role} takes "
                            f"{expected[0]}{wants}; {fix}")
    param = next(model.parameters(), None)
    batch = example.to(param.device) if isinstance(example, torch.Tensor) and param is not None else example
    training = model.training
    try:
        with torch.no_grad():
            out = model.eval()(batch)
    except Exception as error:  # the model's own error, whatever it is, means the data does not fit it
        detail = (str(error).strip().splitlines() or [""])[0][:200]
        raise BadInputError(f"the {role} cannot run on the data's inputs ({_shape(example)}){wants}: "
                            f"{type(error).__name__}: {detail}; {fix}") from error
    finally:
        model.train(training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        got = f"shape {list(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        raise BadInputError(f"the {role} must return logits shaped [batch, classes], got {got}; wrap it in a "
                            f"module whose forward returns the logits tensor")
    if out.shape[-1] != num_classes:
        raise ClassCountMismatchError(f"the {role} outputs {out.shape[-1]} classes but the data has {num_classes}; "
                                      f"give the {role} a {num_classes}-way head or pass data with matching classes")
    if is_image and expected is not None and len(expected) == 3 and tuple(expected[1:]) != tuple(example.shape[2:]):
        return [f"the data's images are {example.shape[2]}x{example.shape[3]} but the {role} was built for "
                f"{expected[1]}x{expected[2]}; it runs, but its outputs may mean little: resize the images"]
    return []


def _same_inputs(what: str, inputs, example) -> None:
    """``inputs`` (model-ready) must be the same kind and per-example shape as the data's."""
    if isinstance(example, torch.Tensor) != isinstance(inputs, torch.Tensor) or (
            isinstance(inputs, torch.Tensor) and tuple(inputs.shape[1:]) != tuple(example.shape[1:])):
        raise BadInputError(f"{what} are {_shape(inputs)} but the data's inputs are {_shape(example)}; "
                            f"give {what} like the data's")


def _unlabelled(unlabelled, example) -> None:
    if unlabelled is None or isinstance(unlabelled, (LabelledDataset, list, tuple)) and not len(unlabelled):
        return  # an empty one gets its own error
    if isinstance(unlabelled, (int, float)) and not isinstance(unlabelled, torch.Tensor):
        _whole("unlabelled", unlabelled, 1, "a count of unlabelled examples to draw from data beside the shots")
    elif isinstance(unlabelled, LabelledDataset):
        _same_inputs("unlabelled inputs", unlabelled.input_batch(slice(0, 1)), example)
    elif isinstance(unlabelled, torch.Tensor):
        _same_inputs("unlabelled inputs", model_ready(unlabelled[:1].clone()), example)
    elif isinstance(unlabelled, (list, tuple)) and all(isinstance(t, str) for t in unlabelled):
        _same_inputs("unlabelled inputs", list(unlabelled[:1]), example)


def _eval_set(name: str, data, pool: LabelledDataset, example) -> None:
    if data is None:
        return
    if isinstance(data, str):
        raise BadInputError(f"{name} takes a dataset, not the name {data!r}; pass one split, e.g. "
                            f"fewshot_kd.load_dataset('digits')['test'], or {{name: split}}")
    if isinstance(data, DatasetSplits):
        raise BadInputError(f"{name} got all of {data.name}'s splits; pass one (splits['test']) or a dict of them")
    if not isinstance(data, LabelledDataset):
        raise BadInputError(f"{name} must be a LabelledDataset or {{name: LabelledDataset}}, got {_kind(data)}; "
                            f"wrap (inputs, labels) as fewshot_kd.LabelledDataset(inputs, labels, class_names)")
    if data.num_classes != pool.num_classes:
        raise ClassCountMismatchError(f"{name} has {data.num_classes} classes but the data has {pool.num_classes}; "
                                      f"evaluate on data with the same classes")
    _same_inputs(f"{name}'s inputs", data.input_batch(slice(0, 1)), example)
