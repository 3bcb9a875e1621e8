import torch
import torch.nn as nn

from fewshot_kd import create_model
from fewshot_kd.measure import count_macs
from fewshot_kd.prune.blocks import drop_blocks_, drop_scores, droppable_blocks


def test_droppable_blocks_are_the_shape_preserving_residual_blocks():
    model = create_model("cifar_resnet20")
    blocks = droppable_blocks(model, torch.rand(1, 3, 32, 32))
    # 9 blocks, of which the first of layer2 and layer3 downsample
    assert sorted(blocks) == sorted(["layer1.0", "layer1.1", "layer1.2", "layer2.1", "layer2.2", "layer3.1", "layer3.2"])


def test_drop_scores_are_zero_for_a_block_that_does_nothing():
    model = create_model("cifar_resnet20").eval()
    block = model.layer1[1]
    nn.init.zeros_(block.bn2.weight)
    nn.init.zeros_(block.bn2.bias)  # residual branch outputs 0: the block is relu(x) = x after a relu
    scores = drop_scores(model, torch.rand(8, 3, 32, 32), ["layer1.1", "layer1.2"])
    assert scores["layer1.1"] < 1e-10 < scores["layer1.2"]


def test_drop_blocks_meets_the_macs_target_and_still_runs():
    model = create_model("cifar_resnet20").eval()
    x = torch.rand(4, 3, 32, 32)
    before = count_macs(model, x[:1])
    report = drop_blocks_(model, x, target_macs=0.7 * before)
    assert report.macs_after <= 0.7 * before and report.macs_after == count_macs(model, x[:1])
    assert all(isinstance(model.get_submodule(name), nn.Identity) for name in report.dropped)
    assert model(x).shape == (4, 10)
