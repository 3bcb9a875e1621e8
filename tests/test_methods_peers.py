"""The peer methods: Torch-Pruning's own pruner loop (tp_prune_finetune) and a learn2learn
MAML-initialised student (maml_student), on digits with the digits-cnn recipe teacher."""

import copy

import pytest
import torch
import torch.nn as nn

import fewshot_kd
from fewshot_kd.errors import FewShotKDError, UnsupportedLayerError
from fewshot_kd.files import load_tensors
from fewshot_kd.measure import count_macs, saved_size_bytes
from fewshot_kd.models.catalog import create_model
from fewshot_kd.prune._graph import inspect_model
from fewshot_kd.prune.serialize import load_pruned
from fewshot_kd.prune.targets import PruneTargetError
from fewshot_kd.teachers import load_or_train_teacher

from benchmarks.methods.base import MethodInput, get_method
from benchmarks.methods.maml_student import MetaConfig, _episode_loss, _one_thread, episode_sampler, meta_train_
from benchmarks.methods.torch_pruning_finetune import torch_pruning_to_macs_

STUDENT = {"in_channels": 1, "input_size": 8, "width": 4, "num_classes": 10}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """These models see batches of a few dozen 8x8 images: on shared cores two intra-op
    threads made single steps ~100x slower, so each test runs on one (restored after)."""
    with _one_thread():
        yield


@pytest.fixture(scope="module")
def digits():
    return fewshot_kd.load_dataset("digits")


@pytest.fixture(scope="module")
def teacher():
    model, _ = load_or_train_teacher("digits-cnn", progress=False)  # trained once (~1 s), then cached
    return model


def make_student() -> nn.Module:
    return create_model("small_cnn", **STUDENT)


def method_input(digits, teacher, workdir, k=5, macs=0.5, **options) -> MethodInput:
    return MethodInput(teacher=teacher, shots=digits.train.few_shot(k, seed=0), k=k, seed=0, make_student=make_student,
                       example_inputs=digits.test.input_batch(slice(0, 1)), workdir=workdir, augment="crop",
                       target={"macs": macs, "bits": 8}, progress=False, options=options)


@pytest.mark.parametrize("target", [0.5, 0.3])
def test_tp_prune_finetune_meets_the_macs_target_and_saves_a_smaller_file(digits, teacher, tmp_path, target):
    x = digits.test.input_batch(slice(0, 1))
    teacher_macs = count_macs(teacher, x)
    out = get_method("tp_prune_finetune")(method_input(digits, teacher, tmp_path, macs=target, steps=20,
                                                                iterative_steps=100))
    assert out.notes["tp_macs_fraction"] <= target * 1.02  # Torch-Pruning's own count, the loop's stop rule
    assert count_macs(out.model, x) / teacher_macs == pytest.approx(target, rel=0.05)  # the harness's count
    assert count_macs(teacher, x) == teacher_macs  # the teacher itself is untouched
    assert out.artifact.stat().st_size < 0.8 * saved_size_bytes(teacher)
    reloaded = load_pruned(out.artifact)
    probe = digits.test.input_batch(slice(0, 8))
    assert torch.allclose(reloaded(probe), out.model(probe), atol=1e-5)


def test_torch_pruning_keeps_option_a_shortcut_streams_whole():
    model = create_model("cifar_resnet20")
    x = torch.rand(1, 3, 32, 32)
    before = count_macs(model, x)
    result = torch_pruning_to_macs_(model, x, 0.6, iterative_steps=100)
    assert set(result.frozen) == {"layer2.0.shortcut", "layer3.0.shortcut"}
    assert model.conv1.out_channels == 16  # the residual streams feed the padding shortcuts
    for stage, width in (("layer1", 16), ("layer2", 32), ("layer3", 64)):
        blocks = getattr(model, stage)
        assert all(block.conv2.out_channels == width for block in blocks)
        assert any(block.conv1.out_channels < width for block in blocks)  # inside the blocks is pruned
    assert count_macs(model, x) / before == pytest.approx(0.6, rel=0.05)
    assert model(x).shape == (1, 10)


def test_without_the_frozen_shortcuts_torch_pruning_breaks_resnets_and_the_layer_is_named(monkeypatch):
    import benchmarks.methods.torch_pruning_finetune as peer

    def no_barriers(model, example_inputs):
        found = inspect_model(model, example_inputs)
        found.barriers.clear()
        return found

    monkeypatch.setattr(peer, "inspect_model", no_barriers)
    with pytest.raises(UnsupportedLayerError, match="Torch-Pruning left the model broken at layer '"):
        torch_pruning_to_macs_(create_model("cifar_resnet20"), torch.rand(1, 3, 32, 32), 0.6, iterative_steps=100)


def test_an_unreachable_or_invalid_macs_target_is_a_clear_error(digits, teacher, tmp_path):
    with pytest.raises(PruneTargetError, match="larger MACs target"):
        get_method("tp_prune_finetune")(method_input(digits, teacher, tmp_path, macs=0.01, iterative_steps=20))
    for bad in (0, 1.5):
        with pytest.raises(PruneTargetError, match=r"fraction of the teacher's in \(0, 1\]"):
            get_method("tp_prune_finetune")(method_input(digits, teacher, tmp_path, macs=bad))
    with pytest.raises(FewShotKDError, match=r"tp_prune_finetune options has unknown keys \['iterative_step'\]"):
        get_method("tp_prune_finetune")(method_input(digits, teacher, tmp_path, iterative_step=10))


class Rescale(nn.Module):
    """Per-channel scale: a parameter Torch-Pruning does not know how to resize."""

    def __init__(self, channels):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels, 1, 1))

    def forward(self, x):
        return x * self.scale


def test_a_layer_torch_pruning_cannot_resize_is_named():
    model = nn.Sequential(nn.Conv2d(1, 8, 3), Rescale(8), nn.Conv2d(8, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 3))
    with pytest.raises(UnsupportedLayerError, match="layer '1' \\(Rescale\\)"):
        torch_pruning_to_macs_(model, torch.rand(1, 1, 8, 8), 0.5)


@pytest.mark.parametrize("k", [1, 5])
def test_maml_student_returns_a_student_for_every_class(digits, teacher, tmp_path, k):
    out = get_method("maml_student")(method_input(digits, teacher, tmp_path, k=k, meta_steps=4, steps=10))
    logits = out.model(digits.test.input_batch(slice(0, 16)))
    assert logits.shape == (16, digits.num_classes) and torch.isfinite(logits).all()
    assert set(out.notes["meta_query_loss"]) == {"first", "last"} and out.notes["meta"]["meta_steps"] == 4
    assert out.notes["meta"]["first_order"] is True
    saved = load_tensors(out.artifact)
    assert saved.keys() == out.model.state_dict().keys()


def test_meta_training_moves_every_parameter_of_the_init(digits, teacher):
    torch.manual_seed(0)
    init = make_student()
    torch.manual_seed(0)
    meta = make_student()
    assert all(torch.equal(a, b) for a, b in zip(init.parameters(), meta.parameters()))
    meta_train_(meta, teacher, digits.train.few_shot(5, seed=0), MetaConfig(meta_steps=3))
    changed = {name: not torch.equal(a, b)
               for (name, a), b in zip(meta.named_parameters(), init.parameters())}
    assert all(changed.values()), [name for name, c in changed.items() if not c]


def adapted_query_loss(model, teacher, shots, config, episodes=8) -> float:
    """Mean query loss after ``inner_steps`` SGD steps on each episode's support (as MAML's inner loop)."""
    sampler, generator, losses = episode_sampler(shots, config.ways, seed=99), torch.Generator().manual_seed(0), []
    for i in range(episodes):
        losses.append(_adapt_and_score(model, teacher, sampler.sample(i), config, generator))
    return sum(losses) / len(losses)


def _adapt_and_score(model, teacher, episode, config, generator) -> float:
    learner = copy.deepcopy(model).train()
    optimizer = torch.optim.SGD(learner.parameters(), lr=config.inner_lr)
    for _ in range(config.inner_steps):
        optimizer.zero_grad()
        _episode_loss(learner, teacher, episode.support_x, episode.support_y, list(episode.classes), None,
                      generator).backward()
        optimizer.step()
    with torch.no_grad():
        return _episode_loss(learner, teacher, episode.query_x, episode.query_y, list(episode.classes), None,
                             generator).item()


def test_the_meta_learned_init_adapts_better_to_unseen_digits(digits, teacher):
    config = MetaConfig(meta_steps=30)
    torch.manual_seed(0)
    init = make_student()
    meta = make_student()
    meta.load_state_dict(init.state_dict())
    meta_train_(meta, teacher, digits.train.few_shot(5, seed=0), config)
    held_out = digits.test.few_shot(6, seed=0)  # digits never meta-trained on
    assert adapted_query_loss(meta, teacher, held_out, config) < 0.85 * adapted_query_loss(init, teacher, held_out, config)


def test_maml_student_rejects_unknown_options(digits, teacher, tmp_path):
    with pytest.raises(FewShotKDError, match=r"maml_student options has unknown keys \['meta_step'\].*meta_steps"):
        get_method("maml_student")(method_input(digits, teacher, tmp_path, meta_step=3))


def test_random_search_skips_a_draw_the_target_cannot_be_met_with(digits, teacher, tmp_path, monkeypatch):
    import benchmarks.methods.adapt_random_search as search

    real = search.adapt

    def adapt_or_fail(*args, policy, **kwargs):
        if policy.name == "random-search" and not hasattr(adapt_or_fail, "failed"):
            adapt_or_fail.failed = True  # the first drawn configuration cannot meet the target
            raise FewShotKDError("could not fit the derived student into 1 bytes")
        return real(*args, policy=policy, **kwargs)

    monkeypatch.setattr(search, "adapt", adapt_or_fail)
    out = get_method("adapt_random_search")(method_input(digits, teacher, tmp_path, k=2, steps=6, trials=3))
    trials = out.notes["trials"]
    assert [t["trial"] for t in trials] == [0, 1, 2] and "failed" in trials[1] and "held_out_kl" in trials[2]
    assert out.notes["chosen"] in (0, 2)
