"""The held-out proof's plan (budgets, methods, options) and its verdicts, on made-up cells."""

from __future__ import annotations

import json

import pytest

from benchmarks.meta_heldout.plan import BUDGETS, FEW_STEPS, ROLES, heldout_suite, method_name, role_of
from benchmarks.meta_heldout.summary import family_summary, render, verdict
from fewshot_kd.adapt.policy import HAND_SET


def test_every_role_and_budget_names_a_method_the_harness_accepts(tmp_path):
    from benchmarks.methods.base import method_options

    from fewshot_kd.files import write_json

    HAND_SET.__class__(**{**HAND_SET.to_dict(), "temperature": 2.5, "steps": 200}).save(tmp_path / "tuned_policy.json")
    write_json(tmp_path / "tune.json", {"files": {"image": "tuned_policy.json"},
                                        "tuned_fields": ["temperature", "steps", "lr"]})
    suite = heldout_suite("digits", tmp_path / "meta", tmp_path, budgets=("a", "b"), shots=(5,), seeds=(0,))
    assert len(suite.methods) == len(ROLES) * len(BUDGETS)
    for method in suite.methods:
        role, budget = role_of(method)
        assert method == method_name(role, budget)
        options = suite.method_options[method]
        assert options["target"] == BUDGETS[budget]
        method_options(method, options)  # parses: no unknown option
    assert suite.method_options["adapt@tuned_b"]["temperature"] == 2.5
    assert suite.method_options["adapt@tuned_b"]["steps"] == 200
    assert suite.method_options[f"adapt_meta@a_{FEW_STEPS}"]["steps"] == FEW_STEPS
    assert "steps" not in suite.method_options["adapt_meta@a"]
    assert "flip" not in suite.method_options["adapt@tuned_a"]  # the family keeps its own mirroring
    assert not any("mixed_bits" in o for o in suite.method_options.values())  # images keep uniform widths


def test_text_budget_b_lets_every_method_lower_layers_to_4_bits(tmp_path):
    from benchmarks.methods.base import method_options

    suite = heldout_suite("cr", tmp_path / "meta", None, budgets=("a", "b"), shots=(5,), seeds=(0,))
    for method, options in suite.method_options.items():
        _, budget = role_of(method)
        assert options.get("mixed_bits") == ((4, 5) if budget == "b" else None), method
        parsed = method_options(method, options)
        if budget == "b":
            assert tuple(parsed.hand_set_policy("text", "none").mixed_bits) == (4, 5)


def test_verdict_needs_more_than_one_standard_deviation():
    assert verdict([0.80, 0.82, 0.84], [0.70, 0.71, 0.72]) == "win"
    assert verdict([0.70, 0.71, 0.72], [0.80, 0.82, 0.84]) == "loss"
    assert verdict([0.80, 0.82, 0.84], [0.79, 0.81, 0.83]) == "tie"
    assert verdict([0.8], [0.7]) == "–"


def _cell(method, k, seed, acc):
    return {"task": "fam", "method": method, "k": k, "seed": seed, "eval": {"test": {"accuracy": acc}}}


def test_summary_averages_seeds_over_k_and_renders(tmp_path):
    family = tmp_path / "fam"
    family.mkdir()
    cells = []
    for seed in (0, 1, 2):
        for k in (5, 10):
            cells += [_cell("adapt@b", k, seed, 0.70 + 0.01 * seed), _cell("adapt@tuned_b", k, seed, 0.72 + 0.01 * seed),
                      _cell("adapt_meta@b", k, seed, 0.80 + 0.01 * seed), _cell(f"adapt_meta@b_{FEW_STEPS}", k, seed, 0.71),
                      _cell("adapt_random_search@b", k, seed, 0.6)]
    (family / "cells.jsonl").write_text("\n".join(json.dumps(c) for c in cells))
    summary = family_summary(family)
    b = summary["budgets"]["b"]
    assert b["meta_vs_tuned"] == "win" and b["meta_100_reaches_hand_set_300"] is True
    assert b["rows"]["adapt_meta"]["over_k"] == pytest.approx([0.80, 0.81, 0.82])
    text = render(tmp_path)
    assert "| meta-learned | 81.0 ± 1.0 | 81.0 ± 1.0 | 81.0 ± 1.0 |" in text
    assert "at budget (b): 1 of 1 families" in text


def test_harness_only_refuses_a_folder_without_finished_policies(tmp_path):
    from benchmarks.meta_heldout.__main__ import main

    with pytest.raises(SystemExit, match="--harness-only needs a finished meta policy"):
        main(["--held-out", "digits", "--train", "fashion-mnist", "--harness-only", "--out", str(tmp_path)])
    assert not (tmp_path / "digits" / "cells.jsonl").exists()


def test_a_budget_the_hand_set_recipe_cannot_meet_is_reported_not_scored(tmp_path):
    family = tmp_path / "fam"
    (family / "policies" / "tuned").mkdir(parents=True)
    cells = [_cell(m, 5, seed, 0.7) for seed in (0, 1) for m in
             ("adapt@a", "adapt@tuned_a", "adapt_meta@a", f"adapt_meta@a_{FEW_STEPS}", "adapt_random_search@a")]
    (family / "cells.jsonl").write_text("\n".join(json.dumps(c) for c in cells))
    episodes = [{"index": 0, "family": "sst2", "target": {"layers": "last 3", **BUDGETS["a"]}},
                {"index": 1, "family": "sst2", "target": {"layers": "last 3", **BUDGETS["b"]}}]
    tune = {"episodes": episodes, "unscored_episodes": [1],
            "hand_set_errors": ["episode 1: could not fit the derived student into 7 bytes (why)"]}
    (family / "policies" / "tuned" / "tune.json").write_text(json.dumps(tune))
    summary = family_summary(family)
    assert set(summary["budgets"]) == {"a"} and set(summary["unscored"]) == {"b"}
    text = render(tmp_path)
    assert "## fam, budget (b): not scored" in text
    assert "recipe-search episodes of sst2 (could not fit the derived student into 7 bytes)" in text
    assert "fam not scored at (b)" in text


def test_the_summary_names_the_policy_fields_a_budget_set_for_the_family_s_modality(tmp_path):
    for name in ("cr", "omniglot"):
        family = tmp_path / name
        family.mkdir()
        cells = [dict(_cell(m, 5, seed, 0.7), task=name) for seed in (0, 1) for m in
                 ("adapt@b", "adapt@tuned_b", "adapt_meta@b", f"adapt_meta@b_{FEW_STEPS}", "adapt_random_search@b")]
        (family / "cells.jsonl").write_text("\n".join(json.dumps(c) for c in cells))
        (family / "plan.json").write_text(json.dumps({"train": ["digits"], "validate": [], "meta_seconds": 60,
                                                      "budget_policies": {"b": {"text": {"mixed_bits": [4, 5]}}}}))
    text = render(tmp_path)
    cr, omniglot = text.split("**omniglot**")
    assert "ran with `mixed_bits=(4, 5)`" in cr
    assert "mixed_bits" not in omniglot  # an image family keeps uniform widths


def test_the_summary_says_which_encoder_layers_each_method_s_text_students_kept(tmp_path):
    family = tmp_path / "cr"
    family.mkdir()
    kept = {"adapt@a": None, "adapt@tuned_a": [1, 3, 5], "adapt_meta@a": [2, 4, 5]}
    cells = [dict(_cell(m, 5, seed, 0.7), task="cr", notes={"policy": {"text_layers": kept.get(m, [3, 4, 5])}})
             for seed in (0, 1) for m in ("adapt@a", "adapt@tuned_a", "adapt_meta@a", f"adapt_meta@a_{FEW_STEPS}")]
    cells.append(dict(_cell("adapt_random_search@a", 5, 0, 0.7), task="cr", notes={"policy": {}}))  # an older cell
    (family / "cells.jsonl").write_text("\n".join(json.dumps(c) for c in cells))
    assert family_summary(family)["budgets"]["a"]["kept_layers"]["adapt_meta"] == ["2, 4, 5"]
    text = render(tmp_path)
    assert ("Encoder layers the students kept: hand-set (the last ones); tuned fixed (1, 3, 5); meta-learned (2, 4, 5); "
            "meta-learned, 100 steps (3, 4, 5).") in text


def test_an_image_family_lists_no_encoder_layers_even_when_its_cells_record_the_policy_field(tmp_path):
    family = tmp_path / "omniglot"
    family.mkdir()
    cells = [dict(_cell(m, 5, seed, 0.7), task="omniglot", notes={"policy": {"text_layers": None}})
             for seed in (0, 1) for m in ("adapt@a", "adapt@tuned_a", "adapt_meta@a", f"adapt_meta@a_{FEW_STEPS}")]
    (family / "cells.jsonl").write_text("\n".join(json.dumps(c) for c in cells))
    assert family_summary(family)["budgets"]["a"]["kept_layers"] == {}
    assert "Encoder layers" not in render(tmp_path)
