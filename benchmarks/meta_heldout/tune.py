"""The tuned fixed recipe: the single :class:`Policy` that scores best on the meta-training
families, found by a hyperparameter search given the meta-training run's wall-clock time.

Every trial runs ``adapt()`` with one candidate policy (the same for every family) on a fixed
set of episodes drawn once from a seeded RNG from the families' episode pools (disjoint from
what their teachers trained on), and scores the mean query accuracy of the deployed students.

Episodes: adapt() needs the teacher's head and the data to have the same classes (it checks
it), so an episode uses **every class** of its family (not an N-way subset; ``family.ways`` is
not used): support = K shots of each class, query = ``query_per_class`` other examples of each
class from the same pool. That is also what the held-out scoring (the benchmark harness) runs.
The student is derived from the family's teacher at ``{**family.task.target, **option}``, one
of ``target_options`` (default: the family's own target), with the Policy fields
``option_policies`` gives that option for the family's modality (a budget's own fields, set over
every trial's policy); episodes cycle through every (family, target) pair, K is spread over them
by a seeded shuffle.

Search space (Policy fields): ``temperature`` [1, 8], ``alpha`` [0.3, 1], ``feature_weight``
log [0.1, 10], ``steps`` {100, 200, 300} (adapt time is tuned too), ``views_per_shot``
{4, 8, 12, 16}, ``qat_steps`` {None (the default: QAT below 8 bits), 0, 50, 100}, images
``crop_padding`` {None (an eighth of the side), 0, 2, 4}, text ``text_word_dropout`` [0, 0.3] and
``text_layers`` (which 3 of the 6 encoder layers: the last 3 or any of the 19 other sets); and
``lr_scale`` log [0.1, 3], a multiplier of the modality's hand-set learning rate (images 1e-3: lr
in [1e-4, 3e-3]; text 3.5e-4: lr in [3.5e-5, 1.05e-3]), so image and text families share one searched point. The saved policy
is a plain Policy per modality (``tuned_policy.json``; with both modalities also
``tuned_policy.text.json``). ``flip`` is not tuned: each family keeps its hand-set value
(mirror images only with ``crop_flip`` augmentation), as the harness's hand-set policy does.

Trial 0 is the hand-set policy, so the search never scores below it; episodes it cannot run (a
budget no searched field can meet) are scored by no trial (``unscored_episodes`` in tune.json). Optuna's TPE sampler
(seeded) when optuna is installed (``pip install fewshot_kd[bench]``), else a seeded random
search over the same space. The clock is checked before every trial; the trial in flight
finishes, so ``seconds_used`` may pass ``seconds`` by one trial. Files in ``out_dir``
(written atomically after every trial): ``trials.jsonl``, ``tune.json``, ``tuned_policy.json``.
A rerun with the same families, episodes and space resumes from ``trials.jsonl``.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from fewshot_kd.adapt import adapt
from fewshot_kd.adapt.policy import Policy, hand_set_for
from fewshot_kd.errors import FewShotKDError, NotEnoughExamplesError
from fewshot_kd.files import atomic_path, read_json, write_json
from fewshot_kd.measure.metrics import evaluate
from fewshot_kd.progress import format_metrics, progress_bar

TUNE_VERSION = 1
LR_NOTE = "lr_scale multiplies the modality's hand-set lr (images 1e-3, text 3.5e-4)"


@dataclass(frozen=True)
class Dim:
    """One searched knob: ``kind`` is ``"float"`` (``low``, ``high``, ``log``) or ``"choice"``."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    choices: tuple = ()

    def to_dict(self) -> dict:
        if self.kind == "choice":
            return {"name": self.name, "choices": list(self.choices)}
        return {"name": self.name, "low": self.low, "high": self.high, "log": self.log}


TEXT_LAYER_CHOICES = (None, *(",".join(map(str, c)) for c in itertools.combinations(range(6), 3) if c != (3, 4, 5)))
"""Which 3 of MiniLM's 6 encoder layers a text student keeps (the text tasks ask for 3): ``None`` is the
hand-set last 3, every other set of 3 is a string like ``"1,3,5"`` (a sampler's choices are plain values)."""


def search_space(image: bool, text: bool) -> list[Dim]:
    """The knobs searched for families of these modalities (module docstring)."""
    space = [Dim("temperature", "float", 1.0, 8.0), Dim("alpha", "float", 0.3, 1.0),
             Dim("feature_weight", "float", 0.1, 10.0, log=True), Dim("lr_scale", "float", 0.1, 3.0, log=True),
             Dim("steps", "choice", choices=(100, 200, 300)), Dim("views_per_shot", "choice", choices=(4, 8, 12, 16)),
             Dim("qat_steps", "choice", choices=(None, 0, 50, 100))]
    if image:
        space.append(Dim("crop_padding", "choice", choices=(None, 0, 2, 4)))
    if text:
        space.append(Dim("text_word_dropout", "float", 0.0, 0.3))
        space.append(Dim("text_layers", "choice", choices=TEXT_LAYER_CHOICES))
    return space


def hand_set_params(space: list[Dim]) -> dict:
    """The hand-set policy as a point of ``space`` (its lr is ``lr_scale = 1``)."""
    base = hand_set_for(False)
    return {d.name: 1.0 if d.name == "lr_scale" else getattr(base, d.name) for d in space}


def policy_for(params: dict, text: bool, augment: str = "crop_flip", name: str = "tuned fixed") -> Policy:
    """The Policy a searched point means for a family of this modality and augmentation."""
    base = hand_set_for(text)
    fields = {k: v for k, v in params.items() if k not in ("lr_scale", "text_layers")}
    if text and params.get("text_layers") is not None:
        fields["text_layers"] = tuple(int(i) for i in params["text_layers"].split(","))
    return replace(base, name=name, flip=augment == "crop_flip" if not text else base.flip,
                   lr=base.lr * params.get("lr_scale", 1.0), **fields)


@dataclass
class Episode:
    family: object
    index: int
    shots: int
    target: dict
    seed: int
    support: object
    query: object
    policy_fields: dict = field(default_factory=dict)

    def record(self) -> dict:
        return {"index": self.index, "family": self.family.name, "shots": self.shots, "target": self.target,
                "seed": self.seed, "classes": self.support.num_classes, "support": len(self.support),
                "query": len(self.query), **({"policy": self.policy_fields} if self.policy_fields else {})}


@dataclass
class TuneResult:
    """The winner (``policy``: for the families' first modality, images first; ``policies``:
    per modality), every trial, and where the files are."""

    policy: Policy
    policies: dict
    best: dict
    trials: list[dict]
    sampler: str
    seconds_budget: float
    seconds_used: float
    episodes: list[dict]
    out_dir: Path
    info: dict = field(default_factory=dict)

    def policy_for(self, text: bool) -> Policy:
        return self.policies["text" if text else "image"]


def draw_episodes(families, shots, query_per_class: int, target_options, seed: int, episodes: int | None,
                  option_policies: list[dict] | None = None) -> list[Episode]:
    """The fixed episodes every trial is scored on (a function of ``seed`` only).
    ``option_policies[i]``: ``{modality: Policy fields}`` for ``target_options[i]``."""
    rng = random.Random(f"fewshot_kd.meta_heldout.tune:{seed}")
    options = target_options if target_options else [{}]
    fields = option_policies if option_policies else [{}] * len(options)
    if len(fields) != len(options):
        raise FewShotKDError(f"option_policies has {len(fields)} entries for {len(options)} target options")
    pairs = [(f, {**(f.task.target or {}), **opt}, dict(extra.get("text" if f.text else "image", {})))
             for f in families for opt, extra in zip(options, fields)]
    count = episodes if episodes is not None else max(len(pairs), len(shots))
    ks = [shots[i % len(shots)] for i in range(count)]
    rng.shuffle(ks)
    out = []
    for i in range(count):
        family, target, policy_fields = pairs[i % len(pairs)]
        k, episode_seed = ks[i], rng.randrange(2**31)
        pool = family.train
        counts = torch.bincount(pool.labels, minlength=pool.num_classes)
        if int(counts.min()) < k + query_per_class:
            c = int(counts.argmin())
            raise NotEnoughExamplesError(
                f"{family.name}: an episode needs {k} shots + {query_per_class} query = {k + query_per_class} "
                f"examples of every class, the episode pool has {int(counts[c])} of class {pool.class_names[c]!r}; "
                f"lower shots or query_per_class")
        support_idx = pool.few_shot_indices(k, episode_seed)
        taken = torch.zeros(len(pool), dtype=torch.bool)
        taken[support_idx] = True
        generator = torch.Generator().manual_seed(episode_seed + 1)
        query_idx = []
        for c in range(pool.num_classes):
            rest = torch.nonzero((pool.labels == c) & ~taken).flatten()
            query_idx.append(rest[torch.randperm(len(rest), generator=generator)[:query_per_class]])
        out.append(Episode(family, i, k, target, episode_seed,
                           pool.subset(support_idx, f"{family.name}/tune-{i}-support"),
                           pool.subset(torch.cat(query_idx), f"{family.name}/tune-{i}-query"), policy_fields))
    return out


class _Sampler:
    """Optuna TPE (seeded) when importable, else seeded random search; both over ``space``."""

    def __init__(self, space: list[Dim], seed: int, use_optuna: bool | None):
        self.space = space
        self.optuna = None
        if use_optuna is not False:
            try:
                import optuna
            except ImportError:
                if use_optuna:
                    raise
            else:
                optuna.logging.set_verbosity(optuna.logging.WARNING)
                self.optuna = optuna
                self.study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
                self.distributions = {d.name: self._distribution(d) for d in space}
        self.rng = random.Random(f"fewshot_kd.meta_heldout.random:{seed}")
        self.name = f"optuna {self.optuna.__version__} TPESampler(seed={seed})" if self.optuna else f"random(seed={seed})"

    def _distribution(self, d: Dim):
        dists = self.optuna.distributions
        if d.kind == "choice":
            return dists.CategoricalDistribution(d.choices)
        return dists.FloatDistribution(d.low, d.high, log=d.log)

    def ask(self, fixed: dict | None = None) -> tuple[object, dict]:
        if self.optuna is not None:
            if fixed is not None:
                self.study.enqueue_trial(fixed)
            trial = self.study.ask(self.distributions)
            return trial, dict(trial.params)
        if fixed is not None:
            return None, dict(fixed)
        params = {}
        for d in self.space:
            if d.kind == "choice":
                params[d.name] = self.rng.choice(d.choices)
            elif d.log:
                params[d.name] = math.exp(self.rng.uniform(math.log(d.low), math.log(d.high)))
            else:
                params[d.name] = self.rng.uniform(d.low, d.high)
        return None, params

    def tell(self, trial, score: float | None) -> None:
        if self.optuna is not None:
            states = self.optuna.trial.TrialState
            if score is None:
                self.study.tell(trial, state=states.FAIL)
            else:
                self.study.tell(trial, score)

    def replay(self, params: dict, score: float | None) -> None:
        """A trial of an earlier run (resume): optuna learns it; random search draws past it."""
        if self.optuna is not None:
            state = self.optuna.trial.TrialState.COMPLETE if score is not None else self.optuna.trial.TrialState.FAIL
            self.study.add_trial(self.optuna.trial.create_trial(
                params=params, distributions=self.distributions, value=score, state=state))


def _run_trial(params: dict, episodes: list[Episode], steps_scale: float) -> dict:
    accuracies, adapt_seconds, errors = [], [], []
    for ep in episodes:
        policy = replace(policy_for(params, ep.family.text, ep.family.task.augment, name="tune trial"), **ep.policy_fields)
        if steps_scale != 1.0:
            policy = replace(policy, steps=max(1, round(policy.steps * steps_scale)),
                             qat_steps=None if policy.qat_steps is None else round(policy.qat_steps * steps_scale))
        try:
            result = adapt(ep.family.teacher, None, shots=ep.shots, data=ep.support, target=ep.target, policy=policy,
                           seed=ep.seed, progress=False)
        except FewShotKDError as error:  # e.g. a budget this policy cannot meet: the trial fails
            errors.append(f"episode {ep.index}: {error}")
            accuracies.append(None)
            continue
        accuracies.append(evaluate(result.student, ep.query)["accuracy"])
        adapt_seconds.append(result.report["adapt_seconds"])
    return {"score": None, "accuracies": accuracies, "adapt_seconds": adapt_seconds, "errors": errors}


def unscored_episodes(trials: list[dict]) -> list[int]:
    """Episodes the hand-set trial (trial 0) could not run: budgets no searched field can meet (a
    text student whose frozen embedding table alone outgrows the file budget), scored by no trial."""
    return [i for i, a in enumerate(trials[0]["accuracies"]) if a is None] if trials else []


def rescore_(trials: list[dict]) -> list[dict]:
    """Every trial's score: its mean accuracy on the episodes the hand-set trial ran; ``None``
    (failed) if it could not run one of them, or if the hand-set trial ran none."""
    skipped = set(unscored_episodes(trials))
    for row in trials:
        kept = [a for i, a in enumerate(row["accuracies"]) if i not in skipped]
        row["score"] = None if not kept or any(a is None for a in kept) else sum(kept) / len(kept)
    return trials


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))


def _read_trials(path: Path, key: dict) -> list[dict]:
    """Earlier trials of the same search (same ``key``: episodes, space, seed, steps_scale)."""
    if not path.exists():
        return []
    tune = path.parent / "tune.json"
    if not tune.exists() or read_json(tune).get("key") != json.loads(json.dumps(key, default=str)):
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            break  # a torn last line (cannot happen with atomic writes, but never trust it)
    return rows


def tune_fixed_policy(families: list, *, seconds: float, seed: int = 0, shots=(5, 10, 20), query_per_class: int = 10,
                      target_options: list[dict] | None = None, option_policies: list[dict] | None = None,
                      out_dir: Path, progress: bool = True,
                      episodes: int | None = None, steps_scale: float = 1.0, use_optuna: bool | None = None,
                      resume: bool = True, max_trials: int | None = None) -> TuneResult:
    """Search one fixed Policy for ``families`` (``MetaFamily`` objects) in ``seconds`` of wall time.

    ``episodes``: how many (default: one per (family, target) pair, at least one per K).
    ``option_policies``: per target option, ``{modality: Policy fields}`` every trial runs that
    option's episodes with (the saved policies do not carry them: they belong to the budget).
    ``steps_scale``: distillation and QAT steps run = the searched value times this (tests
    and smoke runs; the recorded and saved values are the searched ones). ``use_optuna``:
    ``None`` uses it when importable, ``False`` forces random search. ``max_trials``: stop
    after this many trials as well. ``resume``: continue an identical search from ``out_dir``.
    """
    if not families:
        raise FewShotKDError("tune_fixed_policy needs at least one family")
    out_dir = Path(out_dir)
    start = time.perf_counter()
    shots = tuple(shots)
    has_text = any(f.text for f in families)
    has_image = any(not f.text for f in families)
    space = search_space(has_image, has_text)
    modalities = ["image"] * has_image + ["text"] * has_text
    eps = draw_episodes(families, shots, query_per_class, target_options, seed, episodes, option_policies)
    records = [e.record() for e in eps]
    sampler = _Sampler(space, seed, use_optuna)
    key = {"version": TUNE_VERSION, "seed": seed, "episodes": records, "space": [d.to_dict() for d in space],
           "steps_scale": steps_scale, "sampler": "optuna" if sampler.optuna else "random"}
    trials = rescore_(_read_trials(out_dir / "trials.jsonl", key) if resume else [])
    for row in trials:
        sampler.replay(row["params"], row["score"])
        if sampler.optuna is None and row["trial"] > 0:
            sampler.ask()  # keep the random stream where the earlier run left it
    spent_before = sum(row["seconds"] for row in trials)

    def used() -> float:
        return spent_before + time.perf_counter() - start

    def best_trial():
        done = [t for t in trials if t["score"] is not None]
        return max(done, key=lambda t: (t["score"], -t["trial"])) if done else None

    def save(finished: bool) -> TuneResult:
        best = best_trial()
        params = best["params"] if best else hand_set_params(space)
        policies = {}
        if has_image:
            policies["image"] = policy_for(params, False, "crop_flip")
        if has_text:
            policies["text"] = policy_for(params, True)
        main = policies["image" if has_image else "text"]
        _write_jsonl(out_dir / "trials.jsonl", trials)
        main.save(out_dir / "tuned_policy.json")
        if has_image and has_text:
            policies["text"].save(out_dir / "tuned_policy.text.json")
        info = {
            "key": key, "families": [{"name": f.name, "modality": "text" if f.text else "image",
                                      "augment": f.task.augment, "classes": f.train.num_classes} for f in families],
            "seconds_budget": seconds, "seconds_used": used(), "sampler": sampler.name, "seed": seed,
            "shots": list(shots), "query_per_class": query_per_class, "target_options": target_options,
            "option_policies": option_policies,
            "steps_scale": steps_scale, "trials": len(trials), "finished": finished,
            "best_trial": best, "hand_set_score": trials[0]["score"] if trials else None,
            "unscored_episodes": unscored_episodes(trials), "hand_set_errors": trials[0]["errors"] if trials else [],
            "episodes": records, "space": [d.to_dict() for d in space], "lr": LR_NOTE,
            "tuned_fields": [d.name if d.name != "lr_scale" else "lr" for d in space],
            "not_tuned": {"flip": "per family: mirror images only with crop_flip augmentation (saved: True)"},
            "episode_classes": "every class of the family (adapt() needs the teacher's classes)",
            "files": {m: f"tuned_policy{'' if m == ('image' if has_image else 'text') else '.text'}.json"
                      for m in policies},
        }
        write_json(out_dir / "tune.json", info)
        return TuneResult(main, policies, best, list(trials), sampler.name, seconds, used(), records, out_dir, info)

    with progress_bar(progress) as bar:
        task = bar.add_task("tuning fixed recipe", total=max(seconds, 1e-9), metrics="")
        while not trials or (used() < seconds and (max_trials is None or len(trials) < max_trials)):
            first = not trials
            handle, params = sampler.ask(hand_set_params(space) if first else None)
            tick = time.perf_counter()
            outcome = _run_trial(params, eps, steps_scale)
            trials.append({"trial": len(trials), "hand_set": first, "params": params,
                           "lr": {m: policy_for(params, m == "text").lr for m in modalities},
                           **outcome, "seconds": time.perf_counter() - tick})
            outcome = rescore_(trials)[-1]
            sampler.tell(handle, outcome["score"])
            save(finished=False)
            best = best_trial()
            bar.update(task, completed=min(used(), seconds), metrics=format_metrics(
                trials=len(trials), best=best["score"] if best else float("nan"),
                last=outcome["score"] if outcome["score"] is not None else "failed"))
    return save(finished=True)
