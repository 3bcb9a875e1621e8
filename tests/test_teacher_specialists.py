"""Specialist teachers: a dataset cut to some classes, and recipes that train on them only."""

from __future__ import annotations

import pytest
import torch

from fewshot_kd import load_dataset
from fewshot_kd.data.class_subset import class_subset
from fewshot_kd.errors import BadInputError
from fewshot_kd.teachers.recipe import get_recipe
from fewshot_kd.teachers.store import load_or_train_teacher


def test_class_subset_keeps_those_classes_relabelled_in_the_order_given():
    train = load_dataset("digits").train
    part = class_subset(train, [7, 2])
    assert part.class_names == ("7", "2") and set(part.labels.tolist()) == {0, 1}
    assert len(part) == int((train.labels == 7).sum() + (train.labels == 2).sum())
    first_seven = int(torch.nonzero(train.labels == 7)[0])
    assert torch.equal(part.inputs[part.labels == 0][0], train.inputs[first_seven])
    for bad in ([], [1, 1], [10]):
        with pytest.raises(BadInputError, match="distinct label ids"):
            class_subset(train, bad)


def test_a_specialist_recipe_trains_on_its_classes_only(tmp_path):
    recipe = get_recipe("digits-cnn-classes5-9")
    assert recipe.classes == (5, 6, 7, 8, 9) and recipe.fingerprint() != get_recipe("digits-cnn").fingerprint()
    model, info = load_or_train_teacher(recipe, store_root=tmp_path, progress=False)
    test = load_dataset("digits").test
    assert info["test_split_size"] == int((test.labels >= 5).sum()) and info["test_accuracy"] > 0.8
    assert model(test.input_batch(slice(0, 2))).shape == (2, 5)
    again, _ = load_or_train_teacher(recipe, store_root=tmp_path, progress=False)  # from the cache
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
