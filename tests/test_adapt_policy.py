"""Policy version 2: nested frozen sections, flat names still read and set, version-1 files load."""

import json
from dataclasses import replace

import pytest

from fewshot_kd.adapt.policy import FLAT_FIELDS, HAND_SET, POLICY_VERSION, Policy
from fewshot_kd.adapt.policy_parts import PARTS, OptimisationConfig, ViewsConfig
from fewshot_kd.errors import FewShotKDError

VERSION_1 = {  # the hand-set policy as version 1 wrote it: one flat object
    "name": "hand-set", "temperature": 4.0, "alpha": 0.9, "feature_weight": 3.0, "feature_layers": "auto",
    "layer_weights": None, "views_per_shot": 12, "crop_padding": None, "flip": True, "text_word_dropout": 0.1,
    "unlabelled_views": 1, "mix_views": 0, "mix": "cutmix", "mix_alpha": 1.0, "synthetic_inputs": 0,
    "synthetic_steps": 200, "batch_size": 32, "steps": 300, "lr": 0.001, "new_arch_steps": 1500, "new_arch_lr": 0.002,
    "weight_decay": 0.0005, "structure": "channels", "prune_importance": "l1", "per_layer_prune": {},
    "per_layer_bits": {}, "layer_lr_scale": {}, "reconstruct_inputs": 0, "reconstruct_ridge": 0.001,
    "bn_recalibrate": True, "qat_steps": 0, "qat_lr": 0.0001, "version": 1,
}


def test_flat_settings_route_into_their_sections():
    policy = Policy(steps=10, flip=False, per_layer_bits={"fc": 4})
    assert policy.optimisation == OptimisationConfig(steps=10) and policy.views == ViewsConfig(flip=False)
    assert (policy.steps, policy.flip, policy.per_layer_bits) == (10, False, {"fc": 4})
    assert replace(policy, lr=1e-4, name="x").optimisation == OptimisationConfig(steps=10, lr=1e-4)
    assert replace(policy, views=ViewsConfig(mix_views=2), flip=False).views == ViewsConfig(mix_views=2, flip=False)
    with pytest.raises(TypeError, match="unexpected setting 'stepz'"):
        Policy(stepz=3)


def test_per_layer_maps_are_read_only_and_copied():
    ratios = {"conv": 0.5}
    policy = Policy(per_layer_prune=ratios)
    ratios["conv"] = 0.9
    assert policy.per_layer_prune == {"conv": 0.5}
    with pytest.raises(TypeError):
        policy.layer_lr_scale["fc"] = 2.0


def test_version_1_files_and_flat_dicts_load_as_version_2(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({**VERSION_1, "steps": 50, "per_layer_prune": {"conv": 0.3}}))
    loaded = Policy.load(path)
    assert loaded == Policy(steps=50, per_layer_prune={"conv": 0.3}, qat_steps=0, qat_lr=1e-4)  # its own QAT settings
    assert loaded.version == POLICY_VERSION == 2
    assert Policy.from_dict({"steps": 7}) == Policy(steps=7)
    assert HAND_SET.to_flat_dict() == {**VERSION_1, "qat_steps": None, "qat_lr": 5e-4, "channels_last": False,
                                       "prune_round_to": None, "schedule": "one_shot", "graft_stages": 3,
                                       "graft_share": 0.5, "prune_rounds": 1, "mixed_bits": None, "text_layers": None,
                                       "version": 2}  # unset qat_steps: QAT below 8 bits
    assert list(HAND_SET.to_flat_dict()) == ["name", *FLAT_FIELDS, "version"]


def test_version_2_is_nested_plain_json_and_round_trips(tmp_path):
    policy = Policy(name="p", steps=5, layer_weights=(1.0, 2.0), layer_lr_scale={"fc": 2.0})
    data = policy.to_dict()
    assert list(data) == ["name", *PARTS, "version"] and data["optimisation"]["layer_lr_scale"] == {"fc": 2.0}
    assert type(data["optimisation"]["layer_lr_scale"]) is dict
    assert Policy.load(policy.save(tmp_path / "p.json")) == policy
    assert Policy(**{**data, "steps": 6}) == replace(policy, steps=6)  # sections as dicts, a flat key over them


@pytest.mark.parametrize("data, words", [
    ({"views": {"flips": True}}, r"policy views has unknown keys \['flips'\]"),
    ({"views": 3}, "policy views must be a ViewsConfig"),
    ({"version": 3}, "newer than this fewshot_kd understands"),
    ({"version": "2"}, "version must be a whole number"),
    ({"repair": {"reconstruct_inputs": -1}}, "policy reconstruct_inputs must be 0 or more"),
    ({"colour": 1}, r"unknown keys \['colour'\]"),
])
def test_bad_dicts_are_clear_errors(data, words):
    with pytest.raises(FewShotKDError, match=words):
        Policy.from_dict(data)
