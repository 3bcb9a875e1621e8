"""README blocks for the CPU speed targets: the cut of a half-MACs student (suite ``cifar10_structure``:
accuracy beside measured latency) and ``python -m benchmarks.cpu_speed`` (FLOP rates, latencies)."""

from __future__ import annotations

from fewshot_kd.files import read_json

from benchmarks.cpu_speed import tables
from benchmarks.readme.fmt import commits_phrase, gap, pm
from benchmarks.readme.source import RESULTS_DIR, load

SPEEDUP_TARGET = 1.7  # a half-MACs student at batch 64 against its teacher
RATE_TARGET = 0.75  # a distillation step's FLOP rate against a plain training step's
CUTS = {"adapt": "inner-block channels, the default", "adapt@width": "width: residual streams too, rounded to 8",
        "adapt@blocks": "whole blocks dropped", "adapt@latency": "inner-block channels, fitted to 1.7x at batch 64",
        "adapt_unlabelled": "inner-block channels, 2,000 unlabelled",
        "adapt_unlabelled@width": "width, 2,000 unlabelled", "adapt_unlabelled@blocks": "blocks, 2,000 unlabelled",
        "adapt_unlabelled@latency": "inner-block channels fitted to 1.7x, 2,000 unlabelled"}
FITTED = "@latency"  # cut to a measured latency, not to half the MACs
EXACT, JPEG = "test_exact", "test"


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def _base(method: str) -> str:
    """The default cut with the same data as ``method``."""
    return method.split("@")[0]


def _speedup(s, method: str, k: int, teacher_b64: float, paired: bool) -> tuple[float, str]:
    """The mean batch-64 speed-up over the teacher and how it reads: with ``paired`` (every cell
    timed the teacher beside its student) the mean ± std over seeds of those ratios, else the
    teacher's mean time over the method's."""
    if paired:
        pair = s.row(method, k, EXACT)["speedup_b64"]
        return pair[0], f"{pm(pair, 2)}x"
    mean = teacher_b64 / s.mean("latency_b64_ms", method, k)
    return mean, f"{mean:.2f}x"


def structure() -> str:
    s = load("cifar10_structure")
    k = sorted({c["k"] for c in s.cells()})[0]
    teacher_b64 = s.mean("latency_b64_ms", "teacher")
    paired = all(c.get("speedup_b64") for c in s.cells() if c["method"] != "teacher")
    rows, verdicts = [], []
    for method, cut in CUTS.items():
        if not s.cells(method, k):
            continue
        b64 = s.mean("latency_b64_ms", method, k)
        speedup, shown = _speedup(s, method, k, teacher_b64, paired)
        rows.append(f"| {method} ({cut}) | {pm(s.acc(method, k, EXACT))} | {pm(s.acc(method, k, JPEG))} | "
                    f"{s.mean('macs', method, k) / 1e6:.1f} M | {s.mean('latency_b1_ms', method, k):.2f} | "
                    f"{b64:.1f} | {shown} | "
                    f"{pm(s.row(method, k, EXACT)['adapt_seconds'], 0)} |")
        if not method.endswith(FITTED):
            verdicts.append(f"`{method}` {speedup:.2f}x ({_met(speedup >= SPEEDUP_TARGET)})")
    accuracy = [f"`{m}` is {gap(s.acc(m, k, EXACT)[0], s.acc(_base(m), k, EXACT)[0]):+.1f} points against `{_base(m)}`"
                for m in CUTS if "@" in m and s.cells(m, k)]
    fitted = [m for m in CUTS if m.endswith(FITTED) and s.cells(m, k)]
    same_speed = "" if not fitted else (
        " At the speed the other cuts reach, the default cut fitted to the latency keeps "
        + "; ".join(f"{s.mean('macs', m, k) / s.mean('macs', 'teacher'):.2f} of the MACs and "
                    f"{pm(s.acc(m, k, EXACT))} % (`{m}`)" for m in fitted) + ".")
    commits = sorted({c["commit"][:12] for c in s.cells()})
    timing = ("each speed-up times the teacher beside the student, round-robin, in its cell (mean ± std over seeds)"
              if paired else f"speed-ups against the teacher's {teacher_b64:.1f} ms at batch 64 measured in the same run")
    return f"""How the half-MACs student is cut{", and the default cut at 1.7x" if fitted else ""} ([table](benchmarks/results/cifar10_structure/results.md),
`python -m benchmarks.run --suite cifar10_structure`, CIFAR-10 ResNet-56 teacher, K={k}, int8 weights,
{len(s.cells('adapt', k))} seeds, {commits_phrase(commits)}, clean trees; latencies of the students as
adapt() returns them (float arithmetic on int8-rounded weights, default memory format); {timing}):

| method (cut) | acc % [{EXACT}] | acc % [{JPEG}] | MACs | ms b1 | ms b64 | b64 speed-up | adapt s |
|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + f"""

Target: a half-MACs student at least {SPEEDUP_TARGET}x faster than its teacher at batch 64: {', '.join(verdicts)}.
On the exact images {'; '.join(accuracy)}.{same_speed}"""


def _step(row: dict) -> str:
    """A distillation-step row's cut and memory format."""
    return f"{row['structure']}{', channels-last' if row['channels_last'] else ''}"


def cpu_speed() -> str:
    r = read_json(RESULTS_DIR / "cpu_speed" / "results.json")
    env = r["environment"]
    plain = r["plain_train_step"]["gflops"]
    rates = [f"{_step(row)} {row['gflops'] / plain:.0%} ({_met(row['gflops'] / plain >= RATE_TARGET)})"
             for row in r["distill_step"]]
    loop = [f"{_step(row)} {row['seconds_per_step'] / row['student_plain_seconds']:.2f}x" for row in r["distill_step"]
            if "student_plain_seconds" in row]
    costs = ("" if not loop else "\nThe distillation step's time over the student's own plain Adam step (the loop's hooks, "
             f"adaptors and losses; 1.00x: free): {'; '.join(loop)}.")
    return f"""`{r['command']}`, commit `{env['git_commit'][:12]}`, {env['cpu_model']}, {env['torch_threads']} threads
([results](benchmarks/results/cpu_speed/results.md)):

{tables(r)}
Target: a distillation step at least {RATE_TARGET:.0%} of a plain training step's FLOP rate: {'; '.join(rates)}.{costs}"""


BLOCKS = {"structure": structure, "cpu-speed": cpu_speed}
