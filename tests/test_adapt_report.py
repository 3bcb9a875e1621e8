"""The typed AdaptReport serialises to the JSON adapt() wrote before it existed (key order included).

The fixture was written on one machine. Seeded training gives other floats on a processor with other
vector instructions, so numbers are compared by type (and finiteness) only, also inside strings
(warnings quote them); keys, their order, list lengths, the rest of the strings, booleans and nulls
must match exactly.
"""

import json
import math
import re
from pathlib import Path

import pytest
import torch

from fewshot_kd import Policy, adapt, create_model
from fewshot_kd.adapt.adapt_report import Decisions, Stages
from fewshot_kd.measure import energy_counters

# reports of the runs below, written by adapt() before AdaptReport (its loose dicts), timings blanked;
# since then with the energy entry and the QAT steps that ran
FIXTURE = Path(__file__).parent / "fixtures" / "adapt_report_digits.json"
NUMBER = re.compile(r"\d+(\.\d+)?")
FAST = Policy(steps=15, qat_steps=5, new_arch_steps=15, views_per_shot=2, flip=False, prune_importance="l1")
RICH = Policy(steps=10, qat_steps=3, views_per_shot=2, mix_views=1, synthetic_inputs=4, synthetic_steps=3,
              reconstruct_inputs=8, prune_importance="taylor")
CASES = {
    "derived_int8": dict(target={"macs": 0.5, "bits": 8}, policy=FAST),
    "new_arch_float": dict(target={"macs": None, "bits": None}, policy=FAST),
    "rich_size_fit": dict(target={"macs": 0.6, "bits": 4, "size_ratio": 12}, policy=RICH, unlabelled=30),
}


def _blank_timings(value, key=""):
    if isinstance(value, dict):
        return {k: _blank_timings(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_blank_timings(v) for v in value]
    return None if key in ("adapt_seconds", "peak_memory_bytes", "seconds") or key.endswith("_seconds") else value


def _assert_same(got, want, where="report"):
    """Same keys in the same order, same lengths and types; same strings (numbers in them aside),
    booleans and nulls."""
    if isinstance(want, dict):
        assert list(got) == list(want), where
        for key in want:
            _assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert type(got) is float and math.isfinite(got), f"{where}: {got!r} is not a finite float"
    elif isinstance(want, int) and not isinstance(want, bool):
        assert type(got) is int, f"{where}: {got!r} is not an int"
    elif isinstance(want, str):
        assert type(got) is str and NUMBER.sub("#", got) == NUMBER.sub("#", want), f"{where}: {got!r} != {want!r}"
    else:
        assert got == want and type(got) is type(want), f"{where}: {got!r} != {want!r}"


@pytest.mark.filterwarnings("ignore:the student agrees with the teacher on only")  # tiny runs collapse
@pytest.mark.parametrize("case", CASES)
def test_report_json_is_what_adapt_wrote_before(case, teacher, digits, tmp_path, monkeypatch):
    monkeypatch.setattr(energy_counters, "POWERCAP_ROOT", Path("no-powercap-here"))  # the estimate on every machine
    student = None
    if case == "new_arch_float":
        torch.manual_seed(1)
        student = create_model("small_cnn", in_channels=1, input_size=8, width=4, num_classes=10)
    result = adapt(teacher, student, shots=5, data=digits, progress=False, seed=3, **CASES[case])
    want = json.loads(FIXTURE.read_text())[case]
    assert result.report == result.adapt_report.to_dict()
    _assert_same(_blank_timings(result.report), want)
    saved = json.loads(result.save_report(tmp_path / "report.json").read_text())
    _assert_same(_blank_timings({k: v for k, v in saved.items() if k != "history"}), want)


def test_parts_leave_out_what_did_not_run():
    stages = Stages(derive_seconds=0.1, teacher_cache_seconds=0.2, views=8, distilled_layers=[], distill_seconds=0.3,
                    teacher_agreement_on_views=1.0)
    assert list(stages.to_dict()) == ["derive_seconds", "teacher_cache_seconds", "views", "distilled_layers",
                                      "distill_seconds", "teacher_agreement_on_views"]
    assert Decisions(derived_from_teacher=False, layers={}).to_dict() == {"derived_from_teacher": False, "layers": {}}
    with pytest.raises(TypeError):
        Decisions(derived_from_teacher=True, layers={}, unknown=1)
