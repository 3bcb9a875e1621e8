"""adapt() with a latency target: the derived student is pruned until its measured time fits."""

import pytest
import torch

from fewshot_kd import Policy, Target, adapt
from fewshot_kd.adapt import latency_fit
from fewshot_kd.adapt.latency_fit import derive_to_latency
from fewshot_kd.errors import FewShotKDError
from fewshot_kd.measure import count_macs

FAST = Policy(steps=5, views_per_shot=2, flip=False, qat_steps=0)


def _fake_ms(overhead: float):
    """Milliseconds as a fixed overhead plus one per thousand MACs of the model (deterministic)."""
    def measure(model, example):
        return overhead + count_macs(model, example) / 1000
    return measure


def test_latency_fit_takes_the_largest_student_that_fits(teacher, digits):
    shots = digits.train.few_shot(2, seed=0)
    measure = _fake_ms(overhead=10.0)
    student, decisions = derive_to_latency(teacher, shots, Target(macs=None, latency=0.6), FAST, measure=measure)
    fit = decisions["latency_fit"]
    assert fit["budget_ms"] == pytest.approx(0.6 * fit["teacher_ms"])
    got = measure(student, shots.input_batch(slice(0, 1)))
    assert got <= fit["budget_ms"]
    # the overhead does not shrink, so the MACs must fall further than 0.6
    assert decisions["macs_fraction"] < 0.6
    # and not much further than needed: the fit is within a bisection step of the budget
    assert got > 0.9 * fit["budget_ms"]
    assert len(fit["attempts"]) >= 3 and fit["batch"] == 1 and fit["attempts"][fit["chosen"]]["ms"] == got


def test_a_met_latency_target_keeps_the_macs_target(teacher, digits):
    shots = digits.train.few_shot(2, seed=0)
    _, decisions = derive_to_latency(teacher, shots, Target(macs=0.5, latency=1.0), FAST, measure=_fake_ms(0.0))
    assert len(decisions["latency_fit"]["attempts"]) == 1 and decisions["macs_fraction"] <= 0.5 * 1.02


def test_an_unreachable_latency_says_so(teacher, digits):
    shots = digits.train.few_shot(2, seed=0)
    with pytest.raises(FewShotKDError, match="cannot reach target.latency=0.1"):
        derive_to_latency(teacher, shots, Target(macs=None, latency=0.1), FAST, measure=_fake_ms(100.0))


def test_latency_is_measured_on_the_model():
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    assert latency_fit.latency_ms(model, torch.randn(4, 64), repeats=3) > 0


def test_adapt_reports_the_latency_fit(teacher, digits, monkeypatch):
    monkeypatch.setattr(latency_fit, "latency_ms", _fake_ms(overhead=1.0))  # the CPU's timings are noisy here
    torch.manual_seed(0)
    result = adapt(teacher, None, shots=2, data=digits, target={"macs": 0.8, "latency": 0.9, "bits": None},
                   policy=FAST, progress=False)
    fit = result.report["decisions"]["latency_fit"]
    assert fit["attempts"][fit["chosen"]]["ms"] <= fit["budget_ms"] == pytest.approx(0.9 * fit["teacher_ms"])
    assert result.report["target"]["latency"] == 0.9 and result.report["decisions"]["macs_fraction"] < 0.9


@pytest.mark.parametrize("bad, words", [({"latency": 0}, "latency is a fraction"), ({"latency": 1.5}, "latency is a fraction"),
                                        ({"latency_batch": 0}, "latency_batch must be a positive")])
def test_bad_latency_targets(bad, words):
    with pytest.raises(FewShotKDError, match=words):
        Target.parse(bad)
