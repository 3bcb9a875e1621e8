"""A true int8 inference path on CPU: ONNX export + onnxruntime static quantization.

:func:`to_integer_model` exports the (dequantized) float model to ONNX, quantizes it with
``onnxruntime.quantization.quantize_static`` (QOperator format: ``QLinearConv``,
``QLinearMatMul``/``QGemm``, ... with int8 per-channel symmetric weights and uint8
per-tensor activations, calibrated on the few shots) and checks that the graph really
contains integer operators. :class:`IntegerModel` runs it and returns torch logits.
:func:`compare_latency` times float and int8 at several batch sizes; every row says
which runtime ran and carries ``simulated`` / ``integer_arithmetic`` flags.
"""

from __future__ import annotations

import copy
import logging
import os
import statistics
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn as nn

from fewshot_kd.errors import FewShotKDError, UnsupportedLayerError
from fewshot_kd.measure.latency import time_calls
from fewshot_kd.quant.calibrate import iter_inputs
from fewshot_kd.quant.modules import dequantize_model_, quantized_layers

INTEGER_OPS = frozenset({
    "QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul", "QGemm", "QLinearAdd",
    "QLinearMul", "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearConcat",
    "QLinearLeakyRelu", "QLinearSigmoid", "QLinearSoftmax", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
})


def _require_onnxruntime():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise FewShotKDError("the int8 path needs onnx and onnxruntime: pip install 'fewshot_kd[export]'") from err


def float_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with fake-quant layers replaced by float layers holding
    the quantized weights (the model itself is untouched)."""
    clone = copy.deepcopy(model).eval()
    return dequantize_model_(clone) if quantized_layers(clone) else clone


def export_onnx(model: nn.Module, example: Any, path: str | os.PathLike, opset: int = 17) -> Path:
    """Export a tensor-input model to ONNX (TorchScript exporter, batch axis dynamic,
    BatchNorm folded into the convolutions). A text classifier is exported by
    :func:`~fewshot_kd.quant.text_onnx.export_text_onnx` instead (token ids in; ``example``
    unused)."""
    from fewshot_kd.quant.text_onnx import export_text_onnx, is_text_classifier

    if is_text_classifier(model):
        return export_text_onnx(model, path, opset)
    if not isinstance(example, torch.Tensor):
        raise UnsupportedLayerError("the ONNX export handles models with one tensor input and text classifiers that "
                                    f"take token ids; got {type(model).__name__} with an input of type "
                                    f"{type(example).__name__}")
    model = float_copy(model).cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated but needs no onnxscript
        torch.onnx.export(model, (example[:1].cpu().float(),), str(path), dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["logits"], do_constant_folding=True,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    _own_constants(path)
    return Path(path)


def _own_constants(path: str | os.PathLike) -> None:
    """Give every ``Identity`` of an initializer its own copy of it. The exporter shares equal
    constants that way (the all-zero folded biases of an untrained network), and onnxruntime's
    static quantizer, which looks a bias up among the initializers, then fails on them."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    outputs = {value.name for value in graph.output}
    shared = [node for node in graph.node if node.op_type == "Identity" and node.input[0] in initializers
              and node.output[0] not in outputs]
    if not shared:
        return
    for node in shared:
        copy = onnx.TensorProto()
        copy.CopyFrom(initializers[node.input[0]])
        copy.name = node.output[0]
        graph.initializer.append(copy)
        graph.node.remove(node)
    onnx.save(model, str(path))


def onnx_op_counts(path: str | os.PathLike) -> dict[str, int]:
    """How often each operator type occurs in an ONNX file's main graph."""
    import onnx

    return dict(Counter(node.op_type for node in onnx.load(str(path)).graph.node))


def _calibration_reader(batches: Any, max_batches: int | None, batch_size: int):
    from onnxruntime.quantization import CalibrationDataReader

    feeds = []
    for i, inputs in enumerate(iter_inputs(batches, batch_size)):
        if max_batches is not None and i >= max_batches:
            break
        if not isinstance(inputs, torch.Tensor):
            raise UnsupportedLayerError("int8 calibration batches must be tensors (images); text classifiers take "
                                        "to_integer_text_model (dynamic int8, no calibration)")
        feeds.append({"input": inputs.detach().cpu().float().numpy()})
    if not feeds:
        raise ValueError("to_integer_model: no calibration batches were given; pass the few-shot examples")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    return _Reader(), feeds[0]["input"]


class IntegerModel:
    """An int8 onnxruntime model behind a torch-like call: ``logits = model(images)``.

    ``backend`` names the runtime and the integer operators it found (e.g.
    ``"onnxruntime-int8 (QGemm, QLinearConv)"``); ``path``/``size_bytes`` the int8 file;
    ``float_path`` the float ONNX file it came from; ``op_counts`` the graph's operators;
    ``scheme`` what is integer."""

    simulated = False
    integer_arithmetic = True
    scheme = ("onnxruntime static int8 (QOperator): int8 weights, uint8 activations with "
              "per-tensor scales calibrated on the few shots")

    def __init__(self, path: str | os.PathLike, float_path: str | os.PathLike | None = None,
                 num_threads: int | None = None) -> None:
        _require_onnxruntime()
        self.path = Path(path)
        self.float_path = Path(float_path) if float_path is not None else None
        self.op_counts = onnx_op_counts(self.path)
        self.integer_ops = sorted(set(self.op_counts) & INTEGER_OPS)
        if not self.integer_ops:
            raise FewShotKDError(f"{self.path} holds no integer operators (found {sorted(self.op_counts)}); "
                                 f"it would not run in integer arithmetic")
        self.backend = f"onnxruntime-int8 ({', '.join(self.integer_ops)})"
        self.num_threads = num_threads or torch.get_num_threads()
        self.session = self._session(self.path)

    def _session(self, path: Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.num_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def float_session_call(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The float ONNX model under the same runtime and threads (for a fair latency baseline)."""
        if self.float_path is None:
            raise FewShotKDError("this IntegerModel was built without its float ONNX file")
        session = self._session(self.float_path)
        return lambda x: torch.from_numpy(session.run(None, {"input": x.detach().cpu().float().numpy()})[0])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.session.run(None, {"input": x.detach().cpu().float().contiguous().numpy()})[0]
        return torch.from_numpy(logits).to(x.device)

    def __repr__(self) -> str:
        return f"IntegerModel(backend={self.backend!r}, path={str(self.path)!r}, size_bytes={self.size_bytes})"


def to_integer_model(
    model: nn.Module,
    calibration: Any,
    path: str | os.PathLike | None = None,
    *,
    calibrate_method: str = "minmax",
    per_channel: bool = True,
    reduce_range: bool = False,
    max_batches: int | None = None,
    batch_size: int = 64,
    opset: int = 17,
    num_threads: int | None = None,
) -> IntegerModel:
    """Build the int8 onnxruntime model of ``model`` (float or fake-quant; fake-quant weights
    are used as the float weights) calibrated on ``calibration`` (the few shots: a
    LabelledDataset, a tensor or batches). ``path`` is the int8 ``.onnx`` file (default: a
    new temporary folder); the float export is written beside it as ``*.float.onnx``.
    ``calibrate_method``: "minmax" or "percentile" (onnxruntime's calibrators).
    ``reduce_range=True`` uses 7-bit weights, advisable on x86 CPUs without VNNI. Text
    classifiers take :func:`~fewshot_kd.quant.text_onnx.to_integer_text_model` instead."""
    _require_onnxruntime()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from fewshot_kd.quant.text_onnx import is_text_classifier

    if is_text_classifier(model):
        raise UnsupportedLayerError(f"{type(model).__name__} is a text classifier: its int8 model comes from "
                                    f"to_integer_text_model(model, path) (dynamic int8, no calibration), not from "
                                    f"static calibration, whose per-tensor activation scales do not suit attention")

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
    if calibrate_method not in methods:
        raise ValueError(f"calibrate_method must be one of {sorted(methods)}, got {calibrate_method!r}")
    path = Path(path) if path is not None else Path(tempfile.mkdtemp(prefix="fewshot_kd_int8_")) / "model.int8.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    float_path = path.with_name(path.name.removesuffix(".onnx").removesuffix(".int8") + ".float.onnx")
    reader, example = _calibration_reader(calibration, max_batches, batch_size)
    export_onnx(model, torch.from_numpy(example), float_path, opset)
    root_logger, level = logging.getLogger(), logging.getLogger().level
    root_logger.setLevel(logging.ERROR)  # quantize_static logs advice on the root logger
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(str(float_path), str(path), reader, quant_format=QuantFormat.QOperator,
                            per_channel=per_channel, reduce_range=reduce_range,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=methods[calibrate_method])
    finally:
        root_logger.setLevel(level)
    return IntegerModel(path, float_path, num_threads)


def _timed(fns: dict[str, Callable[[torch.Tensor], Any]], inputs: torch.Tensor, warmup: int,
           repeats: int) -> dict[str, dict[str, float]]:
    """Time several functions on ``inputs`` round-robin (:func:`~fewshot_kd.measure.latency.time_calls`);
    per function the median and best time in ms."""
    with torch.inference_mode():
        times = time_calls({name: (lambda fn=fn: fn(inputs)) for name, fn in fns.items()}, warmup, repeats)
    out = {}
    for name, ts in times.items():
        median = statistics.median(ts)
        out[name] = {"batch_size": int(inputs.shape[0]), "median_ms": median, "min_ms": min(ts),
                     "images_per_s": inputs.shape[0] / (median / 1e3), "repeats": repeats}
    return out


def compare_latency(
    float_model: nn.Module,
    integer_model: IntegerModel,
    input_shape: Sequence[int],
    batch_sizes: Iterable[int] = (1, 64),
    *,
    warmup: int = 3,
    repeats: int = 10,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Latency rows for the torch model (float, or fake-quant = ``simulated``), the float
    ONNX model and the int8 ONNX model under onnxruntime, per batch size, timed round-robin.
    Speed-ups are given only for the integer rows and only against real float runs."""
    simulated = bool(quantized_layers(float_model))
    torch_name = "torch-fakequant (simulated int, float math)" if simulated else "torch-float32"
    float_model = float_model.eval()
    device = next(float_model.parameters()).device
    fns: dict[str, Callable[[torch.Tensor], Any]] = {torch_name: lambda t: float_model(t.to(device))}
    if integer_model.float_path is not None:
        fns["onnxruntime-float32"] = integer_model.float_session_call()
    fns[integer_model.backend] = integer_model
    generator = torch.Generator().manual_seed(seed)
    rows: list[dict[str, Any]] = []
    for batch in batch_sizes:
        x = torch.rand((batch, *input_shape), generator=generator)
        timed = _timed(fns, x, warmup, repeats)
        baselines = {"torch": None if simulated else timed[torch_name]["median_ms"]}
        if "onnxruntime-float32" in timed:
            baselines["onnxruntime_float32"] = timed["onnxruntime-float32"]["median_ms"]
        for name, row in timed.items():
            is_int = name == integer_model.backend
            speedups = ({f"speedup_vs_{k}": v / row["median_ms"] for k, v in baselines.items() if v is not None}
                        if is_int else {})
            rows.append({"backend": name, **row, **speedups,
                         "simulated": simulated and name == torch_name, "integer_arithmetic": is_int})
    return rows
