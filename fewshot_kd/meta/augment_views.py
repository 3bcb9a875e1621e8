"""The inner loop's support views at the policy's augmentation strength ``s``, differentiably.

Adapt() turns ``s`` into a crop padding (``round(s * hand-set padding)``, a whole number of
pixels: no gradient). The inner loop relaxes it: every view is ``a + s * (v - a)``, between its
unshifted anchor ``a`` (the same mirror image) and the hand-set shifted copy ``v``; written as
``v + (s - 1) * (v - a)``, ``s = 1`` gives the episode's views bit for bit. ``s = 0`` is no
shift, as a padding of 0; ``s > 1`` extrapolates along the shift, as a larger padding moves
further. The frozen teacher runs again on the blended views, with a graph: the soft targets and
hints move with ``s`` as the student's inputs do, and the meta-gradient reaches ``s`` through
both forwards of the differentiable steps (none under ``order="first"``, as for the loss's other
knobs). Text views are strings (word dropout on words): no relaxation, the meta-gradient does
not reach the strength there, and the episode's hand-set views are used.
"""

from __future__ import annotations

import torch

from fewshot_kd.distill import FeatureCapture
from fewshot_kd.meta.episodes import MetaEpisode
from fewshot_kd.meta.precision import full_precision


def blend(anchors: torch.Tensor, views: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """``anchors + strength * (views - anchors)``, exactly ``views`` at a strength of 1."""
    return views + (strength.to(views.dtype) - 1) * (views - anchors)


def strength_views(episode: MetaEpisode, strength: torch.Tensor | None):
    """``(support views, teacher logits on the episode's classes, teacher features)`` at
    ``strength``; the episode's own when it has no strength or no anchors (text)."""
    if strength is None or episode.anchor_x is None:
        return episode.support_x, episode.teacher_logits, list(episode.teacher_features)
    views = blend(episode.anchor_x, episode.support_x, strength)
    family = episode.family
    layers = [t for t, _ in family.pairs]
    family.teacher.eval()
    # in fp32 under autocast too, as the episode's own teacher outputs
    with torch.enable_grad(), full_precision(views.device), FeatureCapture(family.teacher, layers) as capture:
        dtype = episode.teacher_logits.dtype  # the episode's precision (float64 in gradient checks)
        logits = family.teacher(views).to(dtype)[:, list(episode.classes)]
        return views, logits, [capture.outputs[name].to(dtype) for name in layers]
