"""A task family cut to some of its dataset's classes: data relabelled, teacher head sliced."""

import pytest
import torch

from fewshot_kd.errors import BadInputError, FewShotKDError, UnsupportedLayerError
from fewshot_kd.models.catalog import create_model
from fewshot_kd.models.class_head import keep_classes_
from fewshot_kd.task_family import build_teacher, load_task_family, load_task_splits

TASK = """dataset: digits
teacher: {model: small_cnn, num_classes: 10, in_channels: 1, input_size: 8, width: 4}
student: {model: small_cnn, kwargs: {in_channels: 1, input_size: 8, width: 2}}
"""


def test_keep_classes_gives_the_chosen_logits_in_order():
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=10, in_channels=1, input_size=8, width=4).eval()
    x = torch.randn(5, 1, 8, 8)
    full = model(x)
    keep_classes_(model, [7, 2, 5])
    assert torch.allclose(model(x), full[:, [7, 2, 5]], atol=1e-6)
    assert model.arch["num_classes"] == 3
    rebuilt = create_model(**model.arch)  # the recorded architecture rebuilds the cut model
    rebuilt.load_state_dict(model.state_dict())
    with pytest.raises(BadInputError, match="distinct ids in 0..2"):
        keep_classes_(model, [0, 3])
    with pytest.raises(UnsupportedLayerError, match="no nn.Linear"):
        keep_classes_(torch.nn.Conv2d(1, 2, 3), [0, 1])


def test_task_classes_cut_data_and_teacher(tmp_path):
    path = tmp_path / "digits-odd.yaml"
    path.write_text(TASK + "classes: [9, 1, 3]\n")
    task = load_task_family(path)
    assert task.classes == (9, 1, 3)
    splits = load_task_splits(task)
    assert splits.class_names == ("9", "1", "3")
    for split in splits.values():
        assert set(split.labels.tolist()) == {0, 1, 2}
    full = load_task_splits(load_task_family(_write(tmp_path, TASK)))
    assert len(splits.train) == int(sum((full.train.labels == c).sum() for c in (9, 1, 3)))
    teacher = build_teacher(task)
    assert teacher(splits.test.input_batch(slice(0, 4))).shape == (4, 3)


def test_a_count_means_the_first_classes(tmp_path):
    task = load_task_family(_write(tmp_path, TASK + "classes: 4\n"))
    assert task.classes == (0, 1, 2, 3)
    assert load_task_splits(task).num_classes == 4


@pytest.mark.parametrize("bad", ["1", "[2, 2]", "[-1, 3]", "'abc'", "[1.5, 2]"])
def test_bad_classes_are_refused(tmp_path, bad):
    with pytest.raises(FewShotKDError, match="classes must be"):
        load_task_family(_write(tmp_path, TASK + f"classes: {bad}\n"))


def test_class_ids_beyond_the_dataset_are_refused(tmp_path):
    task = load_task_family(_write(tmp_path, TASK + "classes: [0, 12]\n"))
    with pytest.raises(FewShotKDError, match="digits has 10 classes"):
        load_task_splits(task)
    with pytest.raises(FewShotKDError, match="has 10 classes"):
        build_teacher(task)


def _write(folder, text):
    path = folder / f"task{abs(hash(text))}.yaml"
    path.write_text(text)
    return path
