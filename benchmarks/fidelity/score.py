"""Score fixed policies by the meta objective of whichever ``fewshot_kd`` is importable.

Run as a script so that an older ``fewshot_kd`` (a worktree on ``PYTHONPATH``) can be scored
with its own inner loop: ``python benchmarks/fidelity/score.py SPEC.json OUT.json``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

try:
    from benchmarks.fidelity.policies import FixedPolicy
except ImportError:  # run as a script next to policies.py
    from policies import FixedPolicy


def score_meta(spec: dict) -> list[dict]:
    """Mean meta-loss (and query accuracy) of every policy over the spec's episodes."""
    import torch

    from fewshot_kd.meta.episodes import EpisodeSpec, load_family, make_episode
    from fewshot_kd.meta.objective import InnerConfig, episode_loss

    torch.manual_seed(0)
    family = load_family(spec["family"], spec["ways"], spec.get("data_root"))
    episode_spec = EpisodeSpec(shots=(spec["shots"],), query_per_class=spec["query_per_class"], views=spec["views"],
                               macs_range=(spec["macs"], spec["macs"]), bits=(spec["bits"],))
    episodes = [make_episode([family], i, episode_spec, spec["seed"]) for i in range(spec["episodes"])]
    config = InnerConfig(**spec.get("inner", {}))
    rows = []
    for policy in spec["policies"]:
        tick = time.perf_counter()
        losses, accs = [], []
        for episode in episodes:
            loss, metrics = episode_loss(FixedPolicy(policy, spec["base_lr"]), episode, config)
            losses.append(float(loss))
            accs.append(metrics["query_acc"])
        rows.append({"meta_loss": statistics.fmean(losses), "query_acc": statistics.fmean(accs),
                     "episode_losses": losses, "seconds": time.perf_counter() - tick})
        print(json.dumps({"policy": len(rows) - 1, **rows[-1]}), flush=True)
    return rows


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    with open(sys.argv[2], "w") as f:
        json.dump(score_meta(spec), f)
