"""Datasets by path: image folders, .npz, CSV / JSONL text, save_to_disk folders, and the
errors for every bad path or file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fewshot_kd import load_dataset
from fewshot_kd.data.by_path import load_data_path
from fewshot_kd.data.unlabelled import load_unlabelled_path
from fewshot_kd.errors import (BadInputError, CorruptFileError, DataNotFoundError, NotEnoughExamplesError,
                               UnknownNameError)
from fewshot_kd.task_family import load_task_family
from path_fixtures import image_folder


def test_an_image_folder_loads_with_sorted_classes_and_exact_pixels(tmp_path):
    written = image_folder(tmp_path / "photos", classes=("zebra", "ant", "moth"))
    splits = load_dataset(str(tmp_path / "photos"))
    assert splits.class_names == ("ant", "moth", "zebra")
    assert len(splits.train) + len(splits.test) == 15 and len(splits.test) == 3  # 20 % of each class held out
    assert splits.train.inputs.dtype == torch.uint8 and splits.train.inputs.shape[1:] == (3, 10, 12)
    assert torch.equal(splits.test.class_counts(), torch.ones(3, dtype=torch.long))
    every = torch.cat([splits.train.inputs, splits.test.inputs])
    labels = torch.cat([splits.train.labels, splits.test.labels])
    for (name, _), pixels in written.items():  # each image is somewhere, under its own class
        image = torch.from_numpy(pixels).permute(2, 0, 1)
        hits = [i for i in range(len(every)) if torch.equal(every[i], image)]
        assert len(hits) == 1 and splits.class_names[labels[hits[0]]] == name


def test_grey_images_load_as_one_channel_and_train_test_folders_are_kept(tmp_path):
    image_folder(tmp_path / "d" / "train", per_class=4, mode="L")
    image_folder(tmp_path / "d" / "val", per_class=2, mode="L", seed=1)
    splits = load_data_path(tmp_path / "d")
    assert splits.train.inputs.shape == (12, 1, 10, 12) and splits.test.inputs.shape == (6, 1, 10, 12)
    assert splits.class_names == ("cat", "dog", "eel")


def test_images_of_different_sizes_need_image_size(tmp_path):
    image_folder(tmp_path / "d", classes=("a",), size=(8, 8))
    image_folder(tmp_path / "d", classes=("b",), size=(16, 12))
    with pytest.raises(BadInputError, match="image.size"):
        load_data_path(tmp_path / "d")
    splits = load_data_path(tmp_path / "d", image_size=6)
    assert splits.train.inputs.shape[1:] == (3, 6, 6)


def test_bad_image_folders_say_what_is_wrong(tmp_path):
    image_folder(tmp_path / "d", classes=("a", "b"))
    (tmp_path / "d" / "empty").mkdir()
    with pytest.raises(BadInputError, match="empty.*holds no images"):
        load_data_path(tmp_path / "d")
    (tmp_path / "d" / "empty").rmdir()
    (tmp_path / "d" / "a" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(CorruptFileError, match="broken.png"):
        load_data_path(tmp_path / "d")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "notes.md").write_text("hi")
    with pytest.raises(BadInputError, match="unknown data format.*notes.md"):
        load_data_path(tmp_path / "flat")


def test_a_test_folder_with_a_class_the_train_folder_lacks_is_refused(tmp_path):
    image_folder(tmp_path / "d" / "train", classes=("a", "b"))
    image_folder(tmp_path / "d" / "test", classes=("a", "c"))
    with pytest.raises(BadInputError, match=r"\['c'\]"):
        load_data_path(tmp_path / "d")


def test_a_csv_with_class_name_labels_maps_them_in_sorted_order(tmp_path):
    rows = [("good film", "pos"), ("awful, truly", "neg"), ("fine \"quoted\" text", "pos")] * 5
    lines = ["review,sentiment"] + [f'"{t.replace(chr(34), chr(34) * 2)}",{label}' for t, label in rows]
    (tmp_path / "reviews.csv").write_text("\n".join(lines) + "\n")
    splits = load_dataset(str(tmp_path / "reviews.csv"), text_column="review", label_column="sentiment")
    assert splits.class_names == ("neg", "pos") and splits.train.is_text
    every = dict(zip(splits.train.inputs + splits.test.inputs, torch.cat([splits.train.labels, splits.test.labels]).tolist()))
    assert every == {"good film": 1, "awful, truly": 0, 'fine "quoted" text': 1}


def test_jsonl_index_labels_take_label_names_json_and_train_test_files(tmp_path):
    for split, n in (("train", 9), ("test", 6)):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps({"text": f"{split} {i}", "label": i % 3}) + "\n"
                                                         for i in range(n)))
    (tmp_path / "label_names.json").write_text(json.dumps(["red", "green", "blue"]))
    splits = load_data_path(tmp_path)
    assert splits.class_names == ("red", "green", "blue")
    assert len(splits.train) == 9 and len(splits.test) == 6 and splits.test.inputs[4] == "test 4"
    assert splits.test.labels.tolist() == [0, 1, 2, 0, 1, 2]


def test_bad_text_files_name_the_problem(tmp_path):
    (tmp_path / "a.csv").write_text("sentence,label\nhello,1\n")
    with pytest.raises(BadInputError, match=r"no column\(s\) \['text'\].*sentence"):
        load_data_path(tmp_path / "a.csv")
    (tmp_path / "b.jsonl").write_text('{"text": "x", "label": 0}\n{"text": oops}\n')
    with pytest.raises(CorruptFileError, match="b.jsonl.*line 2"):
        load_data_path(tmp_path / "b.jsonl")
    (tmp_path / "c.csv").write_text("text,label\nhello,\n")
    with pytest.raises(BadInputError, match="row 1 has no 'label'"):
        load_data_path(tmp_path / "c.csv")
    (tmp_path / "d.csv").write_text("text,label\nonly one,0\nanother,1\n")
    with pytest.raises(NotEnoughExamplesError, match="too few"):
        load_data_path(tmp_path / "d.csv")


def test_an_npz_file_loads_and_a_corrupt_one_is_named(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (30, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "set.npz", x=x, y=np.arange(30) % 3, class_names=np.array(["a", "b", "c"]))
    splits = load_dataset(str(tmp_path / "set.npz"))
    assert splits.class_names == ("a", "b", "c") and splits.train.inputs.shape[1:] == (1, 8, 8)
    assert len(splits.train) == 24 and torch.equal(splits.test.class_counts(), torch.tensor([2, 2, 2]))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "set.npz").read_bytes()[:100])
    with pytest.raises(CorruptFileError, match="cut.npz"):
        load_data_path(tmp_path / "cut.npz")


def test_save_to_disk_folders_load_text_and_images(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["no", "yes"])})
    train = datasets.Dataset.from_dict({"text": [f"t{i}" for i in range(8)], "label": [i % 2 for i in range(8)]},
                                       features=features)
    test = datasets.Dataset.from_dict({"text": ["u0", "u1"], "label": [1, 0]}, features=features)
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "text"))
    splits = load_data_path(tmp_path / "text")
    assert splits.class_names == ("no", "yes") and splits.test.inputs == ["u0", "u1"]
    assert splits.test.labels.tolist() == [1, 0]
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (6, 7), dtype=np.uint8), "L") for _ in range(10)]
    image_features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    datasets.Dataset.from_dict({"image": images, "label": [i % 2 for i in range(10)]},
                               features=image_features).save_to_disk(str(tmp_path / "images"))
    splits = load_data_path(tmp_path / "images")
    assert splits.train.inputs.shape == (8, 1, 6, 7) and splits.class_names == ("a", "b")


def test_a_broken_save_to_disk_folder_is_a_corrupt_file_error(tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "dataset_dict.json").write_text('{"splits": ["train"]}')
    with pytest.raises(CorruptFileError, match="save_to_disk"):
        load_data_path(tmp_path / "hf")


def test_missing_paths_unknown_formats_and_unknown_names(tmp_path):
    with pytest.raises(DataNotFoundError, match="nowhere"):
        load_dataset(str(tmp_path / "nowhere"))
    (tmp_path / "table.xlsx").write_bytes(b"PK")
    with pytest.raises(BadInputError, match="unknown data format '.xlsx'"):
        load_dataset(str(tmp_path / "table.xlsx"))
    with pytest.raises(UnknownNameError, match="Or pass a path"):
        load_dataset("no_such_dataset_name")


def test_a_task_file_names_its_dataset_by_a_path_beside_it(tmp_path):
    image_folder(tmp_path / "tasks" / "photos")
    (tmp_path / "tasks" / "mine.yaml").write_text(
        "dataset: ./photos\nteacher: {model: small_cnn}\nstudent: {derive: {macs: 0.5}}\nshots: [2]\n")
    task = load_task_family(tmp_path / "tasks" / "mine.yaml")
    assert task.dataset == str(tmp_path / "tasks" / "photos")
    assert load_dataset(task.dataset).class_names == ("cat", "dog", "eel")
    (tmp_path / "tasks" / "named.yaml").write_text(
        "dataset: digits\nteacher: {model: small_cnn}\nstudent: {derive: {macs: 0.5}}\n")
    assert load_task_family(tmp_path / "tasks" / "named.yaml").dataset == "digits"


def test_unlabelled_inputs_from_a_loose_image_folder_or_a_text_file(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "loose").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)).save(tmp_path / "loose" / f"{i}.png")
    images = load_unlabelled_path(tmp_path / "loose")
    assert images.shape == (4, 3, 5, 5) and images.dtype == torch.float32 and float(images.max()) <= 1.0
    (tmp_path / "texts.txt").write_text("one\n\ntwo\nthree\n")
    assert load_unlabelled_path(tmp_path / "texts.txt") == ["one", "two", "three"]
    with pytest.raises(DataNotFoundError):
        load_unlabelled_path(tmp_path / "missing")
