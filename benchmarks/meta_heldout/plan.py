"""What one leave-one-family-out cell of the proof runs: budgets and methods.

Every method compresses the held-out family's teacher into a derived student at the same
budget, from the same shots and seeds, with at most the hand-set policy's 300 distillation
steps: the hand-set policy, the tuned fixed recipe, random search at adapt time, and the
meta-learned policy (also cut to 100 steps: does it reach the hand-set 300-step accuracy?).
"""

from __future__ import annotations

from pathlib import Path

from fewshot_kd.adapt.policy import Policy

from benchmarks.harness.suite import Suite

BUDGETS = {
    "a": {"macs": 0.5, "bits": 8},  # derived student at half the MACs, int8
    "b": {"macs": 0.35, "bits": 5, "size_ratio": 12},  # 0.35 MACs, 5 bits on average, file >= 12x smaller
}
"""The issue's two budgets, as adapt() targets (MACs as a fraction of the teacher's)."""
BUDGET_POLICY = {"b": {"text": {"mixed_bits": (4, 5)}}}
"""Policy fields a budget sets for every method (and every recipe-search trial) of a modality.
At (b) a text student keeps the teacher's word-embedding table (not pruned), which at a uniform
5 bits alone nearly fills the 12x file: the size fit may lower the least sensitive layers to 4
bits (an average still at most 5), as it may for every method alike."""
FEW_STEPS = 100

ROLES = {"adapt": "hand-set", "adapt_tuned": "tuned fixed", "adapt_random_search": "random search",
         "adapt_meta": "meta-learned", "adapt_meta_100": f"meta-learned, {FEW_STEPS} steps"}
"""Method tag stem -> the name tables show."""


def method_name(role: str, budget: str) -> str:
    """The harness method (``method@tag``) that plays ``role`` at ``budget``."""
    return {"adapt": f"adapt@{budget}", "adapt_tuned": f"adapt@tuned_{budget}",
            "adapt_random_search": f"adapt_random_search@{budget}", "adapt_meta": f"adapt_meta@{budget}",
            "adapt_meta_100": f"adapt_meta@{budget}_{FEW_STEPS}"}[role]


def role_of(method: str) -> tuple[str, str]:
    """``(role, budget)`` of a harness method name made by :func:`method_name`."""
    for budget in BUDGETS:
        for role in ROLES:
            if method_name(role, budget) == method:
                return role, budget
    raise KeyError(method)


def budget_policy(budget: str, text: bool) -> dict:
    """The :data:`BUDGET_POLICY` fields for ``budget`` and a family of this modality."""
    return dict(BUDGET_POLICY.get(budget, {}).get("text" if text else "image", {}))


def tuned_overrides(tune_dir: Path, text: bool) -> dict:
    """The tuned fixed recipe as method options: the Policy fields the search tuned, from the
    policy file for the held-out family's modality (``flip`` stays the family's own)."""
    from fewshot_kd.files import read_json

    info = read_json(tune_dir / "tune.json")
    files = info["files"]
    policy = Policy.load(tune_dir / files["text" if text and "text" in files else "image" if "image" in files else "text"])
    return {name: getattr(policy, name) for name in info["tuned_fields"]}


def _portable(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it (results name no machine's paths)."""
    repo = Path(__file__).resolve().parents[2]
    try:
        return str(Path(path).resolve().relative_to(repo))
    except ValueError:
        return str(path)


def heldout_suite(family: str, meta_policy: Path, tune_dir: Path | None, *, budgets=("a", "b"),
                  shots=(5, 10, 20), seeds=(0, 1, 2), eval_limit: int | None = 2000) -> Suite:
    """The harness suite that scores the four methods on held-out ``family``."""
    methods, options = [], {}
    from fewshot_kd.task_family import find_task_family

    text = find_task_family(family).modality == "text"
    tuned = tuned_overrides(tune_dir, text) if tune_dir is not None else None
    for budget in budgets:
        target = {"target": dict(BUDGETS[budget])}
        for role in ROLES:
            if role == "adapt_tuned" and tuned is None:
                continue
            name = method_name(role, budget)
            methods.append(name)
            options[name] = {**target, **({"policy": _portable(meta_policy)} if role.startswith("adapt_meta") else {}),
                             **(tuned if role == "adapt_tuned" else {}),
                             **({"steps": FEW_STEPS} if role == "adapt_meta_100" else {}),
                             **budget_policy(budget, text)}
    return Suite(name=f"meta_heldout/{family}", tasks=(family,), methods=tuple(methods), shots=tuple(shots),
                 seeds=tuple(seeds), method_options=options,
                 eval_limit={family: eval_limit} if eval_limit else {}, latency_repeats=5,
                 description=f"{family} held out of meta-training: hand-set vs tuned fixed recipe vs random search "
                             f"vs meta-learned, budgets {', '.join(budgets)}")
