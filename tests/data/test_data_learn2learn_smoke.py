"""learn2learn works in this install: MAML adapts (checked by hand) and Taskset samples."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset


@pytest.fixture(scope="module")
def l2l():
    with contextlib.redirect_stderr(io.StringIO()):  # gym prints a notice on import
        import learn2learn
    return learn2learn


def _model():
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
    return model


X = torch.tensor([[1.0, 1.0]])
# loss(w) = (w.x)^2, w.x = 3, grad = 2*3*x = [6, 6]; one step of lr 0.1 gives w' = [0.4, 1.4], w'.x = 1.8


@pytest.mark.parametrize("first_order, outer_grad", [(False, 2.16), (True, 3.6)])
def test_maml_adapts_like_the_hand_computation(l2l, first_order, outer_grad):
    maml = l2l.algorithms.MAML(_model(), lr=0.1, first_order=first_order)
    learner = maml.clone()
    learner.adapt(learner(X).pow(2).sum())
    assert torch.allclose(learner.module.weight, torch.tensor([[0.4, 1.4]]))
    assert torch.allclose(maml.module.weight, torch.tensor([[1.0, 2.0]]))  # the original is untouched
    learner(X).pow(2).sum().backward()
    # second order: L(w) = (0.6 * w.x)^2, dL/dw = 0.72 * 3 * x = 2.16; first order: 2 * 1.8 * x = 3.6
    assert torch.allclose(maml.module.weight.grad, torch.full((1, 2), outer_grad))


def test_taskset_samples_n_way_k_shot(l2l):
    labels = torch.arange(4).repeat_interleave(5)
    data = l2l.data.MetaDataset(TensorDataset(torch.arange(20.0).unsqueeze(1), labels))
    transforms = l2l.data.transforms
    taskset = l2l.data.Taskset(data, [transforms.NWays(data, n=2), transforms.KShots(data, k=3),
                                      transforms.LoadData(data), transforms.RemapLabels(data)], num_tasks=10)
    x, y = taskset.sample()
    assert x.shape == (6, 1) and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1]
    original = labels[x.flatten().long()]
    assert len(set(original.tolist())) == 2
    for new in (0, 1):  # one dataset class per episode label
        assert len(set(original[y == new].tolist())) == 1
    assert len(taskset) == 10
