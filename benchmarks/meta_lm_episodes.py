"""An LM meta-learned policy against fixed recipes, in the meta objective, on LM episodes its run
never drew: ``python -m benchmarks.meta_lm_episodes --policy runs/meta_lm``.

Every recipe runs the same inner loop on the same episodes (K labelled sequences of 128 tokens,
200 unlabelled ones, 16 query sequences; :mod:`fewshot_kd.meta.token_episodes`) and is scored by
the query next-token cross-entropy (the log of the query perplexity) and the share of next tokens
ranked first. The fixed recipes are adapt()'s LM hand-set knobs (temperature 2, alpha 0.9, lr
1e-3, alpha chosen on the validation split) on every other block (adapt()'s LM default) and on
the last half, and alpha 1.0 (the other end of that choice) on every other block. The episodes
are numbered from meta-validation's first index, so they differ from every training episode;
their sequences come from the same pool (the train split), so single sequences may recur.
``--search benchmarks/results/meta_lm/search.json`` adds the best recipe of a
:mod:`benchmarks.recipe_search` run.
Writes ``results.json`` and ``results.md`` (command, commit, machine, config) to
``benchmarks/results/meta_lm/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fewshot_kd.adapt.lm.policy import LMPolicy

from benchmarks.meta_qa_episodes import main as score_episodes

RESULTS = Path(__file__).resolve().parent / "results" / "meta_lm"
HAND = LMPolicy()
_KNOBS = {"temperature": HAND.temperature, "alpha": HAND.alpha, "lr": HAND.lr}
RECIPES = {
    "hand-set, every other block": {**_KNOBS, "blocks": "spread"},
    "hand-set, last half": {**_KNOBS, "blocks": "last"},
    "hand-set with alpha 1.0, every other block": {**_KNOBS, "alpha": 1.0, "blocks": "spread"},
}
LABELS = {"title": "LM meta policy against fixed recipes on unseen LM episodes",
          "metric": "query next-token CE", "accuracy": "query next-token accuracy"}


def main(argv=None) -> int:
    return score_episodes(argv, prog="benchmarks.meta_lm_episodes", task="tinyshakespeare-gpt2", recipes=RECIPES,
                          base_lr=HAND.lr, out=RESULTS, labels=LABELS, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
