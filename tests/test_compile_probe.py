"""The torch.compile probe's verdict follows its measurements (no compiling here: too slow)."""

from benchmarks.compile_probe import render


def _results(eager, compiled, first, steps=300):
    saving = eager - compiled
    return {"command": "python -m benchmarks.compile_probe", "environment": {"git_commit": "abc", "cpu_model": "cpu",
                                                                             "torch": "2"},
            "probe": {"macs_fraction": 0.5, "batch": 32, "eager_step_s": eager, "compiled_step_s": compiled,
                      "first_compiled_step_s": first, "speedup": eager / compiled,
                      "break_even_steps": first / saving if saving > 0 else None, "adapt_steps": steps, "threads": 1}}


def test_the_verdict_follows_the_break_even_point():
    assert "does not pay" in render(_results(0.25, 0.19, 64.0))  # 1,067 steps to break even
    assert "student pays" in render(_results(0.25, 0.10, 6.0))  # 40 steps
    assert "never" in render(_results(0.2, 0.3, 10.0))
