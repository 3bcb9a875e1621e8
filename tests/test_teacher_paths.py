"""Teachers by path or name: torchvision architectures with a state-dict file, this library's
own safetensors + architecture JSON, local Hugging Face folders, and the errors for bad ones."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

from fewshot_kd import create_model
from fewshot_kd.errors import (BadInputError, ClassCountMismatchError, CorruptFileError, DataNotFoundError,
                               UnknownNameError)
from fewshot_kd.files import save_tensors, write_json
from fewshot_kd.models._normalize import IMAGENET_MEAN, IMAGENET_STD
from fewshot_kd.prune.serialize import describe_architecture, save_pruned
from fewshot_kd.teachers.by_path import load_teacher
from path_fixtures import tiny_bert_folder


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=3).eval()


def _imagenet(x):
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def test_a_torchvision_name_with_a_state_dict_file_computes_what_the_original_does(resnet18, tmp_path):
    torch.save(resnet18.state_dict(), tmp_path / "r18.pt")
    teacher = load_teacher("resnet18", weights=tmp_path / "r18.pt", num_classes=3)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(teacher(x), resnet18(_imagenet(x)), atol=1e-5)
        grey = torch.rand(2, 1, 32, 32)
        assert torch.allclose(teacher(grey), resnet18(_imagenet(grey.expand(-1, 3, -1, -1))), atol=1e-5)
    assert teacher.arch["arch"] == "resnet18" and not teacher.training


def test_wrapped_dataparallel_and_safetensors_checkpoints_load(resnet18, tmp_path):
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in resnet18.state_dict().items()}}
    torch.save(wrapped, tmp_path / "ckpt.pth")
    save_tensors(tmp_path / "r18.safetensors", resnet18.state_dict())
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        for weights in ("ckpt.pth", "r18.safetensors"):
            teacher = load_teacher("torchvision:resnet18", weights=tmp_path / weights, num_classes=3)
            assert torch.allclose(teacher(x), resnet18(_imagenet(x)), atol=1e-5)


def test_a_checkpoint_for_other_classes_or_another_architecture_is_refused(resnet18, tmp_path):
    torch.save(resnet18.state_dict(), tmp_path / "r18.pt")
    with pytest.raises(ClassCountMismatchError, match="fc.*3 outputs.*5 classes"):
        load_teacher("resnet18", weights=tmp_path / "r18.pt", num_classes=5)
    with pytest.raises(BadInputError, match="does not fit.*(missing|unexpected) keys"):
        load_teacher("resnet34", weights=tmp_path / "r18.pt", num_classes=3)


def test_unreadable_checkpoints_are_corrupt_file_errors(resnet18, tmp_path):
    torch.save(resnet18.state_dict(), tmp_path / "r18.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "r18.pt").read_bytes()[:5000])
    with pytest.raises(CorruptFileError, match="cut.pt"):
        load_teacher("resnet18", weights=tmp_path / "cut.pt", num_classes=3)
    torch.save(resnet18, tmp_path / "pickled_module.pt")  # needs code to unpickle: weights_only refuses it
    with pytest.raises(CorruptFileError, match="pickled_module.pt"):
        load_teacher("resnet18", weights=tmp_path / "pickled_module.pt", num_classes=3)
    torch.save({"epoch": 1, "note": "no tensors"}, tmp_path / "empty.pt")
    with pytest.raises(CorruptFileError, match="no state dict"):
        load_teacher("resnet18", weights=tmp_path / "empty.pt", num_classes=3)


def _small_cnn():
    torch.manual_seed(1)
    return create_model("small_cnn", in_channels=1, input_size=8, width=4, num_classes=4).eval()


@pytest.mark.parametrize("form", ["save_pruned", "arch_name", "arch_description", "folder"])
def test_own_safetensors_with_architecture_json_loads(form, tmp_path):
    model = _small_cnn()
    if form == "save_pruned":
        spec = save_pruned(model, tmp_path / "teacher.safetensors")
    else:
        save_tensors(tmp_path / "teacher.safetensors", model.state_dict())
        arch = model.arch if form == "arch_name" else describe_architecture(model, model.arch)
        write_json(tmp_path / "teacher.arch.json", arch)
        spec = tmp_path if form == "folder" else tmp_path / "teacher.safetensors"
    teacher = load_teacher(spec)
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(teacher(x), model(x))


def test_bad_own_files_say_what_is_missing(tmp_path):
    model = _small_cnn()
    save_tensors(tmp_path / "w.safetensors", model.state_dict())
    with pytest.raises(BadInputError, match="no architecture.*w.arch.json"):
        load_teacher(tmp_path / "w.safetensors")
    (tmp_path / "w.arch.json").write_text(json.dumps({"layers": 3}))
    with pytest.raises(BadInputError, match="describes no architecture"):
        load_teacher(tmp_path / "w.safetensors")
    (tmp_path / "w.arch.json").write_text("{not json")
    with pytest.raises(CorruptFileError, match="w.arch.json"):
        load_teacher(tmp_path / "w.safetensors")
    torch.save(model.state_dict(), tmp_path / "loose.pt")
    with pytest.raises(BadInputError, match="without an architecture.*--weights loose.pt"):
        load_teacher(tmp_path / "loose.pt")


def test_missing_paths_and_unknown_names(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_teacher(tmp_path / "no" / "teacher")
    with pytest.raises(DataNotFoundError, match="weights file"):
        load_teacher("resnet18", weights=tmp_path / "missing.pt", num_classes=3)
    with pytest.raises(UnknownNameError, match="unknown teacher 'resnet_eighteen'"):
        load_teacher("resnet_eighteen")
    with pytest.raises(BadInputError, match="needs its weights"):
        load_teacher("resnet18")


def test_a_hugging_face_folder_is_a_text_teacher(tmp_path):
    model = tiny_bert_folder(tmp_path / "bert", num_labels=3)
    teacher = load_teacher(tmp_path / "bert")
    texts = ["the movie is good", "bad", "not good not bad"]
    tokens = teacher.tokenizer(texts, padding=True, return_tensors="pt")
    assert tokens["input_ids"][0].tolist()[1:5] == [8, 7, 9, 5]  # the folder's own vocabulary
    with torch.no_grad():
        assert torch.allclose(teacher(texts), model(**tokens).logits, atol=1e-6)
    assert teacher.num_classes == 3


def test_bad_hugging_face_folders_are_named(tmp_path):
    tiny_bert_folder(tmp_path / "no_tokenizer", tokenizer=False)
    with pytest.raises(BadInputError, match="no tokenizer files"):
        load_teacher(tmp_path / "no_tokenizer")
    transformers = pytest.importorskip("transformers")
    bare = transformers.BertModel(transformers.BertConfig(vocab_size=11, hidden_size=16, num_hidden_layers=1,
                                                           num_attention_heads=2, intermediate_size=32))
    bare.save_pretrained(str(tmp_path / "encoder_only"))
    with pytest.raises(BadInputError, match="BertModel, not a sequence classifier"):
        load_teacher(tmp_path / "encoder_only")
    tiny_bert_folder(tmp_path / "cut")
    weights = tmp_path / "cut" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:300])
    with pytest.raises(CorruptFileError, match="weights do not load"):
        load_teacher(tmp_path / "cut")
