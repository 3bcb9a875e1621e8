"""``torchrun --nproc_per_node=2 -m fewshot_kd.meta_train`` (gloo): the command line,
``init_from_env`` and the all-reduce give the single-process policy after two meta-steps."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from fewshot_kd.meta import MetaPolicy, MetaTrainConfig, PolicyNet, meta_train

FLAGS = ["--episodes", "4", "--meta-batch", "2", "--inner-steps", "2", "--ways", "3", "--shots", "5,10",
         "--query-per-class", "5", "--views", "2", "--no-progress"]
CONFIG = MetaTrainConfig(episodes=4, meta_batch=2, inner_steps=2, ways=3, shots=(5, 10), query_per_class=5, views=2)
# The ranks sum two one-episode gradients that one process accumulates in turn: float rounding
# only, which two Adam steps (lr 3e-3) carry into the weights far below this.
ATOL = 1e-5


def _single_process(out) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank (torchrun sets OMP_NUM_THREADS=1)
    try:
        return meta_train(CONFIG, out, progress=False).net.state_dict()
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_torchrun_two_ranks_give_the_single_process_policy(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "fewshot_kd.meta_train", *FLAGS, "--out", str(tmp_path / "ranks")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    ranked = MetaPolicy.load(tmp_path / "ranks")
    assert MetaTrainConfig.from_dict(ranked.config) == CONFIG
    assert len(ranked.history) == 2

    single = _single_process(tmp_path / "single")
    torch.manual_seed(CONFIG.seed)  # as meta_train
    start = PolicyNet(CONFIG.hidden).state_dict()
    trained = ranked.net.state_dict()
    assert any(not torch.equal(single[k], start[k]) for k in single)  # the two meta-steps moved the policy
    for key, value in single.items():
        torch.testing.assert_close(trained[key], value, rtol=0, atol=ATOL, msg=key)
