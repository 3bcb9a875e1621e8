"""Meta-validation: families held out of a meta-training run, scored while it trains.

Every ``validate_every`` meta-steps the policy is scored (no meta-gradient) on the same
``validate_episodes`` episodes of the validation families: the meta-loss of
:mod:`fewshot_kd.meta.objective` (the compressed student's query cross-entropy plus the
budget penalty) and the query accuracy. The best-scoring policy is what the run ships;
with ``patience`` the run stops after that many scorings without improvement.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch

from fewshot_kd.meta.backends import INNER_BACKENDS
from fewshot_kd.meta.distributed import all_reduce_metrics, my_episodes
from fewshot_kd.meta.episodes import MetaEpisode, make_episode

FIRST_INDEX = 1_000_000_000
"""Validation episodes are numbered from here, so they never coincide with training ones."""
SCORES = ("meta_loss", "query_acc")


def validation_episodes(families, count: int, spec, seed: int) -> list[MetaEpisode]:
    """The fixed validation episodes of a run (a function of ``seed`` only)."""
    return [make_episode(families, FIRST_INDEX + i, spec, seed) for i in range(count)]


def score_policy(net, episodes: list[MetaEpisode], inner, backend: str, rank: int = 0, world: int = 1) -> dict:
    """Mean meta-loss and query accuracy of ``net`` on ``episodes`` (this rank's share,
    all-reduced over ranks); the policy's parameters get no gradient."""
    episode_loss = INNER_BACKENDS.get(backend)
    totals = [0.0] * len(SCORES)
    was_training = net.training
    net.eval()
    for index in my_episodes(list(range(len(episodes))), rank, world):
        with torch.enable_grad():  # the inner loop differentiates the student
            loss, metrics = episode_loss(net, episodes[index], inner)
        del loss
        for i, key in enumerate(SCORES):
            totals[i] += metrics[key]
    net.train(was_training)
    totals = all_reduce_metrics(totals, world)
    return {key: value / len(episodes) for key, value in zip(SCORES, totals)}


@dataclass
class EarlyStopping:
    """The best validation meta-loss so far, the policy that scored it, and how many
    scorings since it improved (``patience`` 0: never stop early)."""

    patience: int = 0
    best_loss: float = math.inf
    best_step: int = 0
    best_state: dict | None = None
    since_best: int = 0
    history: list = field(default_factory=list)

    def update(self, step: int, scores: dict, net) -> None:
        self.history.append({"step": step, **scores})
        if scores["meta_loss"] < self.best_loss:
            self.best_loss, self.best_step, self.since_best = scores["meta_loss"], step, 0
            self.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in net.state_dict().items()})
        else:
            self.since_best += 1

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.since_best >= self.patience

    def state_dict(self) -> dict:
        return {"best_loss": self.best_loss, "best_step": self.best_step, "best_state": self.best_state,
                "since_best": self.since_best, "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.best_loss, self.best_step = float(state["best_loss"]), int(state["best_step"])
        self.best_state, self.since_best = state["best_state"], int(state["since_best"])
        self.history = list(state["history"])

    def record(self, families: list[str], episodes: int, every: int, stopped_early: bool) -> dict:
        """What ``policy.json`` keeps of the validation (JSON-ready)."""
        return {"families": families, "episodes": episodes, "every": every, "patience": self.patience,
                "best_step": self.best_step, "best_meta_loss": None if math.isinf(self.best_loss) else self.best_loss,
                "stopped_early": stopped_early, "history": self.history}
