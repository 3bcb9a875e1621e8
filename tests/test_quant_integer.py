"""The real int8 path: onnxruntime QOperator graph, agreement with float, latency rows."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from fewshot_kd.errors import UnsupportedLayerError  # noqa: E402
from fewshot_kd.quant import compare_latency, quantize_model_, to_integer_model  # noqa: E402
from fewshot_kd.quant.integer import INTEGER_OPS, export_onnx  # noqa: E402


def quadrant_images(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise images in [0,1] with a bright 8x8 patch in one of four quadrants (= the label)."""
    y = torch.randint(0, 4, (n,), generator=generator)
    x = torch.rand(n, 3, 16, 16, generator=generator) * 0.5
    for i, c in enumerate(y.tolist()):
        r, col = divmod(c, 2)
        x[i, :, 8 * r:8 * r + 8, 8 * col:8 * col + 8] += 0.5
    return x, y


@pytest.fixture(scope="module")
def trained_cnn():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 4),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(15):
        x, y = quadrant_images(32, generator)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval(), generator


def test_int8_graph_has_integer_ops_and_agrees_with_float(trained_cnn, tmp_path):
    model, generator = trained_cnn
    calibration, _ = quadrant_images(40, generator)  # the "few shots"
    int8 = to_integer_model(model, calibration, tmp_path / "m.int8.onnx")
    assert int8.op_counts["QLinearConv"] == 3
    assert int8.op_counts.get("Conv", 0) == 0 and int8.op_counts.get("Gemm", 0) == 0
    assert "QLinearConv" in int8.backend and int8.backend.startswith("onnxruntime-int8")
    assert int8.integer_arithmetic is True and int8.simulated is False
    assert int8.path.is_file() and int8.size_bytes == int8.path.stat().st_size
    x, y = quadrant_images(256, generator)
    with torch.no_grad():
        ref = model(x)
    out = int8(x)
    assert isinstance(out, torch.Tensor) and out.shape == ref.shape and out.dtype == torch.float32
    assert (ref.argmax(1) == y).float().mean().item() > 0.9  # trained, so agreement means something
    assert (out.argmax(1) == ref.argmax(1)).float().mean().item() >= 0.9
    error = (out - ref).abs().max().item()
    assert 0 < error < 0.1 * (ref.max() - ref.min()).item()  # close, but really quantized


def test_int8_weights_equal_the_fake_quant_codes(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5)).eval()
    fake = quantize_model_(model, weight_bits=8, act_bits=None)
    int8 = to_integer_model(fake, torch.rand(8, 3, 8, 8), tmp_path / "m.int8.onnx")
    initializers = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(int8.path)).graph.initializer}
    for name in ("0", "3"):
        layer = fake.get_submodule(name)
        codes = layer.weight_quant.integer_weight(layer.weight)
        assert torch.equal(torch.tensor(initializers[f"{name}.weight_quantized"]).int(), codes), name


def test_latency_rows_say_what_ran(trained_cnn, tmp_path):
    model, generator = trained_cnn
    calibration, _ = quadrant_images(16, generator)
    int8 = to_integer_model(model, calibration, tmp_path / "m.int8.onnx")
    rows = compare_latency(model, int8, (3, 16, 16), batch_sizes=(1, 4), warmup=1, repeats=2)
    assert all(r["repeats"] == 2 for r in rows)
    assert [r["batch_size"] for r in rows] == [1, 1, 1, 4, 4, 4]
    assert [r["backend"] for r in rows[:3]] == ["torch-float32", "onnxruntime-float32", int8.backend]
    assert all(r["median_ms"] > 0 and r["simulated"] is False for r in rows)
    assert [r["integer_arithmetic"] for r in rows] == [False, False, True] * 2
    assert all("speedup_vs_torch" in r for r in rows if r["integer_arithmetic"])
    fake = quantize_model_(nn.Sequential(*[m for m in model]), weight_bits=8, act_bits=8)
    fake_rows = compare_latency(fake, int8, (3, 16, 16), batch_sizes=(1,), warmup=1, repeats=2)
    assert fake_rows[0]["simulated"] is True and fake_rows[0]["integer_arithmetic"] is False
    assert "speedup_vs_torch" not in fake_rows[2]  # a simulated run is never a speed-up baseline
    assert "speedup_vs_onnxruntime_float32" in fake_rows[2]


def test_text_models_are_refused(tmp_path):
    with pytest.raises(UnsupportedLayerError, match="one tensor input"):
        export_onnx(nn.Linear(2, 2), ["a sentence"], tmp_path / "m.onnx")


def test_integer_op_names_are_onnx_ops():
    from onnx import defs

    known = {s.name for s in defs.get_all_schemas_with_history()}
    assert {"QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul"} <= known & INTEGER_OPS


def test_an_untrained_resnet_exports_to_int8(tmp_path):
    """Its folded biases are all zero; the exporter shares such equal constants through Identity
    nodes, which onnxruntime's quantizer could not find among the initializers."""
    from fewshot_kd import create_model

    model = create_model("cifar_resnet20", num_classes=10).eval()
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    int8 = to_integer_model(model, x, tmp_path / "r20.int8.onnx")
    assert int8.op_counts["QLinearConv"] == 19 and int8.op_counts.get("Identity", 0) == 0
    float_graph = onnx.load(str(int8.float_path)).graph
    assert not [n for n in float_graph.node if n.op_type == "Identity"]
    with torch.no_grad():
        assert int8(x).shape == model(x).shape
