"""README blocks for the meta-learned policy on held-out families (CIFAR-10, AG News)."""

from __future__ import annotations

import statistics
from pathlib import Path

from benchmarks.readme.fmt import gap, pm, sci, span
from benchmarks.readme.source import load

SHIPPED = Path(__file__).resolve().parents[2] / "fewshot_kd" / "policies" / "meta_default"

METHODS = ("adapt", "adapt_meta", "adapt_random_search")


def _policy(cell: dict) -> dict:
    notes = cell["notes"]
    return notes["trials"][notes["chosen"]]["policy"] if "chosen" in notes else notes["policy"]


def _search(s) -> tuple[int, int, int, int]:
    """Trials and steps per trial of the random search, and how many cells chose the hand-set policy."""
    cells = s.cells("adapt_random_search")
    hand = sum(_policy(c).get("name") == "hand-set" for c in cells)
    return len(cells[0]["notes"]["trials"]), cells[0]["notes"]["steps_per_trial"], hand, len(cells)


def meta_cifar10() -> str:
    s = load("meta_cifar10")
    ks = sorted({c["k"] for c in s.cells()})
    trials, steps, hand, n = _search(s)
    rows = []
    for k in ks:
        cells = []
        for split in ("test_exact", "test"):
            best = max(METHODS, key=lambda m: s.acc(m, k, split)[0])
            cells.append({m: (f"**{pm(s.acc(m, k, split))}**" if m == best else pm(s.acc(m, k, split))) for m in METHODS})
        rows.append(f"| {k} | " + " | ".join(f"{cells[0][m]} / {cells[1][m]}" for m in METHODS) + " |")
    gain = {k: gap(s.acc("adapt_meta", k, "test_exact")[0], s.acc("adapt", k, "test_exact")[0]) for k in ks}
    inside = [k for k in ks if abs(gain[k]) <= max(s.acc("adapt_meta", k, "test_exact")[1], s.acc("adapt", k, "test_exact")[1])]
    beats = all(s.acc("adapt_meta", k, sp)[0] > s.acc("adapt", k, sp)[0] for k in ks for sp in ("test_exact", "test"))
    meta, hand_p = _policy(s.cells("adapt_meta")[0]), _policy(s.cells("adapt")[0])
    feature = meta["feature_weight"] * statistics.fmean(meta["layer_weights"] or [1.0])
    feature_hand = hand_p["feature_weight"] * statistics.fmean(hand_p["layer_weights"] or [1.0])
    steps_full = s.cells("adapt")[0]["notes"]["policy"]["steps"]
    return f"""{s.note()}| K | hand-set `adapt` | meta-learned `adapt_meta` | random search ({trials} trials × {steps} steps) |
|---|---|---|---|
""" + "\n".join(rows) + f"""

![meta-learned vs hand-set vs random search](benchmarks/results/meta_cifar10/accuracy_vs_shots.png)

Read plainly: the meta-learned policy {"beats the hand-set one at every K on both splits" if beats else "does not beat the hand-set one everywhere"} ({", ".join(f"{g:+.1f}" for g in gain.values())}
points on the exact images{"; at K=" + ", ".join(map(str, inside)) + " the gap is inside one standard deviation" if inside else ""}). Its
gain comes from the global knobs: it lowers alpha from {hand_p['alpha']:.2f} to {meta['alpha']:.2f} and raises the
feature-distillation weight to about {feature / feature_hand:.1f}× the hand-set value ({meta['feature_weight']:.2f} × pair weights near {statistics.fmean(meta['layer_weights']):.2f}). Its per-layer prune ratios on ResNet-56
stay within {span(meta['per_layer_prune'].values(), 2)} and its learning-rate scales within {span(meta['layer_lr_scale'].values(), 2)}, so on this architecture the
per-layer part adds little. A hand-set policy with those two values was not run, so this does not
show that per-task adaptation beats a better fixed recipe. Random search picked the hand-set
configuration in {hand} of {n} cells. Its deficit comes from training each trial for {steps} of the
{steps_full} steps. Adapt-time columns in that run are noisy because other jobs shared the 2 cores. These
numbers come from an earlier shipped policy, meta-trained on digits alone. The policy shipped now saw CIFAR-10, so
`python -m benchmarks.run --suite meta_cifar10` no longer holds the family out. The held-out proof below does."""


def meta_text() -> str:
    s = load("meta_text")
    k, split = 10, "test"
    trials, steps, _, _ = _search(s)
    chosen = [_policy(c) for c in s.cells("adapt_random_search")]
    hand, meta = _policy(s.cells("adapt")[0]), _policy(s.cells("adapt_meta")[0])
    higher_t = all(p["temperature"] > hand["temperature"] for p in chosen)
    return f"""{s.note()}On the held-out **text** family the meta-learned policy **loses**. The setup is AG News, the MiniLM
teacher fine-tuned by recipe, a 3-layer int8 student, K={k}, 3 seeds, {s.data['eval_sets']['ag_news']['test']:,} test sentences, and 150
distillation steps for each method ([table](benchmarks/results/meta_text/results.md)). Hand-set:
{pm(s.acc("adapt", k, split))} %. Meta-learned: {pm(s.acc("adapt_meta", k, split))} %; it lowers alpha to {meta['alpha']:.2f}, which helps CNNs and hurts here.
Random search: **{pm(s.acc("adapt_random_search", k, split))} %** with {trials} trials × {steps} steps. It always picked a learning rate of
{span([p['lr'] * 1e4 for p in chosen])}e-4, against the hand-set {sci(hand['lr'])}{", and a higher temperature" if higher_t else ""}. A policy meta-trained on digits alone
does not carry over to transformers. The hand-set text learning rate was too high; after this
run the text default became 3.5e-4 (the numbers above were made with {sci(hand['lr'])}). The policy shipped
now saw AG News, so `python -m benchmarks.run --suite meta_text` no longer holds the family out. The
held-out proof below does, with CR as its text family."""


def _machine(info: dict) -> str:
    """Where the shipped run ran, from ``policy.json``'s environment and launcher."""
    env = info["environment"]
    threads = env.get("torch_threads", 1)
    threads = f"{threads} thread{'s' if threads != 1 else ''}"
    launch = (f"torchrun, one process a core, {threads} each" if info["command"].startswith("torchrun")
              else f"one process, {threads}")
    return f"on {env['cpu_count']} cores of an {env['cpu_model']} ({launch})"


def meta_shipped() -> str:
    """The shipped policy: what it was meta-trained on and for how long (its ``policy.json``), and how it
    scored against the hand-set policy on its meta-validation families (suite ``meta_shipped``)."""
    from fewshot_kd.files import read_json

    info = read_json(SHIPPED / "policy.json")
    s = load("meta_shipped")
    val = info["validation"]
    families = [t["family"] for t in info["trained_on"]]
    steps = len(info["history"])
    rows = []
    for task in dict.fromkeys(c["task"] for c in s.cells()):
        for k in sorted({c["k"] for c in s.cells(task=task)}):
            for split in s.cells(task=task)[0]["eval"]:
                hand, meta = s.acc("adapt", k, split, task), s.acc("adapt_meta", k, split, task)
                diff = gap(meta[0], hand[0])
                verdict = "tie" if abs(diff) <= max(hand[1], meta[1]) else "ahead" if diff > 0 else "behind"
                rows.append(f"| {task} | {k} | `{split}` | {pm(hand)} | {pm(meta)} | {diff:+.1f} ({verdict}) |")
    return f"""The policy shipped in `fewshot_kd/policies/meta_default/` (`policy="meta"` on the command line) was
meta-trained from a clean commit on {len(families)} families ({", ".join(families)}), meta-validated on
{", ".join(val["families"])} (held out of its training episodes), with

```bash
{info["command"]}
```

(its `--out` folder then copied into `fewshot_kd/policies/meta_default/`) in {info["seconds"] / 60:.1f} minutes {_machine(info)}: {steps} meta-steps of {info["config"]["meta_batch"]} episodes. Meta-validation scored best at meta-step
{val["best_step"]} of {steps}, and that policy is the one shipped. `policy.json` holds the command, config, families,
classes, machine and history. Against the hand-set policy on the meta-validation families (derived student at
0.5 MACs, int8, same shots and seeds; [table](benchmarks/results/meta_shipped/results.md)):

| family | K | split | hand-set | shipped meta policy | gain (beyond one std?) |
|---|---|---|---|---|---|
""" + "\n".join(rows) + f"""

The validation families chose the shipped meta-step, so they are not a clean held-out test: the held-out proof
below is. The shipped policy is *not* adapt()'s default (see the proof). Rerun with
`python -m benchmarks.run --suite meta_shipped`."""


BLOCKS = {"meta-cifar10": meta_cifar10, "meta-text": meta_text, "meta-shipped": meta_shipped}
