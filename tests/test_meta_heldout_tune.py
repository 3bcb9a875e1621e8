"""benchmarks.meta_heldout.tune: the tuned fixed recipe's search, on the embedded digits family."""

from __future__ import annotations

import json

import pytest
import torch

from fewshot_kd.adapt.policy import FLAT_FIELDS, HAND_SET, Policy
from fewshot_kd.errors import FewShotKDError
from fewshot_kd.meta.episodes import load_family

from benchmarks.meta_heldout.tune import (draw_episodes, hand_set_params, policy_for, rescore_, search_space, tune_fixed_policy,
                                         unscored_episodes)

FAST = dict(seconds=1e9, max_trials=3, shots=(5,), query_per_class=5, episodes=2, steps_scale=0.02,
            target_options=[{"macs": 0.5, "bits": 8}], progress=False)


@pytest.fixture(scope="module")
def digits():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny 8x8 convs: one thread is ~50x faster than two on a loaded 2-core machine
    try:
        yield load_family("digits", ways=5)
    finally:
        torch.set_num_threads(threads)


def _sequence(result) -> list:
    return [json.dumps(t["params"], sort_keys=True) for t in result.trials]


def test_search_space_names_policy_fields_and_holds_the_hand_set_policy():
    fields = set(FLAT_FIELDS)
    for image, text in ((True, False), (False, True), (True, True)):
        space = search_space(image, text)
        assert {d.name for d in space} - {"lr_scale"} <= fields
        start = hand_set_params(space)
        for d in space:
            value = start[d.name]
            assert value in d.choices if d.kind == "choice" else d.low <= value <= d.high
    assert policy_for(hand_set_params(search_space(True, False)), False, "crop_flip", name=HAND_SET.name) == HAND_SET
    assert policy_for({"lr_scale": 0.5}, True).lr == pytest.approx(3.5e-4 * 0.5)
    assert policy_for({}, False, "crop").flip is False
    assert policy_for({"text_layers": "1,3,5"}, True).text_layers == (1, 3, 5)
    assert policy_for({"text_layers": "1,3,5"}, False).text_layers is None  # images have no layers to choose
    assert len(search_space(False, True)[-1].choices) == 20  # every 3 of 6 layers, the last 3 as the hand-set None


def test_tune_runs_hand_set_first_keeps_the_best_and_writes_its_files(digits, tmp_path):
    out = tmp_path / "a"
    result = tune_fixed_policy([digits], seed=3, out_dir=out, **FAST)
    assert len(result.trials) == 3
    first = result.trials[0]
    assert first["hand_set"] and first["params"] == hand_set_params(search_space(True, False))
    assert all(t["score"] is not None and 0.0 <= t["score"] <= 1.0 for t in result.trials)
    assert all(len(t["accuracies"]) == 2 for t in result.trials)
    assert result.best["score"] == max(t["score"] for t in result.trials)
    assert result.best["score"] >= first["score"]
    # the files: every trial, the summary, and the winner as a loadable Policy
    rows = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert [r["trial"] for r in rows] == [0, 1, 2]
    tune = json.loads((out / "tune.json").read_text())
    assert tune["best_trial"]["trial"] == result.best["trial"] and tune["trials"] == 3 and tune["finished"]
    assert tune["sampler"] == result.sampler and len(tune["episodes"]) == 2
    assert tune["seconds_used"] > 0 and tune["seconds_budget"] == 1e9
    loaded = Policy.load(out / "tuned_policy.json")
    assert loaded == result.policy
    assert loaded.steps == result.best["params"]["steps"]  # the searched value, not the scaled-down test one
    assert loaded.lr == pytest.approx(HAND_SET.lr * result.best["params"]["lr_scale"])

    # same seed, same trial sequence (fresh folder, so nothing is resumed)
    again = tune_fixed_policy([digits], seed=3, out_dir=tmp_path / "b", **FAST)
    assert _sequence(again) == _sequence(result)
    assert [t["score"] for t in again.trials] == pytest.approx([t["score"] for t in result.trials])

    # resume: the 3 trials are reloaded and one more is run
    more = tune_fixed_policy([digits], seed=3, out_dir=out, **{**FAST, "max_trials": 4})
    assert _sequence(more)[:3] == _sequence(result) and len(more.trials) == 4


def test_random_search_fallback_and_time_budget(digits, tmp_path):
    result = tune_fixed_policy([digits], seed=3, out_dir=tmp_path, use_optuna=False,
                               **{**FAST, "seconds": 0.0, "max_trials": None})
    assert result.sampler.startswith("random") and len(result.trials) == 1  # the hand-set trial always runs
    assert result.trials[0]["hand_set"] and result.best["trial"] == 0


def test_episodes_the_hand_set_cannot_run_are_scored_by_no_trial():
    trials = [{"accuracies": [0.9, None, 0.7], "errors": ["episode 1: could not fit the derived student"]},
              {"accuracies": [0.8, None, 0.9], "errors": ["episode 1: could not fit the derived student"]},
              {"accuracies": [None, 0.5, 0.9], "errors": ["episode 0: diverged"]},
              {"accuracies": [0.95, 0.99, 0.9], "errors": []}]
    assert unscored_episodes(trials) == [1]
    scores = [t["score"] for t in rescore_(trials)]
    assert scores[:2] == pytest.approx([0.8, 0.85]) and scores[3] == pytest.approx(0.925)
    assert scores[2] is None  # failed an episode the hand-set ran
    assert rescore_([{"accuracies": [None], "errors": ["episode 0: x"]}])[0]["score"] is None


def test_a_budget_s_policy_fields_ride_on_its_episodes_for_the_family_s_modality(digits):
    options = [{"macs": 0.5, "bits": 8}, {"macs": 0.35, "bits": 5}]
    eps = draw_episodes([digits], (5,), 5, options, 0, 4,
                        option_policies=[{}, {"image": {"mixed_bits": (4, 5)}, "text": {"steps": 1}}])
    for ep in eps:
        assert ep.policy_fields == ({"mixed_bits": (4, 5)} if ep.target["bits"] == 5 else {})
        assert ("policy" in ep.record()) == (ep.target["bits"] == 5)
    same = draw_episodes([digits], (5,), 5, options, 0, 4)  # without them: the same episodes, no fields
    assert [e.record()["seed"] for e in same] == [e.record()["seed"] for e in eps]
    assert all(e.policy_fields == {} and "policy" not in e.record() for e in same)
    with pytest.raises(FewShotKDError, match="option_policies has 1 entries for 2"):
        draw_episodes([digits], (5,), 5, options, 0, 4, option_policies=[{}])
