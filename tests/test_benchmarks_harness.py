import json

import pytest
import torch

from benchmarks.harness.store import CellStore, cell_key
from benchmarks.harness.suite import Suite, load_suite
from benchmarks.harness.tables import aggregate, markdown_table
from benchmarks.methods.base import base_method, list_methods
from fewshot_kd.errors import FewShotKDError
from fewshot_kd.task_family import find_task_family


def record(method, seed, acc):
    return {"key": cell_key("t", method, 5, seed), "task": "t", "method": method, "k": 5, "seed": seed,
            "eval": {"test": {"accuracy": acc, "macro_precision": acc, "macro_recall": acc, "macro_f1": acc}},
            "params": 10, "macs": 100, "bytes": 1000, "compression_bytes": 2.0, "compression_macs": 4.0,
            "latency_b1_ms": 1.0, "latency_b64_ms": 5.0, "adapt_seconds": 1.0, "peak_memory_bytes": 1,
            "integer_arithmetic": False}


def test_aggregate_mean_and_std_over_seeds():
    rows = aggregate([record("a", 0, 0.5), record("a", 1, 0.7), record("b", 0, 0.9)])
    a = next(r for r in rows if r["method"] == "a")
    assert a["seeds"] == 2 and a["accuracy"][0] == pytest.approx(0.6) and a["accuracy"][1] == pytest.approx(0.1414, abs=1e-3)
    assert "60.0 ± 14.1" in markdown_table(rows)


def test_energy_column_says_estimated_or_measured_and_is_plotted(tmp_path):
    from benchmarks.harness.plots import accuracy_vs_energy

    estimated = [{**record("a", s, 0.5), "energy_uj": 2.0 + s, "energy_method": "estimated-horowitz2014"} for s in (0, 1)]
    mixed = [{**record("b", 0, 0.6), "energy_uj": 1.0, "energy_method": "measured-rapl"},
             {**record("b", 1, 0.6), "energy_uj": 3.0, "energy_method": "estimated-horowitz2014"}]
    rows = aggregate(estimated + mixed + [record("older", 0, 0.7)])  # a cell from before energy was recorded
    lines = markdown_table(rows).splitlines()
    assert "energy µJ/inf (est.\\|meas.)" in lines[0]
    assert len({line.replace("\\|", "").count("|") for line in lines}) == 1  # every row has every column
    cells = {row.split("|")[3].strip(): row for row in lines[2:]}
    assert "| 2.50 ± 0.71 est. |" in cells["a"] and "| 2.00 ± 1.41 mixed |" in cells["b"] and "| – |" in cells["older"]
    assert accuracy_vs_energy(rows, tmp_path / "energy.png").is_file()
    assert accuracy_vs_energy(aggregate([record("older", 0, 0.7)]), tmp_path / "none.png") is None


def test_speedups_time_the_teacher_beside_the_model():
    import torch.nn as nn

    from benchmarks.harness.cell import speedups

    teacher = nn.Sequential(*[nn.Linear(512, 512) for _ in range(8)])
    small = nn.Linear(512, 512)
    out = speedups(teacher, small, lambda b: torch.randn(b, 512), (1, 64), repeats=5)
    assert set(out) == {"b1", "b64"}
    for pair in out.values():
        assert pair["speedup"] == pytest.approx(pair["teacher_ms"] / pair["ms"]) and pair["speedup"] > 1.5
    assert speedups(teacher, lambda x: small(x), lambda b: torch.randn(b, 512), (4,), repeats=2)["b4"]["ms"] > 0
    assert speedups(teacher, nn.Linear(512, 512, device="meta"), lambda b: torch.randn(b, 512)) == {}


def test_speedup_column_is_mean_and_std_and_blank_for_older_cells():
    rows = aggregate([{**record("a", 0, 0.5), "speedup_b64": 1.5}, {**record("a", 1, 0.5), "speedup_b64": 1.7},
                      record("older", 0, 0.7)])
    lines = markdown_table(rows).splitlines()
    assert "× faster b64" in lines[0]
    cells = {row.split("|")[3].strip(): row for row in lines[2:]}
    assert "| 1.60 ± 0.14 |" in cells["a"] and "| 5.0 | – |" in cells["older"]


def test_store_resumes_and_ignores_a_cut_line(tmp_path):
    path = tmp_path / "cells.jsonl"
    store = CellStore(path)
    store.add(record("a", 0, 0.5))
    with path.open("a") as f:
        f.write('{"key": "cut')  # a write interrupted by a kill
    again = CellStore(path)
    assert cell_key("t", "a", 5, 0) in again and len(again.all()) == 1


def test_shipped_suites_name_known_tasks_and_methods():
    from benchmarks.harness.suite import SUITES_DIR

    for path in SUITES_DIR.glob("*.yaml"):
        suite = load_suite(path)
        for task in suite.tasks:
            find_task_family(task)
        from benchmarks.harness.lm_runner import is_lm_suite
        from benchmarks.harness.qa_runner import is_qa_suite
        from benchmarks.methods.lm import LM_METHODS
        from benchmarks.methods.qa import QA_METHODS

        known = (["teacher", *LM_METHODS.names()] if is_lm_suite(suite)
                 else ["teacher", *QA_METHODS.names()] if is_qa_suite(suite) else list_methods())
        unknown = {base_method(m) for m in suite.methods} - set(known)
        assert not unknown, f"{path.name}: unknown methods {unknown}"


def test_a_variant_tag_runs_the_same_method():
    from benchmarks.methods.base import get_method

    assert get_method("adapt@cutmix") is get_method("adapt")
    with pytest.raises(Exception, match="nope"):
        get_method("nope@cutmix")


def test_empty_suite_is_rejected():
    with pytest.raises(FewShotKDError, match="empty"):
        Suite(name="x", tasks=(), methods=("teacher",))


@pytest.mark.slow
def test_smoke_suite_runs_every_method_and_resumes(tmp_path, monkeypatch):
    """The shipped `smoke` suite, as CI runs it (one K to keep the test short)."""
    from benchmarks.harness.runner import run_suite

    monkeypatch.setenv("FEWSHOT_KD_CACHE", str(tmp_path / "cache"))
    suite = Suite(**{**load_suite("smoke").to_dict(), "shots": (5,)})
    result = run_suite(suite, tmp_path / "out")
    cells = {c["method"]: c for c in result["cells"]}
    assert set(cells) == set(list_methods()) == set(suite.methods)
    assert cells["ptq_int8"]["integer_arithmetic"] and not cells["adapt"]["integer_arithmetic"]
    assert cells["adapt"]["compression_bytes"] > 4 and cells["adapt"]["compression_macs"] > 1.8
    assert cells["teacher"]["compression_bytes"] == pytest.approx(1.0, rel=0.01)
    assert cells["scratch"]["compression_bytes"] > 5  # tiny_cnn is far smaller than the teacher
    assert 0 <= cells["scratch"]["eval"]["test"]["accuracy"] <= 1
    assert cells["ptq_int8"]["energy"]["details"]["weight_bits"] == 8 and cells["adapt"]["energy_method"]
    paired = cells["adapt"]["paired_latency"]["b64"]  # the teacher timed beside each student
    assert cells["adapt"]["speedup_b64"] == pytest.approx(paired["teacher_ms"] / paired["ms"]) and paired["teacher_ms"] > 0
    for name in ("results.json", "results.md", "accuracy_vs_compression.png", "accuracy_vs_shots.png", "accuracy_vs_time.png",
                 "accuracy_vs_energy.png", "sample_predictions_digits.png"):
        assert (tmp_path / "out" / name).is_file(), name
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    first = saved["invocations"][0]
    assert first["machine"]["torch"] and first["config"]["methods"] == list(suite.methods) and first["started"]
    assert all(c["commit"] == first["commit"] and c["git_dirty"] == first["dirty"] for c in saved["cells"])
    before = (tmp_path / "out" / "cells.jsonl").read_text()
    run_suite(suite, tmp_path / "out")  # nothing left to do: no cell runs twice
    assert (tmp_path / "out" / "cells.jsonl").read_text() == before
    assert len(json.loads((tmp_path / "out" / "results.json").read_text())["invocations"]) == 2
