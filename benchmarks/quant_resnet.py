"""Measure quantization of the pretrained CIFAR-10 ResNet on the 1,000 pixel-exact test
images: fake-quant accuracy (weights per-channel int8/int4, w8a8), packed file sizes, and
the real int8 onnxruntime path (accuracy, latency at batch 1 and 64 vs float).

Run ``python -m benchmarks.quant_resnet [--data-root DIR] [--depth 56] [--out report.json]``.
Calibration uses ``shots`` images per class from the CIFAR-10 *train* split (JPEG copies).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from fewshot_kd.data.catalog import load_dataset


def exact_cifar10_test(data_root: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first 1,000 original CIFAR-10 test images (float ``[N,3,32,32]`` in [0,1]) and labels."""
    exact = load_dataset("cifar10", data_root=data_root)["test_exact"]
    return exact.all_inputs(), exact.labels


def few_shot_cifar10_train(data_root: str | os.PathLike | None = None, shots: int = 10, seed: int = 0) -> torch.Tensor:
    """``shots`` train images per class (the JPEG copies), float ``[10*shots,3,32,32]``."""
    return load_dataset("cifar10", data_root=data_root).train.few_shot(shots, seed=seed).all_inputs()


@torch.no_grad()
def accuracy(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 250) -> float:
    """Top-1 accuracy in percent (works for torch modules and :class:`IntegerModel`)."""
    if isinstance(model, nn.Module):
        model.eval()
    correct = sum(int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum()) for i in range(0, len(y), batch_size))
    return 100.0 * correct / len(y)


def resnet_quant_report(data_root: str | os.PathLike | None = None, depth: int = 56, shots: int = 10,
                        latency_repeats: int = 10, workdir: str | os.PathLike | None = None,
                        num_threads: int | None = None) -> dict[str, Any]:
    """Everything measured on the pretrained ``cifar_resnet{depth}``; see the module doc."""
    from fewshot_kd.models.catalog import create_model
    from fewshot_kd.quant import calibrate_, compare_latency, export_quantized, quantize_model_, to_integer_model

    workdir = Path(workdir or tempfile.mkdtemp(prefix="fewshot_kd_quant_"))
    x, y = exact_cifar10_test(data_root)
    calib = few_shot_cifar10_train(data_root, shots)
    teacher = create_model(f"cifar_resnet{depth}", pretrained=True, data_root=data_root).eval()
    report: dict[str, Any] = {"model": f"cifar_resnet{depth}", "eval_images": len(y), "calibration_images": len(calib),
                              "accuracy": {}, "file_bytes": {}}
    report["accuracy"]["float32"] = {"acc": accuracy(teacher, x, y), "simulated": False, "integer_arithmetic": False}
    for bits in (8, 4):
        fake = quantize_model_(copy.deepcopy(teacher), weight_bits=bits, act_bits=None)
        report["accuracy"][f"w{bits} per-channel (fake-quant)"] = {
            "acc": accuracy(fake, x, y), "simulated": True, "integer_arithmetic": False}
        report["file_bytes"][f"w{bits}"] = export_quantized(fake, workdir / f"w{bits}.safetensors").stat().st_size
    w8a8 = quantize_model_(copy.deepcopy(teacher), weight_bits=8, act_bits=8)
    calibrate_(w8a8, calib)
    report["accuracy"]["w8a8 PTQ (fake-quant)"] = {"acc": accuracy(w8a8, x, y), "simulated": True, "integer_arithmetic": False}
    report["file_bytes"]["float32 state_dict (safetensors)"] = _float_size(teacher, workdir / "float.safetensors")
    int8 = to_integer_model(teacher, calib, workdir / f"resnet{depth}.int8.onnx", num_threads=num_threads)
    report["integer_backend"] = int8.backend
    report["integer_op_counts"] = int8.op_counts
    report["accuracy"][int8.backend] = {"acc": accuracy(int8, x, y), "simulated": False, "integer_arithmetic": True}
    report["file_bytes"]["onnx float32"] = int8.float_path.stat().st_size
    report["file_bytes"]["onnx int8"] = int8.size_bytes
    report["latency"] = compare_latency(teacher, int8, tuple(x.shape[1:]), (1, 64), repeats=latency_repeats)
    report["threads"] = {"torch": torch.get_num_threads(), "onnxruntime": int8.num_threads}
    report["cpu_load_average"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    return report


def _float_size(model: nn.Module, path: Path) -> int:
    from fewshot_kd.files import save_tensors

    return save_tensors(path, dict(model.state_dict())).stat().st_size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--depth", type=int, default=56)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch and onnxruntime")
    parser.add_argument("--out", default=None, help="also write the report here as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = resnet_quant_report(args.data_root, args.depth, args.shots, args.repeats, num_threads=args.threads)
    text = json.dumps(report, indent=2)
    if args.out:
        from fewshot_kd.files import write_json

        write_json(args.out, report)
    print(text)


if __name__ == "__main__":
    main()
