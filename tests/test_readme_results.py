"""README numbers come from the committed results: rendering changes nothing, dirty results are refused."""

import json

import pytest

from benchmarks.harness.records import dirty_reasons, migrate
from benchmarks.readme.__main__ import rendered
from benchmarks.readme.markers import render
from benchmarks.readme.source import RESULTS_DIR, DirtyResults, legacy_suites, load
from fewshot_kd.errors import FewShotKDError


def test_readme_agrees_with_the_results():
    current, new = rendered()
    assert current == new, "README.md and benchmarks/results disagree: run `python -m benchmarks.readme`"


def test_check_fails_on_a_changed_number(tmp_path, monkeypatch, capsys):
    import benchmarks.readme.__main__ as cli

    readme = tmp_path / "README.md"
    readme.write_text(cli.README.read_text().replace("| adapt | 10 | 85.8", "| adapt | 10 | 95.8", 1))
    monkeypatch.setattr(cli, "README", readme)
    assert cli.main(["--check"]) == 1 and "95.8" in capsys.readouterr().out
    assert cli.main([]) == 0 and cli.main(["--check"]) == 0 and "95.8" not in readme.read_text()


def test_legacy_list_holds_only_dirty_suites():
    for name in legacy_suites():
        data = migrate(json.loads((RESULTS_DIR / name / "results.json").read_text()))
        assert dirty_reasons(data), f"{name} is clean: take it off LEGACY_DIRTY.txt"


def _results(tmp_path, dirty: bool, legacy: str = ""):
    suite = tmp_path / "s"
    suite.mkdir(parents=True)
    cell = {"key": "a", "task": "t", "method": "m", "k": 5, "seed": 0, "commit": "c", "git_dirty": dirty,
            "eval": {"test": {"accuracy": 0.5, "macro_precision": 0.5, "macro_recall": 0.5, "macro_f1": 0.5}}}
    data = {"suite": "s", "invocations": [{"command": "x", "commit": "c", "dirty": dirty}], "cells": [cell]}
    (suite / "results.json").write_text(json.dumps(data))
    (tmp_path / "LEGACY_DIRTY.txt").write_text(legacy)
    return tmp_path


def test_dirty_results_are_refused_unless_listed_as_legacy(tmp_path):
    with pytest.raises(DirtyResults, match="uncommitted tree"):
        load("s", _results(tmp_path / "a", dirty=True))
    legacy = load("s", _results(tmp_path / "b", dirty=True, legacy="# why\ns: made before run records\n"))
    assert "uncommitted tree" in legacy.note() and "--fresh" in legacy.note()
    clean = load("s", _results(tmp_path / "c", dirty=False))
    assert clean.note() == "" and clean.acc("m", 5, "test") == (50.0, 0.0)


def test_markers_are_rewritten_and_must_match_the_renderers():
    text = "a\n<!-- results:x -->\nold\n<!-- /results:x -->\nb\n"
    assert render(text, {"x": lambda: "new"}) == "a\n<!-- results:x -->\nnew\n<!-- /results:x -->\nb\n"
    with pytest.raises(FewShotKDError, match="missing"):
        render(text, {"x": lambda: "new", "y": lambda: ""})
    with pytest.raises(FewShotKDError, match="unknown"):
        render(text, {})


def test_the_qa_teacher_note_reads_the_recipe_the_run_recorded():
    from benchmarks.readme.beyond import _qa_teacher_note

    recipe = {"train": {"max_questions": 4911, "epochs": 2}}
    assert "4,911 questions of the teacher articles (2 epochs)." in _qa_teacher_note({"f1": 67.8, "teacher": {"recipe": recipe}})
    assert "weak" in _qa_teacher_note({"f1": 18.7, "teacher": {"recipe": recipe}})
    with pytest.raises(FewShotKDError, match="name no teacher recipe"):
        _qa_teacher_note({"f1": 67.8})
