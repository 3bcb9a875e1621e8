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


def test_the_pair_is_measured_on_the_models():
    teacher = torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
    student = torch.nn.Sequential(torch.nn.Linear(64, 4), torch.nn.ReLU(), torch.nn.Linear(4, 10))
    teacher_ms, student_ms = latency_fit.paired_ms(teacher, student, torch.randn(256, 64), repeats=5)
    assert teacher_ms > student_ms > 0


def test_paired_timing_judges_the_ratio_of_the_same_spell(teacher, digits, monkeypatch):
    """A machine that slows down between attempts: timed alone, the teacher's early time would
    make every later student miss; timed beside it, the ratio decides."""
    fake = _fake_ms(overhead=1.0)
    spell = iter([1.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0])
    monkeypatch.setattr(latency_fit, "paired_ms", lambda t, s, x: (lambda k: (k * fake(t, x), k * fake(s, x)))(next(spell)))
    shots = digits.train.few_shot(2, seed=0)
    student, decisions = derive_to_latency(teacher, shots, Target(macs=None, latency=0.6), FAST)
    fit = decisions["latency_fit"]
    chosen = fit["attempts"][fit["chosen"]]
    assert chosen["ratio"] <= 0.6 and chosen["ms"] > fit["budget_ms"]  # over the first spell's budget, still fits
    assert chosen["ratio"] == pytest.approx(chosen["ms"] / chosen["teacher_ms"])
    assert all(a["teacher_ms"] == pytest.approx(3 * fit["teacher_ms"]) for a in fit["attempts"][1:])


def test_paired_latency_times_models_round_robin():
    from fewshot_kd.measure import paired_latency_ms

    small = torch.nn.Linear(8, 8)
    big = torch.nn.Sequential(*[torch.nn.Linear(256, 256) for _ in range(8)])
    times = paired_latency_ms({"small": small, "big": torch.nn.Sequential(torch.nn.Linear(8, 256), big)},
                              torch.randn(64, 8), warmup=1, repeats=5)
    assert set(times) == {"small", "big"} and 0 < times["small"] < times["big"]
    with pytest.raises(ValueError, match="one device"):
        paired_latency_ms({"a": small, "b": torch.nn.Linear(8, 8, device="meta")}, torch.randn(1, 8))


def test_adapt_reports_the_latency_fit(teacher, digits, monkeypatch):
    fake = _fake_ms(overhead=1.0)  # the CPU's timings are noisy here
    monkeypatch.setattr(latency_fit, "paired_ms", lambda t, s, x: (fake(t, x), fake(s, x)))
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
