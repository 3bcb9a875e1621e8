"""Energy per inference: the Horowitz estimate, RAPL counters read from a fake powercap folder, fallbacks."""

import pytest
import torch

from fewshot_kd import create_model
from fewshot_kd.measure import Energy, estimate_energy, measure_energy
from fewshot_kd.measure.energy_counters import EnergyCounterUnavailable, RaplCounter, wrapped_delta
from fewshot_kd.measure.energy_estimate import PICOJOULES, mac_picojoules

EXAMPLE = torch.rand(1, 1, 8, 8)


def _cnn(width: int) -> torch.nn.Module:
    return create_model("small_cnn", in_channels=1, input_size=8, width=width, num_classes=10).eval()


def _zone(root, name: str, label: str, energy_uj: int, wrap: int = 2**32):
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "name").write_text(label + "\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{wrap}\n")
    return zone


def test_horowitz_table_holds_the_published_figures():
    assert PICOJOULES["fp32_mult"] == 3.7 and PICOJOULES["int8_mult"] == 0.2 and PICOJOULES["dram_read_32bit"] == 640.0
    assert mac_picojoules(32) == pytest.approx(4.6) and mac_picojoules(8) == pytest.approx(0.23)
    assert mac_picojoules(4) == mac_picojoules(8)  # sub-8-bit weights run on 8-bit units


def test_estimate_scales_with_macs_and_precision():
    small, wide = _cnn(4), _cnn(16)
    fp32, int8, int4 = (estimate_energy(small, EXAMPLE, bits) for bits in (32, 8, 4))
    assert int4.joules_per_inference < int8.joules_per_inference < fp32.joules_per_inference
    assert fp32.joules_per_inference > 3 * int8.joules_per_inference  # 4x fewer weight bytes, 20x cheaper MACs
    assert estimate_energy(wide, EXAMPLE, 32).joules_per_inference > fp32.joules_per_inference
    assert estimate_energy(wide, EXAMPLE, 32).details["macs"] > 4 * fp32.details["macs"]
    parts = fp32.details["joules_by_part"]
    assert sum(parts.values()) == pytest.approx(fp32.joules_per_inference)
    assert parts["arithmetic"] == pytest.approx(fp32.details["macs"] * 4.6e-12)


def test_weights_read_once_per_batch():
    model = _cnn(8)
    one, batch = estimate_energy(model, EXAMPLE), estimate_energy(model, torch.rand(16, 1, 8, 8))
    assert batch.details["macs"] == one.details["macs"]  # per example
    assert batch.details["joules_by_part"]["weights_dram"] == pytest.approx(one.details["joules_by_part"]["weights_dram"] / 16)


def test_label_is_always_present_and_round_trips():
    energy = measure_energy(_cnn(4), EXAMPLE, powercap_root="no-such-folder")
    assert energy.method == "estimated-horowitz2014" and energy.label == "est." and not energy.measured
    assert "no RAPL package zone" in energy.details["not_measured"]
    assert Energy.from_dict(energy.to_dict()) == energy


def test_rapl_counter_reads_package_zones_of_a_fake_powercap(tmp_path):
    package = _zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    _zone(tmp_path, "intel-rapl:0:0", "core", 5)  # a sub-zone: part of the package, not added
    _zone(tmp_path, "intel-rapl:1", "psys", 7)  # the platform: would count the package twice
    counter = RaplCounter(tmp_path)
    assert [z.name for z in counter.zones] == ["intel-rapl:0"]
    (package / "energy_uj").write_text("3500000\n")
    assert counter.joules() == pytest.approx(2.5)


def test_rapl_wrap_around_is_added_back(tmp_path):
    assert wrapped_delta(90, 10, 100) == 20 and wrapped_delta(10, 90, 100) == 80
    package = _zone(tmp_path, "intel-rapl:0", "package-0", 9_000_000, wrap=10_000_000)
    counter = RaplCounter(tmp_path)
    (package / "energy_uj").write_text("500000\n")  # wrapped past 10 J
    assert counter.joules() == pytest.approx(1.5)
    (package / "energy_uj").write_text("2500000\n")
    assert counter.joules() == pytest.approx(3.5)


def test_measured_over_a_timed_loop_with_a_fake_counter(tmp_path, monkeypatch):
    package = _zone(tmp_path, "intel-rapl:0", "package-0", 0)
    calls = {"n": 0}

    def ticking(self):  # each read of the counter sees 0.1 J more
        calls["n"] += 1
        (package / "energy_uj").write_text(f"{100_000 * calls['n']}\n")
        return [int((package / "energy_uj").read_text())]

    monkeypatch.setattr(RaplCounter, "_raw", ticking)
    energy = measure_energy(_cnn(4), torch.rand(4, 1, 8, 8), powercap_root=tmp_path, min_seconds=0.01)
    assert energy.method == "measured-rapl" and energy.label == "meas."
    passes = energy.details["forward_passes"]
    assert energy.joules_per_inference == pytest.approx(0.1 / (4 * passes))
    assert energy.details["estimated_joules_per_inference"] > 0


def test_unreadable_counter_falls_back_to_the_estimate_with_the_reason(tmp_path):
    package = _zone(tmp_path, "intel-rapl:0", "package-0", 0)
    (package / "energy_uj").unlink()
    (package / "energy_uj").mkdir()  # reading a folder fails as a root-only file does
    with pytest.raises(EnergyCounterUnavailable, match="cannot read"):
        RaplCounter(tmp_path)
    energy = measure_energy(_cnn(4), EXAMPLE, powercap_root=tmp_path)
    assert energy.method == "estimated-horowitz2014" and "cannot read" in energy.details["not_measured"]


def test_a_plain_callable_needs_the_module_to_count():
    model = _cnn(4)
    with pytest.raises(TypeError, match="estimate_from"):
        measure_energy(lambda x: model(x), EXAMPLE)
    energy = measure_energy(lambda x: model(x), EXAMPLE, estimate_from=model, weight_bits=8, powercap_root="none")
    assert energy.details["weight_bits"] == 8
