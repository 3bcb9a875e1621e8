"""README blocks for the suites beyond classification: causal-LM perplexity (`lm`) and extractive QA (`qa`)."""

from __future__ import annotations

from fewshot_kd.errors import FewShotKDError
from fewshot_kd.files import read_json

from benchmarks.readme.fmt import commits_phrase, pm
from benchmarks.readme.source import RESULTS_DIR, DirtyResults

LM_METHODS = {"adapt": "adapt(), K sequences + 200 unlabelled", "hinton_kd": "Hinton KD, shots only",
              "truncated": "every other block, untrained", "truncated_shots": "cross-entropy on the shots alone",
              "adapt@meta": "adapt() with the meta-learned LM policy, K sequences + 200 unlabelled"}


def _load(name: str) -> tuple[dict, list[dict], str]:
    """The suite's results, its summary rows and the commits that made them (clean only)."""
    path = RESULTS_DIR / name / "results.json"
    if not path.is_file():
        raise FewShotKDError(f"{path} is missing: run `python -m benchmarks.run --suite {name}`")
    data = read_json(path)
    if not data.get("clean"):
        raise DirtyResults(f"{name}: refusing to render results from an uncommitted tree")
    commits = sorted({c["commit"][:12] for c in data["cells"]})  # the runs that made the cells, not every invocation
    made = f"from {commits_phrase(commits)} (clean tree)"
    return data, list(data["summary"]), made


def lm() -> str:
    _, summary, made = _load("lm")
    rows = {r["method"]: r for r in summary}
    table = [f"| {m} ({LM_METHODS[m]}) | {r['k']} | {pm(r['perplexity'], 3)} | "
             f"{r['ratio_to_teacher'][0]:.3f} | {r['test_ratio_to_teacher'][0]:.3f} | {r['within_target']}/{r['seeds']} | "
             f"{r['compression_bytes']:.2f} |" for m, r in rows.items() if m in LM_METHODS]
    teacher = rows["teacher"]
    return (f"Tiny Shakespeare, byte-level GPT-2 teacher (`tinyshakespeare-gpt2`, validation perplexity "
            f"{teacher['perplexity'][0]:.3f}), half-depth int8 students, {teacher['seeds']} seeds, {made}; "
            f"[table](benchmarks/results/lm/results.md):\n\n"
            "| method | K | validation perplexity | × teacher's | test × teacher's | within 15 % | × bytes |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(table) +
            f"\n\nThe untrained half-depth copy is already within 15 % "
            f"({rows['truncated']['ratio_to_teacher'][0]:.3f}x), so the issue's target says little here; adapt() "
            f"closes most of what is left. The LM policy's alpha was chosen on the validation split (seed 0); "
            f"the test column was looked at by nothing." + _meta_verdict(rows))


def _meta_verdict(rows: dict) -> str:
    """How adapt() with the meta-learned LM policy compares with the hand-set adapt(), by the one-std rule."""
    if "adapt@meta" not in rows:
        return ""
    meta, hand = rows["adapt@meta"]["perplexity"], rows["adapt"]["perplexity"]
    verdict = "beats" if meta[0] < hand[0] - hand[1] else ("loses to" if meta[0] > hand[0] + hand[1] else "ties")
    return (f" Deployed, the meta-learned LM policy (the `meta-lm` block) **{verdict}** the hand-set policy: "
            f"validation perplexity {pm(meta, 3)} against {pm(hand, 3)} (one-std rule, {rows['adapt@meta']['seeds']} "
            f"seeds).")


_QA_TRAINING = {"truncated_shots": "cross-entropy on the shots alone", "hinton_kd": "Hinton KD, shots only",
                "adapt": "adapt(), K questions + {unlabelled:,} unlabelled"}


def _qa_label(cell: dict) -> str:
    """What a QA row's student keeps and how it was trained, read from one of its cells."""
    notes = cell["notes"]
    layers = notes["target"]["layers"]
    kept = layers if isinstance(layers, str) else "layers " + ", ".join(map(str, layers))
    training = _QA_TRAINING[cell["method"].partition("@")[0]].format(unlabelled=notes["unlabelled_questions"])
    hints = notes["policy"].get("feature_weight", 0.0)  # cells made before hints existed have none
    training += f" + hidden-state hints (weight {hints:g})" if hints else ""
    return f"{kept}; {training}; {notes['policy']['steps']} steps"


TARGET_K = 128
"""The K of the issue's QA target (128 labelled questions)."""


def _other_ks(students: list[dict]) -> str:
    """Which rows were also run at K other than the target's."""
    others = sorted({r["k"] for r in students} - {TARGET_K})
    if not others:
        return f"Only K={TARGET_K} was run"
    parts = []
    for k in others:
        methods = ", ".join(f"`{r['method']}`" for r in students if r["k"] == k)
        parts.append(f"K={k} for {methods}")
    return f"Every row was run at K={TARGET_K}; also {'; '.join(parts)}"


def qa() -> str:
    data, summary, made = _load("qa")
    teacher = next(r for r in summary if r["method"] == "teacher")
    ref = next(iter(data["teacher_reference"].values()))
    first = {c["method"]: c for c in reversed(data["cells"])}
    order = list(dict.fromkeys(r["method"] for r in summary))
    students = sorted((r for r in summary if r["method"].partition("@")[0] in _QA_TRAINING),
                      key=lambda r: (order.index(r["method"]), r["k"]))
    table = [f"| `{r['method']}` ({_qa_label(first[r['method']])}) | {r['k']} | {r['seeds']} | {pm(r['exact_match'])} | "
             f"{pm(r['f1'])} | {pm(r['f1_gap'])} | {r['within_target']}/{r['seeds']} | {r['compression_bytes']:.2f} | "
             f"{r['compression_macs']:.2f} |" for r in students]
    at_target = {r["method"]: r for r in students if r["k"] == TARGET_K}
    adapt = at_target["adapt"]
    best = min(at_target, key=lambda m: at_target[m]["f1_gap"][0])
    minutes = [c["wall_seconds"] / 60 for c in data["cells"] if "wall_seconds" in c]
    single = [f"{r['method']}` at K={r['k']}" for r in students if r["seeds"] == 1]
    return (f"SQuAD v1.1 split by article, MiniLM-L6 QA teacher (`squad-minilm`: EM {teacher['exact_match'][0]:.1f}, "
            f"F1 {teacher['f1'][0]:.1f} on {ref['questions']} fixed questions of the {ref['articles']} evaluation "
            f"articles, windows of {ref['max_length']} tokens, stride {ref['doc_stride']}), 3-layer int8 students, "
            f"{made}; [table](benchmarks/results/qa/results.md):\n\n"
            "| method (layers kept; training; steps) | K | seeds | EM | F1 | teacher F1 − F1 | within 5 F1 | × bytes | × MACs |\n"
            "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(table) +
            f"\n\nAt K={TARGET_K}, the `adapt` row is {_qa_gap(adapt)}"
            + (f" The closest row, `{best}`, is {_qa_gap(at_target[best])}" if best != "adapt" else "")
            + f" {_qa_teacher_note(ref)} {_other_ks(students)} ({min(minutes):.0f}-{max(minutes):.0f} minutes a "
            f"cell here)" + (f", and {', '.join(f'`{m}' for m in single)} with one seed" if single else "")
            + "; the full grid is `python -m benchmarks.run --suite qa`.")


def _qa_gap(row: dict) -> str:
    """How far a row's F1 is below the teacher's, against the 5-F1 target."""
    gap = row["f1_gap"][0]
    return (f"{gap:.1f} F1 below its teacher on average over {row['seeds']} seeds "
            f"({'inside' if gap <= 5 else 'outside'} the 5-F1 target; {row['within_target']} of {row['seeds']} seeds "
            f"within it).")


def _qa_teacher_note(reference: dict) -> str:
    """How the QA teacher was made (its recipe, as the suite's run recorded it), and whether it is weak enough to say so."""
    source = reference.get("teacher")
    if not source or "recipe" not in source:
        raise FewShotKDError("qa results name no teacher recipe: rerun `python -m benchmarks.run --suite qa` (it resumes)")
    train = source["recipe"]["train"]
    made = (f"The teacher was fine-tuned by recipe on {train['max_questions']:,} questions of the teacher articles "
            f"({train['epochs']} epoch{'s' if train['epochs'] > 1 else ''}).")
    return made + (" It is weak (F1 under 30): read the gap with that in mind." if reference["f1"] < 30 else "")


def _meta_episodes(name: str) -> str:
    """A meta policy against fixed recipes on episodes its run never drew (``benchmarks.<name>_episodes``)."""
    from benchmarks.meta_qa_episodes import table

    path = RESULTS_DIR / name / "results.json"
    if not path.is_file():
        raise FewShotKDError(f"{path} is missing: run `python -m benchmarks.{name}_episodes --policy "
                             f"benchmarks/results/{name}/policy`")
    data = read_json(path)
    env, c = data["environment"], data["config"]
    if env.get("git_dirty") or not env.get("git_commit"):
        raise DirtyResults(f"{name}: refusing to render results from an uncommitted tree")
    search = c.get("search")
    searched = "" if not search else (
        f" The random search, `{search['command']}` ({search['minutes']:.0f} minutes, commit "
        f"`{str(search['commit'])[:12]}`), scored its trials on the run's first training episodes and kept "
        f"{_recipe(search['best'])}.")
    return (f"`{c['policy_command']}` ran {c['policy_steps']} meta-steps in {c['policy_minutes']:.0f} minutes on this "
            f"CPU (commit `{str(c['policy_commit'])[:12]}`); the policy is in `{c['policy']}`.{searched} Scored on "
            f"{c['episodes']} episodes that run never drew (K from {', '.join(map(str, c['shots']))}, "
            f"{c['inner_steps']} inner steps, int{c['bits']}), by `{data['command']}` at commit "
            f"`{env['git_commit'][:12]}` ([results](benchmarks/results/{name}/results.md)):\n\n" + table(data))


def _recipe(recipe: dict) -> str:
    blocks = {"spread": "every other block", "last": "the last blocks", "first": "the first blocks"}[recipe["blocks"]]
    return f"temperature {recipe['temperature']:g}, alpha {recipe['alpha']:g}, lr {recipe['lr']:g} on {blocks}"


def meta_qa() -> str:
    """The QA meta policy against fixed recipes on episodes its run never drew."""
    return _meta_episodes("meta_qa")


def meta_lm() -> str:
    """The LM meta policy against fixed recipes (and a same-compute random search) on unseen episodes."""
    return _meta_episodes("meta_lm")


BLOCKS = {"lm": lm, "qa": qa, "meta-qa": meta_qa, "meta-lm": meta_lm}
