"""README blocks for the CIFAR-10 suites: the baseline table, the 8x student, the new architecture."""

from __future__ import annotations

import statistics

from benchmarks.readme.fmt import GAP_TARGETS, commit_list, gap, goals, pm, span
from benchmarks.readme.source import load

ORDER = ("teacher", "ptq_int8", "adapt_unlabelled", "adapt", "prune_finetune", "tp_prune_finetune", "hinton_kd",
         "maml_student", "scratch")
BASELINES = ("prune_finetune", "tp_prune_finetune", "hinton_kd", "maml_student", "scratch")
EXACT, JPEG = "test_exact", "test"


def cifar10_table() -> str:
    s = load("cifar10")
    lines = [s.note() + "| task | method | K | seeds | acc % [test_exact] | acc % [test] | macro-F1 % [test_exact] "
             "| × bytes | × MACs | adapt s | int8 math |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for k in sorted({c["k"] for c in s.cells()}):
        for method in ORDER:
            r = s.row(method, k, EXACT)
            lines.append(f"| {r['task']} | {method} | {k} | {r['seeds']} | {pm(s.acc(method, k, EXACT))} "
                         f"| {pm(s.acc(method, k, JPEG))} | {pm(s.acc(method, k, EXACT, metric='macro_f1'))} "
                         f"| {r['compression_bytes'][0]:.2f} | {r['compression_macs'][0]:.2f} | {pm(r['adapt_seconds'], 0)} "
                         f"| {'yes' if r['integer_arithmetic'] else 'no'} |")
    return "\n".join(lines)


def cifar10_findings() -> str:
    s = load("cifar10")
    ks = sorted({c["k"] for c in s.cells()})
    teacher = {k: s.acc("teacher", k, EXACT)[0] for k in ks}
    lead = [gap(s.acc("adapt", k, EXACT)[0], max(s.acc(m, k, EXACT)[0] for m in BASELINES)) for k in ks]
    below = [gap(teacher[k], s.acc("adapt", k, EXACT)[0]) for k in ks]
    unl = {k: s.acc("adapt_unlabelled", k, EXACT)[0] for k in ks}
    unl_gap = {k: gap(teacher[k], unl[k]) for k in ks}
    pairs = [(c, next(t for t in s.cells("tp_prune_finetune", c["k"]) if t["seed"] == c["seed"]))
             for c in s.cells("prune_finetune")]
    diffs = [100 * abs(a["eval"][EXACT]["accuracy"] - b["eval"][EXACT]["accuracy"]) for a, b in pairs]
    ratio = s.mean("compression_bytes", "adapt")
    eighth = s.data["teacher_reference"]["cifar10-resnet56"]["bytes"] / 8 / 1000
    return f"""The byte ratios in this table predate BatchNorm folding in the export: the same student now
exports smaller (the 8x section below was run with folding).

What this shows, plainly:
- From labelled shots alone, the hand-set `adapt` beats every baseline that compresses MACs by {span(lead)}
  points, but stays {span(below)} points below the teacher on the exact images.
- With 2,000 unlabelled images beside the shots, `adapt_unlabelled` reaches {" / ".join(f"{unl[k]:.1f}" for k in ks)} % at
  K={" / ".join(map(str, ks))}: {span(unl_gap.values())} points below the teacher. That {goals(unl_gap)}, and it
  takes {s.mean("adapt_seconds", "adapt_unlabelled"):.0f} s on average here, not 90 s. Its accuracy does not grow with K:
  the 300-step budget, not the labels, limits it.
- At half the MACs the int8 file was {ratio:.1f}x smaller than the teacher's, not 8x. An eighth of the teacher's
  file is {eighth:.0f} KB, so 8x needs pruning a little past half (next section).
- Torch-Pruning's L1 pruner and ours give close but not identical students: on the same shots and seed,
  `tp_prune_finetune` and `prune_finetune` differ by {statistics.fmean(diffs):.1f} points on average and by up
  to {max(diffs):.1f} on the exact images."""


def derived_8x() -> str:
    s, base = load("cifar10_derived_8x"), load("cifar10")
    ref = s.data["teacher_reference"]["cifar10-resnet56"]
    cell = s.cells("adapt")[0]
    ks = sorted({c["k"] for c in s.cells("adapt")})
    teacher = {k: base.acc("teacher", k, EXACT)[0] for k in ks}
    rows, gaps = [], {}
    for method in ("adapt", "adapt_unlabelled", "adapt_unlabelled@5000x900"):
        gaps[method] = {k: gap(teacher[k], s.acc(method, k, EXACT)[0]) for k in ks}
        for k in ks:
            shown = f"{gaps[method][k]:.1f}"
            shown = f"**{shown}**" if round(gaps[method][k], 1) <= GAP_TARGETS[k] else shown
            rows.append(f"| {method} | {k} | {pm(s.acc(method, k, EXACT))} | {pm(s.acc(method, k, JPEG))} | {shown} "
                        f"| {pm(s.row(method, k, EXACT)['adapt_seconds'], 0)} |")
    k5 = sorted(c["adapt_seconds"] for c in s.cells("adapt", 5))
    long = s.cells("adapt_unlabelled@5000x900")
    per300 = statistics.median(c["notes"]["stages"]["distill_seconds"] / 3 for c in long)
    usual = statistics.median(c["notes"]["stages"]["distill_seconds"] for c in s.cells("adapt"))
    fit = s.mean("adapt_seconds", "adapt", 10)
    return f"""The full derived-student spec: at most half the teacher's MACs, int8 weights, and a file at least
8x smaller than the fp32 teacher's (`target={{"macs": 0.5, "bits": 8, "size_ratio": 8}}`). Reaching
8x takes pruning to {100 * cell['params'] / ref['params']:.0f} % of the params (the size fit measures trial exports): the student has
{cell['params']:,} params and {cell['macs'] / ref['macs']:.2f} of the MACs, and its two files take {cell['bytes']:,} bytes, **{cell['compression_bytes']:.2f}x** smaller than the
teacher's {ref['bytes']:,}. Same shots and evaluation sets as above, 3 seeds
([table](benchmarks/results/cifar10_derived_8x/results.md)); the teacher is the `cifar10` suite's:

{s.note()}| method | K | acc % [test_exact] | acc % [test] | gap to teacher (exact) | adapt s |
|---|---|---|---|---|---|
""" + "\n".join(rows) + f"""

The size spec is met, and `adapt` at K=10 {"fits" if fit <= 90 else "misses"} the 90 s budget ({fit:.0f} s). From the labelled
shots alone the gaps are {span(gaps['adapt'].values())} points, and with 2,000 unlabelled images {span(gaps['adapt_unlabelled'].values())}
(targets: within {" / ".join(f"{GAP_TARGETS[k]:.1f}" for k in ks)} points at K={" / ".join(map(str, ks))}). The K=5 `adapt` cells took
{", ".join(f"{t:.0f}" for t in k5)} s; the slowest overlapped another job on this machine.

`adapt_unlabelled@5000x900` (5,000 unlabelled images, 900 steps instead of 300) brings the gap to
{" / ".join(f"{g:.1f}" for g in gaps['adapt_unlabelled@5000x900'].values())} points. That {goals(gaps['adapt_unlabelled@5000x900'])}, and it
takes {span([c['adapt_seconds'] / 60 for c in long], 0)} minutes instead of 90 s. Its cells ran at a later commit, when this 2-core
machine was slower: its distillation took a median {per300:.0f} s per 300 steps, against {usual:.0f} s in the `adapt` cells above."""


ABLATIONS = {"adapt@cutmix": "800 cutmix pairs of shot views", "adapt@mixup": "800 mixup pairs",
             "adapt@reconstruct": "least-squares repair first"}


def derived_8x_ablation() -> str:
    s = load("cifar10_derived_8x")
    k = 10
    base = s.row("adapt", k, EXACT)
    rows = [f"| adapt (above) | {pm(s.acc('adapt', k, EXACT))} | {pm(s.acc('adapt', k, JPEG))} | {pm(base['adapt_seconds'], 0)} |"]
    for method, what in ABLATIONS.items():
        rows.append(f"| {method} ({what}) | {pm(s.acc(method, k, EXACT))} | {pm(s.acc(method, k, JPEG))} "
                    f"| {pm(s.row(method, k, EXACT)['adapt_seconds'], 0)} |")
    delta = [abs(gap(s.acc(m, k, EXACT)[0], s.acc("adapt", k, EXACT)[0])) for m in ABLATIONS]
    mix_cost = [gap(s.acc("adapt", k, JPEG)[0], s.acc(m, k, JPEG)[0]) for m in ("adapt@cutmix", "adapt@mixup")]
    distill = statistics.median(c["notes"]["stages"]["distill_seconds"] for m in ABLATIONS for c in s.cells(m))
    usual = statistics.median(c["notes"]["stages"]["distill_seconds"] for c in s.cells("adapt"))
    return f"""An uncommitted single-seed probe suggested that the labelled-only recipe is limited by data, not
steps (900 steps did not beat 300); it is not part of the committed results. Stretching the shots
further does not close the gap either. Ablations at K={k}, 3 seeds, same shots
(`--methods adapt@cutmix adapt@mixup adapt@reconstruct --shots 10`):

| method | acc % [test_exact] | acc % [test] | adapt s |
|---|---|---|---|
""" + "\n".join(rows) + f"""

All three stay within {max(delta):.1f} points of `adapt` on the exact images ({"inside" if max(delta) <= s.acc("adapt", k, EXACT)[1] else "outside"} its
standard deviation over seeds, {s.acc("adapt", k, EXACT)[1]:.1f}). Mixed views cost {" / ".join(f"{c:.1f}" for c in mix_cost)} points (cutmix / mixup) on
the JPEG test split. These cells ran at a later commit, when distillation took a median {distill:.0f} s
against {usual:.0f} s in the `adapt` cells, so their adapt times are not comparable.
Rerun with `python -m benchmarks.run --suite cifar10_derived_8x`."""


def derived_8x_mixed() -> str:
    s, base = load("cifar10_derived_8x"), load("cifar10")
    m = "adapt@mixed"
    ks = sorted({c["k"] for c in s.cells(m)})
    teacher = {k: base.acc("teacher", k, EXACT)[0] for k in ks}
    gaps = {k: gap(teacher[k], s.acc(m, k, EXACT)[0]) for k in ks}
    rows = [f"| {method} | {k} | {pm(s.acc(method, k, EXACT))} | {pm(s.acc(method, k, JPEG))} "
            f"| {gap(teacher[k], s.acc(method, k, EXACT)[0]):.1f} | {s.cells(method, k)[0]['params']:,} "
            f"| {s.cells(method, k)[0]['compression_bytes']:.2f} | {s.mean('latency_b64_ms', method, k):.0f} "
            f"| {pm(s.row(method, k, EXACT)['adapt_seconds'], 0)} |" for k in ks for method in ("adapt", m)]
    lead = [s.acc(m, k, EXACT)[0] - s.acc("adapt", k, EXACT)[0] for k in ks]
    commits = sorted({c["commit"][:12] for c in s.cells(m)})
    return f"""Mixed precision under the same file budget (`Policy(mixed_bits=(4, 8))`, method `adapt@mixed`): the size
fit lowers the least sensitive layers to int4 (packed) before it prunes, so the 8x file keeps more
channels. Labelled shots alone, 3 seeds, same shots, commit {commit_list(commits)} (clean tree),
`python -m benchmarks.run --suite cifar10_derived_8x --methods adapt@mixed`:

| method | K | acc % [test_exact] | acc % [test] | gap to teacher (exact) | params | × bytes | ms b64 | adapt s |
|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + f"""

Mixed bits gain {" / ".join(f"{d:+.1f}" for d in lead)} points over int8 everywhere at K={" / ".join(map(str, ks))} under the same 8x file budget.
With gaps of {" / ".join(f"{gaps[k]:.1f}" for k in ks)} points the student {goals(gaps)}. Inference
dequantizes the weights to float (simulated quantization), so int4 saves bytes, not time: the
less-pruned student is not faster (latencies were measured on this shared 2-core machine beside other
jobs, so they are a rough reference only). The `adapt` rows are the ones above."""


def new_arch() -> str:
    s, base = load("cifar10_new_arch"), load("cifar10")
    m = "adapt_student_unlabelled"
    c = s.cells(m)[0]
    ks = sorted({x["k"] for x in s.cells(m)})
    parts = [f"{pm(s.acc(m, k, EXACT))} % (exact) / {pm(s.acc(m, k, JPEG))} % (JPEG) at K={k} in "
             f"{pm(s.row(m, k, EXACT)['adapt_seconds'], 0)} s" for k in ks]
    return f"""{s.note()}A random-init ResNet-20 ({c['params']:,} params, int8, {c['compression_bytes']:.1f}x smaller file, {c['compression_macs']:.1f}x fewer MACs) distilled
from the ResNet-56 with 5,000 unlabelled train images beside the shots and 5,000 steps, 3 seeds
([table](benchmarks/results/cifar10_new_arch/results.md)): {"; ".join(parts)}. {_goal(s, m, 10, 70)};
{_goal(s, m, 20, 78)} (the teacher: {base.acc("teacher", ks[0], EXACT)[0]:.1f} % exact). The labelled-only `adapt_student` was not rerun. Rerun with
`python -m benchmarks.run --suite cifar10_new_arch --methods adapt_student_unlabelled`."""


def _goal(s, method: str, k: int, target: float) -> str:
    acc, seconds = s.acc(method, k, EXACT)[0], s.mean("adapt_seconds", method, k)
    verdict = "meets" if round(acc, 1) >= target else "misses"
    return f"K={k} {verdict} the {target:.0f} % goal ({seconds:.0f} s on average against a 600 s budget)"


def not_yet() -> str:
    s, n, base = load("cifar10_derived_8x"), load("cifar10_new_arch"), load("cifar10")
    ks = (5, 10, 20)
    gaps = {m: _gaps_vs(base, s, m, ks) for m in ("adapt", "adapt@mixed", "adapt_unlabelled", "adapt_unlabelled@5000x900")}
    m = "adapt_student_unlabelled"
    return f"""- `adapt()` reaching the teacher-gap targets. With the file {s.cells("adapt")[0]["compression_bytes"]:.2f}x smaller (the full spec), the CIFAR-10
  gap is {span(gaps["adapt"].values())} points from the labelled shots alone ({span(gaps["adapt@mixed"].values())} with per-layer int4 / int8). With 2,000 unlabelled images it is {span(gaps["adapt_unlabelled"].values())}, and
  with 5,000 and 900 steps {" / ".join(f"{g:.1f}" for g in gaps["adapt_unlabelled@5000x900"].values())} at K=5 / 10 / 20 (targets {" / ".join(f"{GAP_TARGETS[k]:.1f}" for k in ks)}).
- The random-init ResNet-20: {s_acc(n, m, 20)} % at K=20, not 78 %; {s_acc(n, m, 10)} % at K=10 (with unlabelled images)."""


def _gaps_vs(base, s, method: str, ks) -> dict[int, float]:
    return {k: gap(base.acc("teacher", k, EXACT)[0], s.acc(method, k, EXACT)[0]) for k in ks}


def s_acc(s, method: str, k: int) -> str:
    return f"{s.acc(method, k, EXACT)[0]:.1f}"


BLOCKS = {"cifar10-table": cifar10_table, "cifar10-findings": cifar10_findings, "derived-8x": derived_8x,
          "derived-8x-ablation": derived_8x_ablation, "derived-8x-mixed": derived_8x_mixed, "new-arch": new_arch, "not-yet": not_yet}
