"""The view bank caches the teacher's features while they fit in memory, and runs the teacher
per batch beyond that (many classes at a large input size), with the same values."""

import importlib

import pytest
import torch

import fewshot_kd.distill.views as views
from fewshot_kd import adapt, create_model
from fewshot_kd.distill.views import build_bank


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return create_model("small_cnn", in_channels=1, input_size=8, width=4).eval()


def test_a_bank_over_its_cache_budget_runs_the_teacher_per_batch_with_the_same_features(cnn):
    inputs, labels = torch.randn(40, 1, 8, 8), torch.randint(10, (40,))
    layers = [n for n, m in cnn.named_modules() if isinstance(m, torch.nn.Conv2d)][:2]
    cached = build_bank(cnn, inputs, labels, layers, batch_size=16)
    lazy = build_bank(cnn, inputs, labels, layers, batch_size=16, cache_bytes=1024)
    assert len(cached.teacher_features) == 2 and cached.teacher is None
    assert lazy.teacher_features == [] and lazy.teacher is cnn
    torch.testing.assert_close(lazy.teacher_logits, cached.teacher_logits)
    index = torch.tensor([3, 17, 39, 3])
    for a, b in zip(lazy.batch(index), cached.batch(index)):
        for x, y in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_adapt_with_a_feature_cache_too_small_for_the_views_still_distils_hints(teacher, digits, monkeypatch):
    stage = importlib.import_module("fewshot_kd.adapt.stages.views")
    built = []
    monkeypatch.setattr(stage, "build_bank",
                        lambda *a, **k: built.append(views.build_bank(*a, cache_bytes=1024, **k)) or built[-1])
    result = adapt(teacher, None, shots=5, data=digits, target={"macs": 0.5, "bits": 8}, policy={"steps": 40},
                   progress=False)
    assert built and built[0].teacher is not None and built[0].layers  # hints came from per-batch features
    assert result.report["eval"]["test"]["student"]["accuracy"] > 0.5
