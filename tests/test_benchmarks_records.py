"""Run records: tree state at start, migration of old results, what counts as clean."""

from benchmarks.harness.records import LEGACY_NOTE, cell_stamp, dirty_reasons, migrate, start_invocation, tree_state

OLD = {"suite": "s", "command": "python -m benchmarks.run --suite s", "config": {"methods": ["adapt"]},
       "environment": {"git_commit": "abc", "git_dirty": True, "cpu_model": "cpu"}, "torch": "2.0",
       "wall_seconds_this_invocation": 3.0, "summary": [], "cells": [{"key": "a", "commit": None}]}


def test_tree_state_names_a_commit_and_the_dirty_paths():
    state = tree_state()
    assert len(state["commit"]) == 40 and isinstance(state["dirty"], bool)
    assert state["dirty"] == bool(state["dirty_paths"])


def test_outputs_folder_does_not_make_the_tree_dirty(tmp_path):
    from benchmarks.harness.records import REPO
    state = tree_state(REPO)  # everything is "output": nothing counts
    assert state["dirty"] is False and state["dirty_paths"] == []


def test_a_commands_whole_output_folder_is_skipped_not_only_the_suites(tmp_path):
    """benchmarks.meta_heldout writes <out>/<family>/ and <out>/summary.md: neither may make its cells dirty."""
    from benchmarks.harness.records import REPO
    from benchmarks.harness.suite import load_suite
    from benchmarks.harness.task_runner import open_invocation

    suite = load_suite("smoke")
    _, _, stamp = open_invocation(suite, tmp_path / "family", fresh=True, outputs=REPO)
    assert stamp["git_dirty"] is False and stamp["dirty_paths"] == []
    _, _, alone = open_invocation(suite, tmp_path / "family", fresh=True)
    assert alone["git_dirty"] == bool(tree_state()["dirty_paths"])


def test_invocation_is_recorded_at_start_and_stamped_on_cells():
    inv = start_invocation({"methods": ["adapt"]})
    assert inv["config"] == {"methods": ["adapt"]} and inv["started"] and "benchmarks.run" in inv["command"]
    assert "git_commit" not in inv["machine"]
    stamp = cell_stamp(inv, 2)
    assert stamp["commit"] == inv["commit"] and stamp["git_dirty"] == inv["dirty"] and stamp["invocation"] == 2


def test_migration_keeps_the_old_record_as_a_dirty_invocation_zero():
    new = migrate(OLD)
    (inv,) = new["invocations"]
    assert inv["command"] == OLD["command"] and inv["config"] == OLD["config"] and inv["commit"] == "abc"
    assert inv["dirty"] is True and inv["started"] is None and inv["note"] == LEGACY_NOTE
    assert inv["machine"] == {"cpu_model": "cpu", "torch": "2.0"} and inv["wall_seconds"] == 3.0
    assert new["cells"] == OLD["cells"] and "environment" not in new and "command" not in new
    assert migrate(new) is new


def test_dirty_reasons():
    clean = {"invocations": [{"dirty": False}], "cells": [{"key": "a", "commit": "c", "git_dirty": False}]}
    assert dirty_reasons(clean) == []
    assert len(dirty_reasons(migrate(OLD))) == 2
    assert dirty_reasons({**clean, "cells": [{"key": "a", "commit": "c"}]})  # no flag: not clean
