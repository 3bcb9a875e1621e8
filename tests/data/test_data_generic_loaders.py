"""``load_image_npz`` / ``load_text_jsonl`` on small synthetic files, and the JPEG decode cache."""

from __future__ import annotations

import gzip
import io
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from fewshot_kd.data import _jpeg_cache
from fewshot_kd.data.local_files import load_image_npz, load_text_jsonl
from fewshot_kd.errors import DataNotFoundError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("FEWSHOT_KD_CACHE", str(path))
    return path


def _jpeg_npz(path, count=6, seed=0):
    rng = np.random.default_rng(seed)
    blobs = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buffer, format="JPEG", quality=90)
        blobs.append(np.frombuffer(buffer.getvalue(), dtype=np.uint8))
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    np.savez(path, jpeg=np.concatenate(blobs), offsets=offsets, y=np.arange(count) % 2,
             class_names=np.array(["even", "odd"]))
    return blobs


def test_pixel_npz_channels_last_becomes_nchw(tmp_path):
    x = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    np.savez(tmp_path / "rgb.npz", x=x, y=np.array([1, 0]), class_names=np.array(["a", "b"]))
    data = load_image_npz("rgb.npz", data_root=tmp_path)
    assert data.inputs.dtype == torch.uint8 and data.inputs.shape == (2, 3, 4, 5)
    assert int(data.inputs[1, 2, 3, 4]) == int(x[1, 3, 4, 2])
    assert data.class_names == ("a", "b") and data.labels.tolist() == [1, 0]
    assert data.input_batch([0]).dtype == torch.float32
    assert float(data.input_batch([1]).max()) == pytest.approx(119 / 255)


def test_pixel_npz_grayscale_and_channels_first(tmp_path):
    labels, names = np.zeros(3, np.int64), np.array(["z"])
    np.savez(tmp_path / "gray.npz", x=np.zeros((3, 7, 7), np.uint8), y=labels, class_names=names)
    assert load_image_npz(tmp_path / "gray.npz").inputs.shape == (3, 1, 7, 7)  # absolute path, no data root
    np.savez(tmp_path / "chw.npz", x=np.zeros((3, 3, 7, 7), np.float64), y=labels, class_names=names)
    data = load_image_npz(tmp_path / "chw.npz")
    assert data.inputs.shape == (3, 3, 7, 7) and data.inputs.dtype == torch.float32


def test_jpeg_npz_is_decoded_like_pillow(tmp_path, cache):
    blobs = _jpeg_npz(tmp_path / "j.npz")
    data = load_image_npz(tmp_path / "j.npz", name="tiny")
    expected = np.stack([np.asarray(Image.open(io.BytesIO(b.tobytes())).convert("RGB")) for b in blobs])
    assert data.inputs.shape == (6, 3, 8, 8) and data.inputs.dtype == torch.uint8
    assert np.array_equal(data.inputs.numpy().transpose(0, 2, 3, 1), expected)
    assert data.labels.tolist() == [0, 1, 0, 1, 0, 1] and data.name == "tiny"


def test_jpeg_cache_is_written_once_then_reused(tmp_path, cache, monkeypatch):
    _jpeg_npz(tmp_path / "j.npz")
    calls = []
    real_decode = _jpeg_cache.decode_jpeg_bytes
    monkeypatch.setattr(_jpeg_cache, "decode_jpeg_bytes", lambda *a: calls.append(1) or real_decode(*a))
    first = load_image_npz(tmp_path / "j.npz")
    cached = list((cache / "decoded").glob("j-*.npy"))
    assert len(calls) == 1 and len(cached) == 1  # the cache lives under $FEWSHOT_KD_CACHE
    second = load_image_npz(tmp_path / "j.npz")
    assert len(calls) == 1  # not decoded again
    assert torch.equal(first.inputs, second.inputs)

    stat = os.stat(tmp_path / "j.npz")  # a changed source file is decoded afresh
    os.utime(tmp_path / "j.npz", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    load_image_npz(tmp_path / "j.npz")
    assert len(calls) == 2


def test_missing_npz_names_the_path(tmp_path):
    with pytest.raises(DataNotFoundError, match="nothing.npz"):
        load_image_npz("sub/nothing.npz", data_root=tmp_path)
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "abs.npz")):
        load_image_npz(tmp_path / "abs.npz")


def _write_jsonl(path, rows):
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def test_text_jsonl_train_and_test(tmp_path, cache):
    folder = tmp_path / "text" / "toy"
    folder.mkdir(parents=True)
    _write_jsonl(folder / "train.jsonl.gz", [{"text": f"t{i}", "label": i % 3} for i in range(9)])
    _write_jsonl(folder / "test.jsonl.gz", [{"text": "u0", "label": 2}, {"text": "u1", "label": 0}])
    (folder / "label_names.json").write_text(json.dumps(["x", "y", "z"]))
    splits = load_text_jsonl("text/toy/train.jsonl.gz", "text/toy/test.jsonl.gz", data_root=tmp_path, name="toy")
    assert splits.class_names == ("x", "y", "z")
    assert splits.train.inputs == [f"t{i}" for i in range(9)]
    assert splits.train.labels.tolist() == [0, 1, 2] * 3 and splits.train.labels.dtype == torch.int64
    assert splits.test.inputs == ["u0", "u1"] and splits.test.labels.tolist() == [2, 0]
    assert any(cache.joinpath("hf_datasets").iterdir())  # HF's cache stays inside ours


def test_text_jsonl_without_test_is_split_stratified(tmp_path, cache):
    _write_jsonl(tmp_path / "all.jsonl.gz", [{"sentence": f"s{i}", "y": int(i >= 10)} for i in range(20)])
    splits = load_text_jsonl(tmp_path / "all.jsonl.gz", label_names=["neg", "pos"], text_field="sentence",
                             label_field="y", test_fraction=0.3)
    assert splits.test.class_counts().tolist() == [3, 3]  # round(10 * 0.3) of each class
    assert sorted(splits.train.inputs + splits.test.inputs) == sorted(f"s{i}" for i in range(20))
    assert all(int(t[1:]) >= 10 for t, y in zip(splits.test.inputs, splits.test.labels) if y == 1)


def test_text_jsonl_missing_label_names(tmp_path, cache):
    _write_jsonl(tmp_path / "all.jsonl.gz", [{"text": "a", "label": 0}])
    with pytest.raises(DataNotFoundError, match="label_names.json"):
        load_text_jsonl(tmp_path / "all.jsonl.gz")
