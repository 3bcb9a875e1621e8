"""The learned augmentation strength: an untrained policy keeps the hand-set augmentation, the
strength sets adapt()'s crop padding / word dropout, its meta-gradient arrives through the
blended views (student and teacher), and policy files from before the head keep the hand-set views."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file, save_file

from fewshot_kd.adapt import HAND_SET, Target
from fewshot_kd.augment import default_padding
from fewshot_kd.errors import FewShotKDError
from fewshot_kd.meta import MetaPolicy, PolicyNet
from fewshot_kd.meta.config import MetaTrainConfig
from fewshot_kd.meta.episodes import load_family, make_episode
from fewshot_kd.meta.meta_policy import MAX_WORD_DROPOUT, augmentation
from fewshot_kd.meta.objective import InnerConfig, episode_loss, policy_decisions
from fewshot_kd.models.catalog import create_model

TARGET = Target.parse({"macs": 0.5, "bits": 8})
IMAGES = torch.zeros(1, 3, 32, 32)  # hand-set padding: 4 pixels


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return create_model("small_cnn", in_channels=1, input_size=32, width=4).eval()


@pytest.fixture(scope="module")
def shots():
    torch.manual_seed(0)
    from fewshot_kd.data.dataset import LabelledDataset

    return LabelledDataset(torch.rand(10, 1, 32, 32), torch.arange(10) % 2, ("a", "b"), name="noise")


@pytest.fixture(scope="module")
def episode():
    config = MetaTrainConfig(ways=3, shots=(5,), views=3, query_per_class=5, macs_range=(0.5, 0.5), bits=(8,))
    return make_episode([load_family("digits", 3)], 0, config.episode_spec, 0)


def _decide(meta: MetaPolicy, teacher, shots, bias: float | None = None):
    if bias is not None:
        with torch.no_grad():
            meta.net.augment_head.bias.fill_(bias)
    return meta.decide(teacher, shots, TARGET)


def test_an_untrained_policy_decides_the_hand_set_augmentation(teacher, shots):
    policy, info = _decide(MetaPolicy(PolicyNet()), teacher, shots)
    assert info["augment_strength"] == 1.0
    assert policy.crop_padding == default_padding(IMAGES) == 4
    assert policy.text_word_dropout == HAND_SET.text_word_dropout and policy.flip == HAND_SET.flip
    assert augmentation(HAND_SET, 1.0, None, text=True) == {"text_word_dropout": HAND_SET.text_word_dropout}


def test_the_strength_scales_the_crop_padding_and_the_word_dropout(teacher, shots):
    paddings = [_decide(MetaPolicy(PolicyNet()), teacher, shots, bias)[0].crop_padding for bias in (-30.0, 0.0, 30.0)]
    assert paddings == [0, 4, 8]  # strength ~0, 1, ~2
    assert [augmentation(HAND_SET, s, IMAGES, False)["crop_padding"] for s in (0.0, 0.6, 1.5)] == [0, 2, 6]
    rates = [augmentation(HAND_SET, s, None, True)["text_word_dropout"] for s in (0.0, 0.5, 2.0)]
    assert rates == [0.0, 0.05, 0.2]
    capped = augmentation(replace(HAND_SET, text_word_dropout=0.8), 2.0, None, True)["text_word_dropout"]
    assert capped == MAX_WORD_DROPOUT


def test_the_episode_views_blend_between_unshifted_anchors_and_the_hand_set_views(episode):
    shots = len(episode.support_y) // 3
    anchors, views = episode.anchor_x, episode.support_x
    assert torch.equal(anchors[:shots], views[:shots])  # the shots themselves
    for i in range(shots, len(views)):  # digits: shifted, never mirrored (crop only)
        assert torch.equal(anchors[i], views[i % shots])
    assert not torch.equal(anchors, views)


def test_the_meta_gradient_reaches_the_augmentation_head(episode):
    net = PolicyNet()
    config = InnerConfig(steps=4, truncate=2)
    torch.manual_seed(0)
    loss, metrics = episode_loss(net, episode, config)
    assert metrics["augment_strength"] == 1.0
    (grad,) = torch.autograd.grad(loss, net.augment_head.bias)
    assert torch.isfinite(grad).all() and grad.abs().item() > 0
    no_anchors = replace(episode, anchor_x=None)  # the hand-set views: nothing reaches the head
    torch.manual_seed(0)
    loss_fixed, _ = episode_loss(net, no_anchors, config)
    assert loss_fixed.item() == pytest.approx(loss.item(), rel=1e-5)  # strength 1: the same views
    assert torch.autograd.grad(loss_fixed, net.augment_head.bias, allow_unused=True)[0] is None


def test_the_strength_gradient_matches_a_finite_difference(episode):
    """Float64, two second-order steps, BatchNorm statistics fixed and a large Adam epsilon: the
    exact meta-gradient (through the blended views into student and teacher) agrees with a
    central difference of the outer loss in the strength."""
    ep = copy.copy(episode)
    family = copy.copy(ep.family)
    family.student, family.teacher = copy.deepcopy(family.student).double(), copy.deepcopy(family.teacher).double()
    ep.family, ep.target_bits = family, None
    ep.support_x, ep.anchor_x, ep.query_x = ep.support_x.double(), ep.anchor_x.double(), ep.query_x.double()
    ep.teacher_logits = ep.teacher_logits.double()
    ep.teacher_features = [f.double() for f in ep.teacher_features]
    config = InnerConfig(steps=2, order="second", batchnorm="eval", adam_eps=1.0)
    with torch.no_grad():
        base = {k: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
                for k, v in vars(policy_decisions(PolicyNet(), episode)).items()}

    def loss(strength: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(0)
        return episode_loss(replace(policy_decisions(PolicyNet(), episode), **{**base, "augment_strength": strength}),
                            ep, config)[0]

    strength = torch.tensor(1.2, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(strength), strength)
    eps = 1e-5
    finite = (loss(torch.tensor(1.2 + eps, dtype=torch.float64)) - loss(torch.tensor(1.2 - eps, dtype=torch.float64)))
    assert grad.item() != 0
    assert grad.item() == pytest.approx(finite.item() / (2 * eps), rel=1e-4, abs=1e-9)


def test_a_policy_file_from_before_the_augmentation_head_keeps_the_hand_set_views(teacher, shots, tmp_path):
    meta = MetaPolicy(PolicyNet())
    with torch.no_grad():
        meta.net.augment_head.bias.fill_(30.0)
    meta.save(tmp_path)
    state = load_file(tmp_path / "policy.safetensors")
    save_file({k: v for k, v in state.items() if not k.startswith("augment_head.")}, tmp_path / "policy.safetensors")
    loaded = MetaPolicy.load(tmp_path)
    assert not loaded.learned_augment and loaded.learned_stop
    policy, info = loaded.decide(teacher, shots, TARGET)
    assert policy.crop_padding is HAND_SET.crop_padding and policy.text_word_dropout == HAND_SET.text_word_dropout
    assert info["augment_strength"] is None and info["stop_fraction"] is not None
    save_file({k: v for k, v in state.items() if k != "augment_head.bias"}, tmp_path / "policy.safetensors")
    with pytest.raises(FewShotKDError, match="augment_head.bias"):  # half a head is a broken file
        MetaPolicy.load(tmp_path)


def test_the_committed_default_policy_learned_its_augmentation_strength(teacher, shots):
    from importlib.resources import files

    from fewshot_kd.meta.policy_net import AUGMENT_RANGE

    meta = MetaPolicy.load(files("fewshot_kd") / "policies" / "meta_default")
    assert meta.learned_augment
    policy, info = meta.decide(teacher, shots, TARGET)
    strength = info["augment_strength"]
    assert AUGMENT_RANGE[0] < strength < AUGMENT_RANGE[1] and strength != 1.0  # meta-trained: moved off the hand-set 1
    example = shots.input_batch(slice(0, 1))
    assert policy.crop_padding == augmentation(meta.base, strength, example, False)["crop_padding"]
