"""Meta-validation: held-out families are scored while meta-training runs, the best-scoring
policy is shipped, patience stops a run early, and all of it is recorded and resumes."""

from __future__ import annotations

import pytest
import torch

from fewshot_kd.errors import FewShotKDError
from fewshot_kd.meta import MetaPolicy, meta_train


@pytest.fixture
def held_out_digits(tmp_path):
    """A second family file over the offline digits (another name, so it can be held out)."""
    from fewshot_kd.task_family import TASK_FAMILIES

    path = tmp_path / "digits-heldout.yaml"
    path.write_text(TASK_FAMILIES.get("digits").read_text())
    return str(path)


def test_validation_is_scored_recorded_and_the_best_policy_shipped(tmp_path, tiny_config, held_out_digits):
    config = tiny_config(episodes=6, validate=(held_out_digits,), validate_every=1, validate_episodes=2, outer_lr=0.05)
    policy = meta_train(config, tmp_path, progress=False)
    record = policy.validation
    assert [h["step"] for h in record["history"]] == [1, 2, 3]
    losses = [h["meta_loss"] for h in record["history"]]
    assert record["best_step"] == 1 + losses.index(min(losses)) and record["best_meta_loss"] == min(losses)
    assert all("val_query_acc" in h for h in policy.history)
    loaded = MetaPolicy.load(tmp_path)
    assert loaded.validation == record
    # the shipped network is the best-validated one: scoring it again gives the best loss
    from fewshot_kd.meta.episodes import load_family
    from fewshot_kd.meta.validation import score_policy, validation_episodes

    episodes = validation_episodes([load_family(held_out_digits, config.ways)], 2, config.episode_spec, config.seed)
    again = score_policy(loaded.net, episodes, config.inner, config.backend)
    assert again["meta_loss"] == pytest.approx(record["best_meta_loss"], rel=1e-4)


def test_patience_stops_early_and_a_resumed_run_stays_stopped(tmp_path, tiny_config, held_out_digits, monkeypatch):
    import fewshot_kd.meta.validation as validation

    rising = iter([1.0, 2.0, 3.0, 4.0])  # every scoring after the first is worse
    real = validation.score_policy
    monkeypatch.setattr("fewshot_kd.meta.train.score_policy",
                        lambda *a, **k: {**real(*a, **k), "meta_loss": next(rising)})
    config = tiny_config(episodes=8, validate=(held_out_digits,), validate_every=1, validate_episodes=1, patience=2)
    policy = meta_train(config, tmp_path, progress=False)
    assert policy.finished and policy.validation["stopped_early"]
    assert len(policy.history) == 3 and policy.validation["best_step"] == 1
    again = meta_train(config, tmp_path, progress=False, resume=True)
    assert len(again.history) == 3 and again.validation["stopped_early"]
    for key, value in policy.net.state_dict().items():
        assert torch.equal(value, again.net.state_dict()[key])


def test_a_family_cannot_be_trained_and_validated_on(tiny_config):
    with pytest.raises(FewShotKDError, match="held out"):
        tiny_config(validate=("digits",))
    with pytest.raises(FewShotKDError, match="patience"):
        tiny_config(patience=-1)
