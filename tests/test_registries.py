"""Every registry of fewshot_kd: each name resolves and has a help line, an unknown name is
a clear error with a suggestion; pruning criteria declare what they can do; one MAC counter."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fewshot_kd.augment import AUGMENTATIONS, MIXES
from fewshot_kd.data.catalog import DATASETS
from fewshot_kd.distill.attention_losses import ATTENTION_LOSSES
from fewshot_kd.errors import FewShotKDError, UnknownNameError
from fewshot_kd.meta.backends import INNER_BACKENDS
from fewshot_kd.meta.inner import UNROLLS
from fewshot_kd.models.catalog import MODELS
from fewshot_kd.optimizers import OPTIMIZERS
from fewshot_kd.prune.importance import IMPORTANCES, Importance, make_importance, needs_gradients, score_slices
from fewshot_kd.registry import Registry
from fewshot_kd.task_family import TASK_FAMILIES
from fewshot_kd.teachers.lm_recipe import LMTeacherRecipe
from fewshot_kd.teachers.qa_recipe import QATeacherRecipe
from fewshot_kd.teachers.recipe import RECIPES

REGISTRIES: dict[str, Registry] = {
    "models": MODELS,
    "datasets": DATASETS,
    "importances": IMPORTANCES,
    "augmentations": AUGMENTATIONS,
    "mixes": MIXES,
    "optimizers": OPTIMIZERS,
    "task families": TASK_FAMILIES,
    "attention losses": ATTENTION_LOSSES,
    "SGD unrolls": UNROLLS,
    "inner-loop backends": INNER_BACKENDS,
    "teacher recipes": RECIPES,
}
ENTRIES = [(kind, name) for kind, registry in REGISTRIES.items() for name in registry.names()]


@pytest.mark.parametrize("kind,name", ENTRIES, ids=[f"{k}:{n}" for k, n in ENTRIES])
def test_every_name_resolves_and_has_a_help_line(kind, name):
    registry = REGISTRIES[kind]
    assert name in registry
    registry.get(name)
    help_line = registry.describe(name)
    assert isinstance(help_line, str) and help_line.strip() and "\n" not in help_line


@pytest.mark.parametrize("kind", list(REGISTRIES))
def test_an_unknown_name_is_a_clear_error_with_a_suggestion(kind):
    registry = REGISTRIES[kind]
    assert len(registry) >= 1
    name = registry.names()[0]
    with pytest.raises(UnknownNameError) as caught:
        registry.get(name + "_")
    message = str(caught.value)
    assert f"{name + '_'!r}" in message and f"Did you mean {name!r}" in message
    assert all(known in message for known in registry.names())
    assert isinstance(caught.value, (FewShotKDError, ValueError, KeyError))
    assert (name + "_") not in registry and [] not in registry


def test_recipes_and_task_files_name_registered_choices():
    from fewshot_kd.task_family import find_task_family

    for name in RECIPES.names():
        recipe = RECIPES.get(name)
        if isinstance(recipe, LMTeacherRecipe):  # a small GPT-2 from recipe.model_kwargs, trained by steps
            assert recipe.dataset in DATASETS and recipe.train.steps > 0
            continue
        if isinstance(recipe, QATeacherRecipe):  # an encoder folder (None: the packaged MiniLM) with a span head
            assert recipe.dataset in DATASETS and recipe.train.epochs > 0
            continue
        assert recipe.dataset in DATASETS and recipe.model in MODELS
        assert recipe.train.optimizer in OPTIMIZERS and recipe.train.augment in AUGMENTATIONS
    for name in TASK_FAMILIES.names():
        task = find_task_family(name)
        assert task.name == name and task.dataset in DATASETS and task.augment in AUGMENTATIONS
        assert task.teacher.get("recipe", "") in RECIPES or task.teacher.get("model", "") in MODELS


# ---------------------------------------------------------------- importances


@pytest.mark.parametrize("name", IMPORTANCES.names())
def test_every_importance_declares_its_capabilities(name):
    criterion = IMPORTANCES.get(name)
    assert isinstance(criterion, Importance)
    assert type(criterion.needs_gradients) is bool and type(criterion.scores_slices) is bool
    assert needs_gradients(name) is criterion.needs_gradients
    estimator = make_importance(name)
    assert callable(estimator) and estimator is not make_importance(name)  # a fresh one each time
    assert needs_gradients(estimator) is criterion.needs_gradients  # the estimator agrees with the flag


@pytest.mark.parametrize("name", [n for n in IMPORTANCES.names() if IMPORTANCES.get(n).scores_slices])
def test_slice_scoring_importances_give_one_score_per_unit(name):
    criterion = IMPORTANCES.get(name)
    weights = [torch.randn(4, 6), torch.randn(4, 3, 2)]
    grads = [torch.randn(4, 6), torch.randn(4, 3, 2)] if criterion.needs_gradients else None
    scores = score_slices(name, weights, grads)
    assert scores.shape == (4,) and torch.isfinite(scores).all()
    if criterion.needs_gradients:
        with pytest.raises(ValueError, match="needs gradients"):
            score_slices(name, weights)


def test_importances_that_cannot_score_slices_say_so():
    for name in IMPORTANCES.names():
        if not IMPORTANCES.get(name).scores_slices:
            with pytest.raises(ValueError, match="cannot score transformer heads"):
                score_slices(name, [torch.randn(2, 3)])


@pytest.mark.parametrize("call", [make_importance, needs_gradients, lambda n: score_slices(n, [torch.ones(2, 2)])])
def test_an_unknown_importance_name_is_refused(call):
    with pytest.raises(UnknownNameError, match="Did you mean 'taylor'"):
        call("taylr")


def test_prune_refuses_an_unknown_importance():
    from fewshot_kd.prune import prune_

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
    with pytest.raises(UnknownNameError, match="importance 'l3'"):
        prune_(model, torch.rand(1, 1, 8, 8), 0.5, importance="l3")


# ---------------------------------------------------------------- MAC counter


class _Attention(nn.Module):
    """Self-attention over ``[N, heads, L, D]`` by torch's fused kernel or by hand."""

    def __init__(self, fused: bool) -> None:
        super().__init__()
        self.fused = fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return F.scaled_dot_product_attention(x, x, x)
        weights = (x @ x.transpose(-2, -1) / x.shape[-1] ** 0.5).softmax(-1)
        return weights @ x


def test_the_former_mac_counters_are_one():
    from fewshot_kd.measure import count_macs
    from fewshot_kd.prune import count_macs as prune_count_macs
    from fewshot_kd.prune.targets import count_macs as targets_count_macs

    assert prune_count_macs is count_macs and targets_count_macs is count_macs


@pytest.mark.parametrize("model,inputs,macs", [
    (nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), torch.rand(1, 1, 8, 8),
     64 * 32 + 32 * 10),
    (nn.Conv2d(3, 8, 3, padding=1, bias=False), torch.rand(2, 3, 5, 5), 2 * 8 * 5 * 5 * 3 * 3 * 3),
    (_Attention(fused=False), torch.rand(2, 4, 6, 8), 2 * (2 * 4 * 6 * 6 * 8)),
])
def test_mac_counts_match_the_formulas(model, inputs, macs):
    from fewshot_kd.measure import count_macs

    assert count_macs(model, inputs) == macs


def test_both_former_flop_tables_are_counted():
    """The union: torch's CPU attention kernel (once only in the pruner's table) and the
    quantized kernels (once only in the measurement table) count like their float forms."""
    from fewshot_kd.measure import count_macs

    x = torch.rand(2, 4, 6, 8)
    assert count_macs(_Attention(fused=True), x) == count_macs(_Attention(fused=False), x) > 0
    mlp = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation notice for eager-mode quantization
        int8 = torch.ao.quantization.quantize_dynamic(mlp, {nn.Linear}, dtype=torch.qint8)
    assert count_macs(int8, torch.rand(3, 16)) == count_macs(mlp, torch.rand(3, 16)) == 3 * (16 * 8 + 8 * 4)

