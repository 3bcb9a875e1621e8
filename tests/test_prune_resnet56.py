"""50 % structured pruning of the inner-block channels of the pretrained CIFAR ResNet-56,
checked against counts derived by hand from the architecture (needs the shared data)."""

from __future__ import annotations

import struct

import pytest
import torch

from fewshot_kd.prune import load_pruned, prune_, save_pruned

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

BLOCKS = 9  # ResNet-56 = 6 * 9 + 2
STAGES = ((16, 32, 1), (32, 16, 2), (64, 8, 2))  # (width, output side, first stride)


def analytic(inner_fraction: float) -> dict[str, int]:
    """Parameters, MACs (per 32x32 image) and BatchNorm sizes when every BasicBlock's
    conv1 keeps ``inner_fraction`` of its output channels (so conv2 keeps as many inputs)."""
    params = 3 * 16 * 9 + 2 * 16  # stem conv + BN
    macs = 3 * 16 * 9 * 32 * 32
    bn_channels, bn_layers = 16, 1
    c_in = 16
    for width, side, _ in STAGES:
        inner = int(width * inner_fraction)
        for _ in range(BLOCKS):
            conv1, conv2 = c_in * inner * 9, inner * width * 9
            params += conv1 + conv2 + 2 * inner + 2 * width
            macs += (conv1 + conv2) * side * side
            bn_channels += inner + width
            bn_layers += 2
            c_in = width
    params += 64 * 10 + 10
    macs += 64 * 10
    # safetensors payload: float32 parameters and running mean/var, int64 num_batches_tracked
    payload = 4 * (params + 2 * bn_channels) + 8 * bn_layers
    return {"params": params, "macs": macs, "payload": payload}


def payload_bytes(path) -> int:
    """File size minus the safetensors header (8-byte length + JSON)."""
    raw = path.read_bytes()
    return len(raw) - 8 - struct.unpack("<Q", raw[:8])[0]


def test_half_of_inner_block_channels(shared_data_root, tmp_path):
    from fewshot_kd.models.catalog import create_model

    full, half = analytic(1.0), analytic(0.5)
    assert full["params"] == 853_018  # the published count
    model = create_model("cifar_resnet56", pretrained=True, data_root=shared_data_root).eval()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    full_path = save_pruned(model, tmp_path / "resnet56.safetensors")

    report = prune_(model, x[:1], 0.5)

    assert (report.params_before, report.macs_before) == (full["params"], full["macs"])
    assert (report.params_after, report.macs_after) == (half["params"], half["macs"])
    assert set(report.frozen) == {"layer2.0.shortcut", "layer3.0.shortcut"}
    for stage, (width, _, _) in zip((model.layer1, model.layer2, model.layer3), STAGES):
        for block in stage:
            assert block.conv1.out_channels == width // 2 and block.conv2.out_channels == width
    pruned_path = save_pruned(model, tmp_path / "resnet56_pruned.safetensors")
    assert payload_bytes(full_path) == full["payload"]
    assert payload_bytes(pruned_path) == half["payload"]
    assert pruned_path.stat().st_size < 0.52 * full_path.stat().st_size

    again = load_pruned(pruned_path)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)
