"""Faults in runs: SIGKILL ``python -m fewshot_kd.meta_train`` (mid checkpoint write, and at a
random moment) and ``python -m benchmarks.run`` (mid cell), resume, and get what an
uninterrupted run gets: the same policy, every cell exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fewshot_kd.files import load_tensors

REPO = Path(__file__).resolve().parents[1]
META_FLAGS = ["--episodes", "8", "--meta-batch", "2", "--inner-steps", "1", "--checkpoint-every", "1",
              "--ways", "3", "--shots", "5", "--no-progress"]

# The child's torch.save writes a checkpoint's temp file in two halves with a pause between
# (a slow disk), so that a kill lands inside the write every time. Nothing else is changed.
SLOW_CHECKPOINT_WRITE = """
import io, runpy, sys, time, torch
real_save = torch.save
def slow_save(obj, f, *args, **kwargs):
    if ".checkpoint.pt." not in str(f):
        return real_save(obj, f, *args, **kwargs)
    buffer = io.BytesIO()
    real_save(obj, buffer, *args, **kwargs)
    data = buffer.getvalue()
    with open(f, "wb") as out:
        out.write(data[: len(data) // 2]); out.flush(); time.sleep(1.0); out.write(data[len(data) // 2 :])
torch.save = slow_save
sys.argv = ["fewshot_kd.meta_train", *sys.argv[1:]]
runpy.run_module("fewshot_kd.meta_train", run_name="__main__")
"""


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def _run(args: list[str], timeout: float = 300) -> None:
    done = subprocess.run([sys.executable, *args], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]


def _kill_when(args: list[str], ready, timeout: float = 300) -> bool:
    """Start ``python args``, SIGKILL it as soon as ``ready()`` holds; False if it finished first."""
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if ready():
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.005)
        assert proc.returncode == 0, proc.stderr.read().decode()[-3000:]
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def _half_written_checkpoint(out: Path) -> bool:
    """A checkpoint exists and the next one's temp file is being written."""
    return (out / "checkpoint.pt").is_file() and any(p.stat().st_size > 0 for p in out.glob(".checkpoint.pt.*.tmp"))


@pytest.mark.slow
def test_meta_train_killed_mid_checkpoint_and_at_random_resumes_to_the_same_policy(tmp_path):
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    _run(["-m", "fewshot_kd.meta_train", *META_FLAGS, "--out", str(straight)])

    # 1. killed while the second checkpoint's temp file is half written
    assert _kill_when(["-c", SLOW_CHECKPOINT_WRITE, *META_FLAGS, "--out", str(cut)], lambda: _half_written_checkpoint(cut))
    assert list(cut.glob(".checkpoint.pt.*.tmp")) and not (cut / "policy.json").exists()
    # 2. resumed, then killed at a random moment after its next checkpoint
    first = (cut / "checkpoint.pt").stat().st_mtime_ns
    delay = random.Random(15).uniform(0.0, 0.3)
    moved: list[float] = []

    def later() -> bool:
        if not moved and (cut / "checkpoint.pt").stat().st_mtime_ns != first:
            moved.append(time.monotonic())
        return bool(moved) and time.monotonic() - moved[0] >= delay

    _kill_when(["-m", "fewshot_kd.meta_train", *META_FLAGS, "--out", str(cut), "--resume"], later)
    # 3. resumed to the end
    _run(["-m", "fewshot_kd.meta_train", *META_FLAGS, "--out", str(cut), "--resume"])

    a, b = load_tensors(straight / "policy.safetensors"), load_tensors(cut / "policy.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    history = [json.loads((d / "policy.json").read_text())["history"] for d in (straight, cut)]
    assert [h["meta_loss"] for h in history[0]] == [h["meta_loss"] for h in history[1]]
    assert [h["step"] for h in history[1]] == [1, 2, 3, 4]  # no step lost or repeated


TINY_SUITE = """
description: two methods, two seeds, for the kill test
tasks: [digits]
methods: [teacher, adapt]
shots: [2]
seeds: [0, 1]
method_options:
  adapt: {steps: 40, views_per_shot: 2}
latency_repeats: 2
eval_limit: {digits: 100}
"""


@pytest.mark.slow
def test_benchmark_harness_killed_mid_cell_resumes_without_losing_or_repeating_a_cell(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY_SUITE)
    out = tmp_path / "out"
    args = ["-m", "benchmarks.run", "--suite", str(tmp_path / "tiny.yaml"), "--out", str(out)]
    cells = out / "cells.jsonl"

    def mid_second_cell() -> bool:  # the teacher cell is stored, the adapt cell is running
        return cells.is_file() and cells.read_text().count("\n") == 1 and (out / "work" / "digits" / "adapt-k2-s0").exists()

    assert _kill_when(args, mid_second_cell)
    assert [json.loads(line)["method"] for line in cells.read_text().splitlines()] == ["teacher"]
    with cells.open("a") as f:
        f.write('{"key": "digits|adapt|k=2|seed=0", "task": "dig')  # a line cut by a kill during its write
    _run(args)

    lines = cells.read_text().splitlines()
    keys = [json.loads(line)["key"] for line in lines]  # every line parses
    expected = {f"digits|{m}|k=2|seed={s}" for m in ("teacher", "adapt") for s in (0, 1)}
    assert sorted(keys) == sorted(expected)  # each cell exactly once
    result = json.loads((out / "results.json").read_text())
    assert sorted(c["key"] for c in result["cells"]) == sorted(expected)
