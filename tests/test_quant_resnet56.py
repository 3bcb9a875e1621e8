"""Quantizing the real pretrained CIFAR-10 ResNet-56 on the 1,000 pixel-exact test images."""

from __future__ import annotations

import copy

import pytest
import torch

from fewshot_kd.quant import export_quantized, quantize_model_, quantized_layers
from benchmarks.quant_resnet import accuracy, exact_cifar10_test, few_shot_cifar10_train

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


@pytest.fixture(scope="module")
def resnet56(shared_data_root):
    from fewshot_kd.models.catalog import create_model

    x, y = exact_cifar10_test(shared_data_root)
    teacher = create_model("cifar_resnet56", pretrained=True, data_root=shared_data_root).eval()
    return teacher, x, y, accuracy(teacher, x, y), shared_data_root


def test_float_teacher_reproduces_its_accuracy(resnet56):
    _, _, _, float_acc, _ = resnet56
    assert float_acc == pytest.approx(92.6, abs=1.0)  # data README: 92.6 % on these 1,000 images


def test_int8_per_channel_weights_lose_at_most_half_a_point(resnet56):
    teacher, x, y, float_acc, _ = resnet56
    int8 = quantize_model_(copy.deepcopy(teacher), weight_bits=8, act_bits=None)
    assert len(quantized_layers(int8)) == 56  # 55 convolutions + the linear head
    assert accuracy(int8, x, y) >= float_acc - 0.5


def test_packed_file_sizes(resnet56, tmp_path):
    teacher, *_ = resnet56
    weights = sum(m.weight.numel() for m in teacher.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    sizes = {}
    for bits in (8, 4):
        fake = quantize_model_(copy.deepcopy(teacher), weight_bits=bits, act_bits=None)
        sizes[bits] = export_quantized(fake, tmp_path / f"w{bits}.safetensors").stat().st_size
    overhead = 100_000  # scales, BatchNorm, biases and the safetensors header
    assert weights <= sizes[8] <= weights + overhead
    assert weights / 2 <= sizes[4] <= weights / 2 + overhead
    assert sizes[4] < 0.6 * sizes[8]


def test_onnxruntime_int8_accuracy_and_latency(resnet56, tmp_path):
    pytest.importorskip("onnxruntime")
    from fewshot_kd.quant import compare_latency, to_integer_model

    teacher, x, y, float_acc, root = resnet56
    shots = few_shot_cifar10_train(root, shots=10)
    int8 = to_integer_model(teacher, shots, tmp_path / "resnet56.int8.onnx")
    assert int8.op_counts["QLinearConv"] == 55 and int8.op_counts.get("Conv", 0) == 0
    assert int8.op_counts.get("QGemm", 0) + int8.op_counts.get("QLinearMatMul", 0) == 1
    assert accuracy(int8, x, y) >= float_acc - 1.0
    assert int8.size_bytes < int8.float_path.stat().st_size / 3
    rows = compare_latency(teacher, int8, (3, 32, 32), batch_sizes=(1, 64), warmup=1, repeats=3)
    int_rows = [r for r in rows if r["integer_arithmetic"]]
    assert [r["batch_size"] for r in int_rows] == [1, 64]
    assert all(not r["simulated"] for r in rows)
    # timed round-robin against the same runtime in float: int8 must be the faster one at batch 64
    assert int_rows[1]["speedup_vs_onnxruntime_float32"] > 1.0
