"""benchmarks.gpu_check: refuses on a machine without CUDA, and (--allow-cpu, tiny settings)
runs every timed part and writes one JSON naming the device."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import gpu_check

TINY = ["--skip-pytest", "--skip-adapt", "--repeats", "1", "--episodes", "2", "--ways", "3", "--shots", "5",
        "--views", "2", "--inner-steps", "1", "--orders", "first"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_refuses_without_a_gpu(tmp_path, capsys):
    assert gpu_check.main(TINY + ["--out", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert gpu_check.main(TINY + ["--allow-cpu"]) == 2  # never into benchmarks/results/gpu/ from a CPU
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_cpu_smoke_run_writes_every_part(tmp_path):
    assert gpu_check.main(TINY + ["--allow-cpu", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("*.json")
    result = json.loads(path.read_text())
    assert result["device"] and result["seconds"] > 0
    rows = result["meta_step"]
    assert {(r["order"], r["bf16"]) for r in rows} == {("first", False), ("first", True)}
    assert all(r["median_ms"] > 0 for r in rows)
    rows = [(r["precision"], r["order"], r["vmap"]) for r in result["meta_training"]]
    assert rows == [("fp32", "truncated", False), ("fp32", "first", False), ("bf16", "truncated", False),
                    ("bf16", "first", False), ("fp32", "first", True)]
    assert all(r["episodes_per_second"] > 0 for r in result["meta_training"])


def test_a_failing_part_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("Expected all tensors to be on the same device")

    monkeypatch.setattr(gpu_check, "episodes_per_second", broken)
    assert gpu_check.main(TINY + ["--allow-cpu", "--out", str(tmp_path)]) == 1
    (path,) = tmp_path.glob("*.json")
    result = json.loads(path.read_text())
    assert result["meta_training"]["error"] == "RuntimeError: Expected all tensors to be on the same device"
    assert result["meta_step"] and "error" not in result["meta_step"][0]
