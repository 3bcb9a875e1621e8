"""Which encoder layers a shallower text student keeps, as a learned and differentiable choice.

Every transformer block ``b`` of the student (a full copy of the teacher's encoder) gets a
gate: its output becomes ``h + g_b (block(h) - h)``, so ``g_b = 1`` runs the block and
``g_b = 0`` skips it, exactly as the deployed :func:`~fewshot_kd.models.text.truncate_layers`
drops it. The policy scores every block; soft gates ``sigmoid(score_b + c)`` with the shift
``c`` bisected so that they sum to the number of layers kept (the implicit gradient of
:func:`~fewshot_kd.meta.relax.project_ratios`) carry the meta-gradient, while the forward pass
uses the hard choice, the top-scored blocks (straight-through), so the inner loop trains the
student adapt() will derive. A prior of :data:`PRIOR_STEP` per rank makes an untrained policy
keep what adapt() keeps without a choice: the last blocks (``"last"``: text classifiers) or every
other block (``"spread"``: extractive QA and causal LMs, DistilBERT / DistilGPT-2 style); the
block head's scores are scaled by :data:`HEAD_SCALE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.nn as nn

from fewshot_kd.meta.relax import project_ratios

PRIOR_STEP = 1.0
"""The depth prior's rise per block: with a zero head the last blocks win, by one unit of score each."""
HEAD_SCALE = 4.0
"""The block head's output is multiplied by this before the prior is added: Adam moves every weight by
about its learning rate a step, so a run of tens of meta-steps at the outer rate (3e-3) could otherwise
not move a block's score past its neighbour's (in effect, a 4x learning rate for the block head)."""


BLOCK_PRIORS = ("last", "spread")
"""Which blocks an untrained policy keeps: the deepest, or every other one from the first."""


def check_block_prior(kind: str) -> str:
    """``kind`` if it is one of :data:`BLOCK_PRIORS`, else a ``ValueError`` naming them."""
    if kind not in BLOCK_PRIORS:
        raise ValueError(f"unknown block prior {kind!r}; choose one of {BLOCK_PRIORS}")
    return kind


def depth_prior(blocks: int, like: torch.Tensor, kind: str = "last") -> torch.Tensor:
    """``PRIOR_STEP`` x block ``b``'s rank: ``"last"`` ranks by depth (an untrained policy keeps
    the deepest blocks); ``"spread"`` ranks the odd blocks below the even ones, each by depth (it
    keeps blocks 0, 2, 4, ..., then the deepest odd ones)."""
    check_block_prior(kind)
    order = list(range(blocks)) if kind == "last" else list(range(1, blocks, 2)) + list(range(0, blocks, 2))
    rank = torch.empty(blocks, dtype=like.dtype, device=like.device)
    rank[order] = torch.arange(blocks, dtype=like.dtype, device=like.device)
    return PRIOR_STEP * rank


def top_blocks(scores: torch.Tensor, keep: int) -> list[int]:
    """The ``keep`` highest-scored blocks, in increasing order (ties go to the deeper block)."""
    values = scores.detach().tolist()
    order = sorted(range(len(values)), key=lambda b: (-values[b], -b))
    return sorted(order[:keep])


def last_gates(blocks: int, keep: int, device=None) -> torch.Tensor:
    """Hard gates keeping the last ``keep`` of ``blocks`` (what adapt() derives without a choice)."""
    return torch.tensor([1.0 if b >= blocks - keep else 0.0 for b in range(blocks)], device=device)


def keep_gates(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Gates that are exactly 1 on the :func:`top_blocks` and 0 elsewhere in value, with the
    gradient of soft gates ``sigmoid(scores + c)`` that sum to ``keep`` (straight-through)."""
    blocks = scores.numel()
    if not 1 <= keep <= blocks:
        raise ValueError(f"cannot keep {keep} of {blocks} layers")
    # project_ratios shifts ratios until a fraction that falls as they rise meets its target:
    # the ratios here are the blocks' chances of being skipped, the fraction the share kept
    soft = 1 - project_ratios(-scores, lambda skip: 1 - skip.mean(), keep / blocks, max_ratio=1.0)
    hard = torch.zeros_like(soft)
    hard[top_blocks(scores.detach(), keep)] = 1.0
    return hard + soft - soft.detach()


def _blend(output, hidden: torch.Tensor, gate: torch.Tensor):
    if isinstance(output, tuple):
        return (hidden + gate * (output[0] - hidden),) + tuple(output[1:])
    return hidden + gate * (output - hidden)


@contextmanager
def gated_blocks(blocks: Sequence[nn.Module], gates: torch.Tensor, skip_dropped: bool = False):
    """Run every block ``b`` of ``blocks`` as ``h + gates[b] (block(h) - h)`` inside the context
    (its ``forward`` is wrapped on the instance, so parameter names and ``functional_call`` are
    unchanged). With ``skip_dropped``, a block whose gate is 0 returns its input without
    running (no gradient reaches its gate then); the first call of each block always runs,
    to learn the shape of its output."""
    originals = []
    kept = [float(g.detach()) != 0.0 for g in gates]
    for index, block in enumerate(blocks):
        original = block.forward
        tuple_output: list[bool] = []

        def forward(hidden_states, *args, _original=original, _index=index, _tuple=tuple_output, **kwargs):
            if skip_dropped and not kept[_index] and _tuple:
                return (hidden_states,) if _tuple[0] else hidden_states
            output = _original(hidden_states, *args, **kwargs)
            if not _tuple:
                _tuple.append(isinstance(output, tuple))
            return _blend(output, hidden_states, gates[_index].to(hidden_states.dtype))

        block.forward = forward
        originals.append(block)
    try:
        yield
    finally:
        for block in originals:
            del block.forward  # back to the class's forward


def kept_names(model: nn.Module, kept: Sequence[int]):
    """A function mapping a module name of ``model`` (a full text encoder) to its name in the
    student keeping only blocks ``kept`` (block ``kept[i]`` becomes block ``i``), or to ``None``
    for a module inside a skipped block; names outside the blocks are unchanged."""
    from fewshot_kd.models._text_layers import block_names

    prefixes = block_names(model)
    position = {b: i for i, b in enumerate(kept)}

    def rename(name: str) -> str | None:
        for b, prefix in enumerate(prefixes):
            if name == prefix or name.startswith(prefix + "."):
                if b not in position:
                    return None
                owner = prefix.rpartition(".")[0]
                return f"{owner}.{position[b]}{name[len(prefix):]}"
        return name

    return rename
