"""Faults in files: a truncated or corrupted checkpoint, policy or exported student, and a
policy JSON with out-of-range values, each a clear FewShotKDError naming the file."""

from __future__ import annotations

import json
import math
import shutil
import warnings

import pytest
import torch

from fewshot_kd import Policy, adapt, create_model, load_student
from fewshot_kd.errors import CorruptFileError, FewShotKDError
from fewshot_kd.files import load_tensors, save_tensors, save_torch
from fewshot_kd.meta import MetaPolicy, MetaTrainConfig, PolicyNet, meta_train
from fewshot_kd.meta.train import CHECKPOINT


def _cut(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _garble(path) -> None:
    data = bytearray(path.read_bytes())
    data[:16] = b"\xff" * 16  # the header (safetensors length prefix, zip magic, JSON start)
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------- meta-training checkpoint


@pytest.mark.parametrize("damage", [_cut, _garble, lambda p: p.write_bytes(b"")], ids=["cut", "garbled", "empty"])
def test_a_damaged_checkpoint_is_named_on_resume(tmp_path, damage):
    save_torch(tmp_path / CHECKPOINT, {"config": {}, "policy": PolicyNet().state_dict(), "step": 1})
    damage(tmp_path / CHECKPOINT)
    with pytest.raises(CorruptFileError, match=f"{CHECKPOINT}.*--fresh"):
        meta_train(MetaTrainConfig(episodes=2, meta_batch=2), tmp_path, resume=True, progress=False)


def test_a_checkpoint_of_something_else_is_refused(tmp_path):
    save_torch(tmp_path / CHECKPOINT, {"step": 3})
    with pytest.raises(CorruptFileError, match="not a meta-training checkpoint"):
        meta_train(MetaTrainConfig(episodes=2, meta_batch=2), tmp_path, resume=True, progress=False)
    from fewshot_kd.meta_train import main

    with pytest.raises(SystemExit, match=f"error: .*{CHECKPOINT}"):  # the CLI prints one line, no traceback
        main(["--out", str(tmp_path), "--resume", "--episodes", "2", "--meta-batch", "2", "--no-progress"])


# ---------------------------------------------------------------- meta-learned policy


@pytest.fixture
def policy_dir(tmp_path):
    MetaPolicy(PolicyNet(), base=Policy(steps=7, lr=2e-3)).save(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", ["policy.safetensors", "policy.json"])
@pytest.mark.parametrize("damage", [_cut, _garble], ids=["cut", "garbled"])
def test_a_damaged_meta_policy_is_named(policy_dir, name, damage):
    from fewshot_kd.adapt.api import _policy

    damage(policy_dir / name)
    with pytest.raises(CorruptFileError, match=name):
        MetaPolicy.load(policy_dir)
    with pytest.raises(CorruptFileError, match=name):  # as adapt(policy=folder) reads it
        _policy(str(policy_dir), False)


def test_meta_policy_files_that_do_not_fit_are_named(policy_dir):
    meta = json.loads((policy_dir / "policy.json").read_text())
    (policy_dir / "policy.json").write_text(json.dumps({**meta, "hidden": meta["hidden"] * 2}))
    with pytest.raises(CorruptFileError, match="policy.json"):  # weights of another shape
        MetaPolicy.load(policy_dir)
    (policy_dir / "policy.json").write_text(json.dumps({**meta, "base": {**meta["base"], "lr": -1}}))
    with pytest.raises(FewShotKDError, match="policy.json.*lr must be positive"):
        MetaPolicy.load(policy_dir)
    state = load_tensors(policy_dir / "policy.safetensors")
    save_tensors(policy_dir / "policy.safetensors", dict(list(state.items())[1:]))  # a tensor missing
    (policy_dir / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(CorruptFileError, match="policy.safetensors"):
        MetaPolicy.load(policy_dir)


# ---------------------------------------------------------------- exported student


@pytest.fixture(scope="module")
def exported(digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    teacher = create_model("small_cnn", in_channels=1, input_size=8, width=8).eval()  # untrained will do
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an untrained teacher: the collapse warning is expected
        adapt(teacher, None, shots=2, data=digits, target={"macs": 0.5, "bits": 8}, export_dir=folder, progress=False,
              policy=Policy(steps=2, views_per_shot=1, flip=False))
    load_student(folder)  # intact, it loads
    return folder


@pytest.fixture
def student_dir(exported, tmp_path):
    return shutil.copytree(exported, tmp_path / "student")


@pytest.mark.parametrize("name", ["student.int8.safetensors", "student.arch.json"])
@pytest.mark.parametrize("damage", [_cut, _garble, lambda p: p.write_bytes(b"")], ids=["cut", "garbled", "empty"])
def test_a_damaged_exported_student_is_named(student_dir, name, damage):
    damage(student_dir / name)
    with pytest.raises(CorruptFileError, match=name):
        load_student(student_dir)


def test_exported_files_with_wrong_contents_are_named(student_dir):
    (student_dir / "student.arch.json").write_text("[]")
    with pytest.raises(CorruptFileError, match="student.arch.json"):
        load_student(student_dir)


def test_quantized_file_with_broken_metadata_is_named(student_dir):
    from safetensors import safe_open

    path = student_dir / "student.int8.safetensors"
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    save_tensors(path, load_tensors(path), {**metadata, "layers": metadata["layers"][:-5]})
    with pytest.raises(CorruptFileError, match="student.int8.safetensors.*layers"):
        load_student(student_dir)


# ---------------------------------------------------------------- policy JSON values

BAD_VALUES = [
    ("lr", 0), ("lr", -1e-3), ("lr", math.nan), ("lr", "1e-3"), ("new_arch_lr", 0), ("qat_lr", -1e-4),
    ("temperature", 0), ("temperature", math.inf), ("alpha", 1.5), ("alpha", -0.1), ("feature_weight", -1),
    ("weight_decay", -1e-4), ("text_word_dropout", 1.0), ("mix_alpha", 0), ("reconstruct_ridge", -0.1),
    ("steps", 0), ("steps", 2.5), ("steps", "300"), ("steps", True), ("new_arch_steps", 0), ("batch_size", 0),
    ("views_per_shot", 0), ("unlabelled_views", 0), ("qat_steps", -1), ("mix_views", -1), ("synthetic_inputs", -1),
    ("synthetic_steps", -5), ("reconstruct_inputs", -1), ("crop_padding", -1), ("crop_padding", 1.5),
    ("version", 0), ("layer_weights", [1.0, -0.5]), ("per_layer_prune", {"conv1": -0.2}),
    ("per_layer_prune", [0.5]), ("per_layer_bits", {"conv1": 9}), ("per_layer_bits", {"conv1": 4.5}),
    ("layer_lr_scale", {"conv1": 0}), ("graft_stages", 0), ("graft_share", 1.0), ("graft_share", -0.5), ("prune_rounds", 0),
    ("mixed_bits", [4, 9]), ("mixed_bits", []), ("mixed_bits", [4.5, 8]), ("mixed_bits", 4),
]


@pytest.mark.parametrize("field, value", BAD_VALUES, ids=[f"{f}={v!r}" for f, v in BAD_VALUES])
def test_policy_json_with_a_value_out_of_range_is_refused(tmp_path, field, value):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({**Policy().to_dict(), field: value}))
    with pytest.raises(FewShotKDError, match=f"policy.json: policy {field}"):
        Policy.load(path)


def test_every_numeric_policy_field_is_checked():
    """A new numeric field needs a range check and a row in BAD_VALUES."""
    numeric = {k for k, v in Policy().to_flat_dict().items() if isinstance(v, (int, float, dict, tuple)) and not isinstance(v, bool)}
    numeric |= {"crop_padding", "layer_weights", "qat_steps", "mixed_bits"}  # None by default
    assert numeric == {field for field, _ in BAD_VALUES}


def test_a_damaged_policy_json_is_named(tmp_path):
    path = tmp_path / "mine.json"
    Policy(steps=5).save(path)
    assert Policy.load(path) == Policy(steps=5)
    _cut(path)
    with pytest.raises(CorruptFileError, match="mine.json"):
        Policy.load(path)
    path.write_text("[1, 2]")
    with pytest.raises(CorruptFileError, match="mine.json"):
        Policy.load(path)
