"""meta_train: it learns (the policy moves), checkpoints atomically, resumes exactly, and
refuses what it cannot do with a clear message."""

from __future__ import annotations

import pytest
import torch

from fewshot_kd.errors import FewShotKDError
from fewshot_kd.meta import MetaPolicy, MetaTrainConfig, PolicyNet, meta_train
from fewshot_kd.meta.train import CHECKPOINT


def _same(a: PolicyNet, b: PolicyNet) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_after_a_stop_reaches_the_uninterrupted_result(tmp_path, tiny_config):
    config = tiny_config()
    straight = meta_train(config, tmp_path / "straight", progress=False)
    meta_train(config, tmp_path / "cut", progress=False, stop_after=1)  # "killed" after one meta-step
    resumed = meta_train(config, tmp_path / "cut", progress=False, resume=True)
    assert straight.finished and resumed.finished
    assert _same(straight.net, resumed.net)
    assert [h["meta_loss"] for h in straight.history] == [h["meta_loss"] for h in resumed.history]
    assert not _same(straight.net, PolicyNet(config.hidden))  # training moved the policy


def test_run_records_what_it_trained_on_and_reloads(tmp_path, tiny_config):
    policy = meta_train(tiny_config(), tmp_path, progress=False)
    (record,) = policy.trained_on
    assert record["family"] == "digits" and record["classes"] == list(range(10))
    assert record["episodes"]["indices_sha256"] != record["teacher"]["indices_sha256"]  # disjoint pools, recorded
    loaded = MetaPolicy.load(tmp_path)
    assert _same(loaded.net, policy.net)
    assert MetaTrainConfig.from_dict(loaded.config) == tiny_config()
    assert (tmp_path / "policy.safetensors").is_file() and (tmp_path / CHECKPOINT).is_file()


def test_existing_checkpoint_needs_resume_and_the_same_config(tmp_path, tiny_config):
    meta_train(tiny_config(episodes=2), tmp_path, progress=False)
    with pytest.raises(FewShotKDError, match="--resume"):
        meta_train(tiny_config(episodes=2), tmp_path, progress=False)
    with pytest.raises(FewShotKDError, match="another config"):
        meta_train(tiny_config(episodes=4), tmp_path, progress=False, resume=True)


def test_diverging_inner_loop_is_reported_not_trained_on(tmp_path, tiny_config):
    with pytest.raises(FewShotKDError, match="inner-lr"):
        meta_train(tiny_config(episodes=2, inner_lr=1e30), tmp_path, progress=False)


def test_bad_settings_are_clear_errors(tiny_config):
    for backend in ("jax", "higher"):  # the inner loop is adapt()'s Adam loop, run through torch.func
        with pytest.raises(FewShotKDError, match="backend"):
            tiny_config(backend=backend)
    with pytest.raises(FewShotKDError, match="macs_range"):
        tiny_config(macs_range=(0.8, 0.2))


def test_command_line_writes_a_policy_and_a_plot(tmp_path):
    from fewshot_kd.meta_train import main

    main(["--episodes", "2", "--meta-batch", "2", "--inner-steps", "1", "--ways", "3", "--shots", "5",
          "--macs-range", "0.3", "0.5", "--bits", "8,5", "--out", str(tmp_path), "--no-progress"])
    assert MetaPolicy.is_policy_file(tmp_path)
    config = MetaPolicy.load(tmp_path).config
    assert list(config["macs_range"]) == [0.3, 0.5] and list(config["bits"]) == [8, 5]
    assert (tmp_path / "meta_training.png").stat().st_size > 1000



def test_policy_json_records_the_torchrun_launcher():
    from fewshot_kd.meta_train import launcher

    assert launcher({}) == "python"
    assert launcher({"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}) == "torchrun --nproc_per_node=2"
    assert launcher({"WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4"}) == "torchrun --nproc_per_node=4 --nnodes=2"
