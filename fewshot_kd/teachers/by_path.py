"""``load_teacher(spec)``: a teacher from a path or a name.

* a Hugging Face folder (``config.json``, weights, tokenizer) of a sequence classifier, a causal
  language model or an extractive QA model (the kind its config's ``architectures`` names);
* this library's own files: a folder adapt() exported, a ``.safetensors`` written by
  :func:`~fewshot_kd.prune.serialize.save_pruned`, or ``X.safetensors`` beside ``X.arch.json``
  (an architecture description, or ``{"name": <registry name>, **kwargs}``);
* an architecture name with ``weights=`` a state-dict file (``.pt``/``.pth``/``.bin`` read
  with ``weights_only=True``, or ``.safetensors``): a torchvision name (``resnet18``) or a
  fewshot_kd model name (``cifar_resnet56``), built with ``num_classes`` outputs;
* a fewshot_kd model name alone (its offline pretrained weights) or a teacher recipe name
  (``digits-cnn``: trained once, then cached).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch.nn as nn

from fewshot_kd.errors import BadInputError, DataNotFoundError, UnknownNameError
from fewshot_kd.files import load_tensors, read_json
from fewshot_kd.teachers.hf_folder import is_hf_folder
from fewshot_kd.teachers.hf_task_folder import load_hf_folder
from fewshot_kd.teachers.state_dict import load_state_into, read_state_dict

ARCH_SUFFIX = ".arch.json"
STATE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
KINDS = ("a Hugging Face sequence-classification, causal-LM or question-answering folder", "a folder adapt() exported",
         "a .safetensors file with its architecture (save_pruned, or X.arch.json beside it)",
         "an architecture name (torchvision or fewshot_kd) with weights=FILE", "a fewshot_kd model or recipe name")


def _from_arch_json(weights: Path, arch_file: Path) -> nn.Module:
    from fewshot_kd.models.catalog import create_model
    from fewshot_kd.prune.serialize import build_skeleton

    description = read_json(arch_file)
    state = load_tensors(weights)
    if isinstance(description, dict) and isinstance(description.get("arch"), dict) and "modules" in description:
        model = build_skeleton(description, state, source=str(arch_file))
    elif isinstance(description, dict) and isinstance(description.get("name"), str):
        kwargs = {k: v for k, v in description.items() if k != "name"}
        model = create_model(description["name"], **kwargs)
    else:
        raise BadInputError(f"{arch_file} describes no architecture: it needs {{\"name\": <model name>, ...keyword "
                            f"arguments}} or the description adapt() / save_pruned write")
    return load_state_into(model, state, str(weights))


def _own_files(path: Path) -> nn.Module | None:
    """A model in this library's formats at ``path``, or ``None`` when it holds none."""
    from fewshot_kd.adapt.export import ARCH_FILE

    if path.is_dir() and (path / ARCH_FILE).is_file():
        from fewshot_kd.adapt.load import load_student

        return load_student(path)
    if path.is_dir():
        pairs = [p for p in sorted(path.glob("*.safetensors")) if p.with_name(p.stem + ARCH_SUFFIX).is_file()]
        if len(pairs) > 1:
            raise BadInputError(f"{path} holds several models ({[p.name for p in pairs]}); pass one .safetensors file")
        path = pairs[0] if pairs else path
    if path.is_file() and path.suffix == ".safetensors":
        arch_file = path.with_name(path.stem + ARCH_SUFFIX)
        if arch_file.is_file():
            return _from_arch_json(path, arch_file)
        from fewshot_kd.prune.serialize import FORMAT, load_pruned
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            if (handle.metadata() or {}).get("format") == FORMAT:
                return load_pruned(path)
        raise BadInputError(f"{path} holds weights but no architecture: put {arch_file.name} beside it, or pass the "
                            f"architecture name as the teacher and this file as weights")
    return None


def _by_name(name: str, weights: Path | None, num_classes: int | None, data_root, progress: bool) -> nn.Module:
    from fewshot_kd.models.catalog import MODELS, create_model
    from fewshot_kd.models.torchvision_any import torchvision_names
    from fewshot_kd.teachers.recipe import RECIPES

    name = name.removeprefix("torchvision:")
    if weights is None and name in RECIPES:
        from fewshot_kd.teachers.store import load_or_train_teacher

        return load_or_train_teacher(name, data_root=data_root, progress=progress)[0]
    if weights is None and name in MODELS:
        try:
            return create_model(name, pretrained=True, data_root=data_root).eval()
        except (ValueError, TypeError) as error:
            raise BadInputError(f"{name}: {error}") from None
    if weights is None and name in torchvision_names():
        raise BadInputError(f"torchvision {name} needs its weights: pass a state-dict file (weights=FILE, --weights "
                            f"on the command line); torchvision's downloads are not used")
    if name not in MODELS and name not in torchvision_names():
        raise UnknownNameError(f"unknown teacher {name!r}: pass {', '.join(KINDS)}. fewshot_kd models: "
                               f"{', '.join(MODELS.names())}; recipes: {', '.join(RECIPES.names())}")
    if weights is None or num_classes is None:
        raise BadInputError(f"loading {name} needs weights= (a state-dict file) and num_classes= (the data's classes)")
    if name in MODELS:
        model = create_model(name, num_classes=num_classes)
        return load_state_into(model, read_state_dict(weights), str(weights))
    model = create_model("torchvision", arch=name, num_classes=num_classes)
    load_state_into(model.net, read_state_dict(weights), str(weights))
    return model.eval()


def load_teacher(spec: str | os.PathLike, weights: str | os.PathLike | None = None, num_classes: int | None = None,
                 data_root=None, progress: bool = True) -> nn.Module:
    """The teacher ``spec`` names (see the module docstring), in eval mode."""
    path = Path(spec).expanduser()
    weights = Path(weights).expanduser() if weights is not None else None
    if weights is not None and not weights.is_file():
        raise DataNotFoundError(f"weights file {weights} does not exist")
    if path.exists():
        if is_hf_folder(path):
            return load_hf_folder(path)
        model = _own_files(path)
        if model is not None:
            return model.eval()
        if path.is_file() and path.suffix in STATE_SUFFIXES:
            raise BadInputError(f"{path} is a weights file without an architecture: pass the architecture name as the "
                                f"teacher and this file as weights (--teacher resnet18 --weights {path.name})")
        raise BadInputError(f"{path}: not a teacher this library reads; pass {', '.join(KINDS)}")
    if "/" in str(spec) or os.sep in str(spec) or path.suffix in STATE_SUFFIXES:
        raise DataNotFoundError(f"teacher {path} does not exist; pass {', '.join(KINDS)}")
    return _by_name(str(spec), weights, num_classes, data_root, progress)
