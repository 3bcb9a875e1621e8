"""Time and size of the compression primitives on the real models:
``python -m benchmarks.compression_primitives [--data-root DIR] [--out DIR]``.

ResNet-56 (pretrained CIFAR-10) and the MiniLM classifier (all-MiniLM-L6-v2 + a 4-way head):
time to prune 50 % (channels; heads + FFN neurons), to quantize and export (int8, int4 packed),
the files' sizes, and latency of the float model and of the integer-arithmetic path at batch 1
and 64. ResNet-56 accuracy is on the 1,000 pixel-exact CIFAR-10 test images; the MiniLM head is
untrained, so its integer path is scored by agreement with the float model instead.
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

from fewshot_kd import create_model, load_dataset
from fewshot_kd.files import write_json
from fewshot_kd.model_io import CallableModule
from fewshot_kd.measure import count_macs, count_params, environment_info, evaluate, latency_profile
from fewshot_kd.prune import prune_, save_pruned
from fewshot_kd.quant import export_quantized, quantize_model_, to_dynamic_int8, to_integer_model

RESULTS = Path(__file__).resolve().parent / "results" / "compression_primitives"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def latencies(model, make_inputs, repeats) -> dict:
    return {f"b{b}_ms": r.median_ms for b, r in latency_profile(model, make_inputs, (1, 64), warmup=3, repeats=repeats).items()}


def quantized_files(model, work: Path) -> dict:
    out = {}
    for bits in (8, 4):
        fake = quantize_model_(copy.deepcopy(model), weight_bits=bits, act_bits=None)
        path, seconds = timed(lambda: export_quantized(fake, work / f"w{bits}.safetensors"))
        out[f"int{bits}"] = {"bytes": path.stat().st_size, "quantize_and_export_seconds": seconds}
    return out


def resnet56(data_root, work: Path, repeats: int) -> dict:
    splits = load_dataset("cifar10", data_root=data_root)
    exact = splits["test_exact"]
    model = create_model("cifar_resnet56", pretrained=True, data_root=data_root).eval()
    shots = splits.train.few_shot(10, seed=0).all_inputs()
    make = lambda b: exact.input_batch(torch.arange(b) % len(exact))  # noqa: E731
    example = make(1)
    row = {"float": {"params": count_params(model), "macs": count_macs(model, example),
                     "bytes": save_pruned(model, work / "float.safetensors").stat().st_size,
                     "accuracy_exact1000": evaluate(model, exact)["accuracy"], **latencies(model, make, repeats),
                     "arithmetic": "float32 (torch)"}}
    pruned = copy.deepcopy(model)
    report, seconds = timed(lambda: prune_(pruned, example, 0.5, importance="l1"))
    row["pruned_50pct_inner_channels"] = {
        "prune_seconds": seconds, "params": report.params_after, "macs": report.macs_after,
        "bytes": save_pruned(pruned, work / "pruned.safetensors").stat().st_size,
        "accuracy_exact1000_before_finetune": evaluate(pruned, exact)["accuracy"], **latencies(pruned, make, repeats)}
    row["quantized_files"] = quantized_files(model, work)
    int8, seconds = timed(lambda: to_integer_model(model, [shots], work / "resnet56.int8.onnx"))
    wrapped = CallableModule(int8)
    row["integer_path"] = {"backend": int8.backend, "build_seconds": seconds, "bytes": int8.size_bytes,
                           "accuracy_exact1000": evaluate(wrapped, exact)["accuracy"],
                           **latencies(wrapped, make, repeats), "integer_arithmetic": True}
    return row


def minilm(data_root, work: Path, repeats: int) -> dict:
    texts = list(load_dataset("ag_news", data_root=data_root).test.inputs[:256])
    model = create_model("minilm_classifier", num_classes=4).eval()
    make = lambda b: [texts[i % len(texts)] for i in range(b)]  # noqa: E731
    example = make(1)
    row = {"float": {"params": count_params(model), "macs": count_macs(model, example),
                     "bytes": save_pruned(model, work / "minilm.safetensors").stat().st_size,
                     **latencies(model, make, repeats), "arithmetic": "float32 (torch)"}}
    pruned = copy.deepcopy(model)
    report, seconds = timed(lambda: prune_(pruned, example, 0.5, importance="l1"))
    row["pruned_50pct_heads_and_ffn"] = {
        "prune_seconds": seconds, "params": report.params_after, "macs": report.macs_after,
        "bytes": save_pruned(pruned, work / "minilm_pruned.safetensors").stat().st_size,
        **latencies(pruned, make, repeats)}
    row["quantized_files"] = quantized_files(model, work)
    int8, seconds = timed(lambda: to_dynamic_int8(model))
    with torch.inference_mode():
        agree = (model(texts).argmax(-1) == int8(texts).argmax(-1)).float().mean().item()
    torch.save(int8.model.state_dict(), work / "minilm.dynamic_int8.pt")
    row["integer_path"] = {"backend": int8.backend, "build_seconds": seconds,
                           "bytes": (work / "minilm.dynamic_int8.pt").stat().st_size,
                           "top1_agreement_with_float": agree, **latencies(int8, make, repeats),
                           "integer_arithmetic": True}
    return row


def markdown(result: dict) -> str:
    lines = [f"# Compression primitives\n\nCommand: `{result['command']}`  \nCommit: `{result['environment']['git_commit']}`  \n"
             f"Machine: {result['environment']['cpu_model']}, {result['environment']['cpu_available']} cores, "
             f"torch {result['environment']['torch']} ({result['environment']['torch_threads']} threads)\n",
             "| model | variant | params | MACs | bytes | accuracy / agreement | ms b1 | ms b64 | seconds to make | arithmetic |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in result["models"].items():
        for variant, v in row.items():
            if variant == "quantized_files":
                for bits, q in v.items():
                    lines.append(f"| {name} | {bits} weights file (packed) | | | {q['bytes']:,} | | | | "
                                 f"{q['quantize_and_export_seconds']:.2f} | file only |")
                continue
            acc = v.get("accuracy_exact1000", v.get("accuracy_exact1000_before_finetune", v.get("top1_agreement_with_float")))
            make = v.get("prune_seconds", v.get("build_seconds"))
            lines.append(
                f"| {name} | {variant} | {v.get('params', ''):,} | {v.get('macs', ''):,} | {v['bytes']:,} | "
                f"{'' if acc is None else f'{100 * acc:.1f} %'} | {v['b1_ms']:.2f} | {v['b64_ms']:.1f} | "
                f"{'' if make is None else f'{make:.2f}'} | {v.get('backend', v.get('arithmetic', 'float32 (torch)'))} |"
                if "params" in v else
                f"| {name} | {variant} | | | {v['bytes']:,} | {'' if acc is None else f'{100 * acc:.1f} %'} | "
                f"{v['b1_ms']:.2f} | {v['b64_ms']:.1f} | {'' if make is None else f'{make:.2f}'} | {v.get('backend')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = {"command": " ".join(shlex.quote(a) for a in ["python", "-m", "benchmarks.compression_primitives", *sys.argv[1:]]),
                  "environment": environment_info(),
                  "models": {"cifar_resnet56": resnet56(args.data_root, work, args.repeats),
                             "minilm_classifier": minilm(args.data_root, work, args.repeats)}}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "results.json", result)
    (args.out / "results.md").write_text(markdown(result))
    print((args.out / "results.md").read_text())
    return result


if __name__ == "__main__":
    main()
