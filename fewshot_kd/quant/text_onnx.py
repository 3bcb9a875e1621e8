"""Text classifiers as ONNX files that take token ids: ``input_ids`` and ``attention_mask``
(int64, ``[batch, sequence]``, both axes dynamic) in, ``logits`` (float32 ``[batch, classes]``)
out; token types are all zeros, as a tokenizer gives them for one text. onnxruntime runs the
files without fewshot_kd; the token ids come from the student's tokenizer (its
``tokenizer.json`` is read by the ``tokenizers`` package alone).

:func:`export_text_onnx` writes the float graph and checks it against the model.
:func:`to_integer_text_model` quantizes it with onnxruntime's **dynamic** quantization, which
is what this int8 file is, and no more: the weights of every linear layer are stored int8
(symmetric, per output channel) and multiplied in integer arithmetic (``MatMulInteger``, on
activations that ``DynamicQuantizeLinear`` turns into uint8 with a scale taken from each
batch at run time), and the embedding tables are stored int8 and dequantized after the
lookup. The activation-by-activation products of attention, softmax, LayerNorm, GELU and the
pooling stay float32. No calibration is needed; static activation scales from a few shots are
not used (the attention activations of one batch say little about the next).

How close: the float graph gives the model's logits within :data:`FLOAT_TOLERANCE` (checked at
export). The int8 graph differs by the rounding of the activations: by 1-2 % of the largest
|logit| on tiny random-weight models, by about 10 % on the pretrained MiniLM's last 3 layers
(the top class unchanged on the texts tried). :func:`logit_agreement` measures it, and
``adapt(..., integer=True)`` reports it on the shots.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from fewshot_kd.errors import BadInputError, FewShotKDError, UnsupportedLayerError
from fewshot_kd.quant.integer import IntegerModel, _require_onnxruntime, float_copy

INPUT_NAMES = ("input_ids", "attention_mask")
SCHEME = ("onnxruntime dynamic int8: int8 weights in MatMulInteger on activations "
          "quantized to uint8 per batch at run time; int8 embedding tables; attention products, softmax, LayerNorm, "
          "GELU and pooling in float32")
FLOAT_TOLERANCE = 1e-4
"""Largest |logit| difference, relative to the largest |logit| (at least 1), allowed between the
float ONNX graph and the model when :func:`export_text_onnx` checks it."""


class TokenIdsClassifier(nn.Module):
    """``(input_ids, attention_mask) -> logits`` of a text classifier: the graph ONNX records."""

    def __init__(self, model: nn.Module, call: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self._call = call

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self._call(self.model, input_ids, attention_mask)


def is_text_classifier(model: nn.Module) -> bool:
    """Whether :func:`token_ids_classifier` accepts ``model``."""
    return _call_for(model) is not None


def _call_for(model: nn.Module):
    from fewshot_kd.models._text_classifier import TextClassifier
    from fewshot_kd.teachers.hf_folder import HFSequenceClassifier

    if isinstance(model, TextClassifier):
        return lambda m, ids, mask: m(ids, mask)
    if isinstance(model, HFSequenceClassifier):
        return lambda m, ids, mask: m.forward_ids(ids, mask)
    if type(model).__name__.endswith("ForSequenceClassification") and hasattr(model, "config"):
        return lambda m, ids, mask: m(input_ids=ids, attention_mask=mask).logits
    return None


def token_ids_classifier(model: nn.Module) -> TokenIdsClassifier:
    """A float eval-mode copy of ``model`` (fake-quant weights as float) taking token ids; an
    :class:`UnsupportedLayerError` for a model that is not a text classifier."""
    call = _call_for(model)
    if call is None:
        raise UnsupportedLayerError(
            f"ONNX export of a text model needs a text classifier that takes token ids: a fewshot_kd TextClassifier "
            f"(minilm_*, tiny_transformer, text_classifier), a student derived from a Hugging Face folder, or a "
            f"transformers *ForSequenceClassification; got {type(model).__name__}, whose inputs are not token ids")
    return TokenIdsClassifier(float_copy(model).cpu(), call).eval()


def _config(model: nn.Module) -> Any:
    for owner in (model, getattr(model, "encoder", None), getattr(model, "model", None)):
        if getattr(getattr(owner, "config", None), "vocab_size", None):
            return owner.config
    raise UnsupportedLayerError(f"{type(model).__name__} has no Hugging Face config with a vocab_size")


def example_token_ids(model: nn.Module, length: int = 8) -> dict[str, torch.Tensor]:
    """Two rows of token ids, the second padded: the export must see a real mask, so that the
    graph keeps it (a mask of ones may be dropped while tracing)."""
    config = _config(model)
    length = max(4, min(length, (getattr(config, "max_position_embeddings", None) or length + 2) - 2))
    ids = torch.arange(2 * length).reshape(2, length) % max(config.vocab_size - 1, 1) + 1
    mask = torch.ones_like(ids)
    mask[1, length // 2:] = 0
    ids[1, length // 2:] = getattr(config, "pad_token_id", None) or 0
    return {"input_ids": ids, "attention_mask": mask}


def _session(path: Path, num_threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _feeds(tokens: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {name: tokens[name].detach().cpu().long().numpy() for name in INPUT_NAMES}


def export_text_onnx(model: nn.Module, path: str | os.PathLike, opset: int = 17) -> Path:
    """Write ``model`` (a text classifier, float or fake-quant) as a float ONNX graph taking
    ``input_ids`` and ``attention_mask`` (TorchScript exporter; batch and sequence axes
    dynamic). The written graph is run on two batches of other shapes and must give the
    model's logits within :data:`FLOAT_TOLERANCE`, else a :class:`FewShotKDError`."""
    _require_onnxruntime()
    wrapper = token_ids_classifier(model)
    example = example_token_ids(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token_axes = {0: "batch", 1: "sequence"}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated but needs no onnxscript
            torch.onnx.export(wrapper, (example["input_ids"], example["attention_mask"]), str(path), dynamo=False,
                              opset_version=opset, input_names=list(INPUT_NAMES), output_names=["logits"],
                              do_constant_folding=True,
                              dynamic_axes={"input_ids": token_axes, "attention_mask": token_axes,
                                            "logits": {0: "batch"}})
    except Exception as error:  # the exporter's own error names the operator it lacks
        detail = (str(error).strip().splitlines() or [""])[0][:300]
        raise UnsupportedLayerError(f"{type(model).__name__} does not export to ONNX ({type(error).__name__}: "
                                    f"{detail})") from error
    _check_float_graph(path, wrapper, model)
    return path


def _check_float_graph(path: Path, wrapper: TokenIdsClassifier, model: nn.Module) -> None:
    session = _session(path)
    for length in (5, 11):  # other shapes than the export's, one padded row each
        tokens = example_token_ids(model, length)
        tokens = {k: torch.cat([v, v.flip(0), v[:1]]) for k, v in tokens.items()}
        with torch.no_grad():
            expected = wrapper(tokens["input_ids"], tokens["attention_mask"])
        got = torch.from_numpy(session.run(None, _feeds(tokens))[0])
        scale = max(1.0, float(expected.abs().max()))
        if got.shape != expected.shape or float((got - expected).abs().max()) > FLOAT_TOLERANCE * scale:
            raise FewShotKDError(f"the ONNX graph written to {path} does not compute {type(model).__name__}'s logits "
                                 f"(sequence length {length}); this model's export is not supported")


def save_tokenizer(model: nn.Module, folder: str | os.PathLike) -> list[Path]:
    """Write ``model``'s tokenizer files (``tokenizer.json``, ``tokenizer_config.json``) to
    ``folder``, so its ONNX file there runs with the ``tokenizers`` package alone; an
    :class:`UnsupportedLayerError` for a model whose tokenizer cannot save itself."""
    tokenizer = getattr(model, "tokenizer", None)
    if not callable(getattr(tokenizer, "save_pretrained", None)):
        raise UnsupportedLayerError(f"{type(model).__name__} has no Hugging Face tokenizer to save beside its ONNX "
                                    f"file; tokenise its inputs as it does and pass input_ids and attention_mask")
    return [Path(p) for p in tokenizer.save_pretrained(str(folder))]


class IntegerTextModel(IntegerModel):
    """A dynamic-int8 onnxruntime text classifier behind a torch-like call: ``logits =
    model(texts)`` (a list of strings, tokenised by the student's tokenizer), or token ids
    (a mapping with ``input_ids`` and ``attention_mask``, or an ``input_ids`` tensor).
    ``scheme`` says what is integer and what is not (see the module docstring)."""

    scheme = SCHEME

    def __init__(self, path: str | os.PathLike, float_path: str | os.PathLike | None = None, tokenizer: Any = None,
                 max_length: int = 128, num_threads: int | None = None) -> None:
        super().__init__(path, float_path, num_threads)
        self.backend = f"onnxruntime-int8-dynamic ({', '.join(self.integer_ops)})"
        self.tokenizer = tokenizer
        self.max_length = max_length

    def tokens(self, inputs: Any) -> dict[str, torch.Tensor]:
        """``inputs`` as ``input_ids`` and ``attention_mask`` tensors."""
        if isinstance(inputs, Mapping):
            if "input_ids" not in inputs:
                raise BadInputError(f"token inputs need 'input_ids'; got keys {sorted(inputs)}")
            ids = inputs["input_ids"]
            return {"input_ids": ids, "attention_mask": inputs.get("attention_mask", torch.ones_like(ids))}
        if isinstance(inputs, torch.Tensor):
            return {"input_ids": inputs, "attention_mask": torch.ones_like(inputs)}
        if isinstance(inputs, str) or not all(isinstance(t, str) for t in inputs):
            raise BadInputError("pass a list of strings, or token ids (input_ids and attention_mask)")
        if self.tokenizer is None:
            raise BadInputError("this model has no tokenizer: pass token ids (input_ids and attention_mask)")
        encoded = self.tokenizer(list(inputs), padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
        return {name: encoded[name] for name in INPUT_NAMES}

    def float_session_call(self) -> Callable[[Any], torch.Tensor]:
        """The float ONNX model under the same runtime and threads, taking the same inputs."""
        if self.float_path is None:
            raise FewShotKDError("this IntegerTextModel was built without its float ONNX file")
        session = self._session(self.float_path)
        return lambda inputs: torch.from_numpy(session.run(None, _feeds(self.tokens(inputs)))[0])

    def __call__(self, inputs: Any) -> torch.Tensor:
        logits = torch.from_numpy(self.session.run(None, _feeds(self.tokens(inputs)))[0])
        device = inputs.device if isinstance(inputs, torch.Tensor) else None
        return logits.to(device) if device is not None else logits


def to_integer_text_model(
    model: nn.Module,
    path: str | os.PathLike | None = None,
    *,
    per_channel: bool = True,
    reduce_range: bool | None = None,
    opset: int = 17,
    num_threads: int | None = None,
) -> IntegerTextModel:
    """The dynamic-int8 onnxruntime model of the text classifier ``model`` (float or
    fake-quant), as the module docstring describes. ``path`` is the int8 ``.onnx`` file
    (default: a new temporary folder); the checked float export is written beside it as
    ``*.float.onnx``. ``reduce_range=True`` uses 7-bit weights, as onnxruntime advises on x86
    CPUs without VNNI (whose int8 products can saturate); the default ``None`` turns it on exactly
    there (:func:`~fewshot_kd.quant.cpu_features.x86_without_vnni`). It differs from the model by the rounding of weights and activations:
    :func:`logit_agreement` measures by how much."""
    _require_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from fewshot_kd.quant.cpu_features import x86_without_vnni

    reduce_range = x86_without_vnni() if reduce_range is None else reduce_range

    path = Path(path) if path is not None else Path(tempfile.mkdtemp(prefix="fewshot_kd_int8_")) / "model.int8.onnx"
    float_path = path.with_name(path.name.removesuffix(".onnx").removesuffix(".int8") + ".float.onnx")
    export_text_onnx(model, float_path, opset)
    root_logger, level = logging.getLogger(), logging.getLogger().level
    root_logger.setLevel(logging.ERROR)  # quantize_dynamic logs advice on the root logger
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(float_path), str(path), per_channel=per_channel, reduce_range=reduce_range,
                             weight_type=QuantType.QInt8, extra_options={"MatMulConstBOnly": True})
    finally:
        root_logger.setLevel(level)
    integer = IntegerTextModel(path, float_path, getattr(model, "tokenizer", None), getattr(model, "max_length", 128),
                               num_threads)
    if reduce_range:
        integer.scheme = SCHEME + "; weights kept in the 7-bit range (reduce_range, for x86 CPUs without VNNI)"
    return integer


def logit_agreement(model: nn.Module, onnx_model: Callable[[Any], torch.Tensor], inputs: Any) -> dict[str, float]:
    """How close ``onnx_model``'s logits are to ``model``'s on ``inputs``: the largest absolute
    difference, the largest |logit| of ``model`` (the scale to read it against) and the
    fraction of rows whose top class agrees."""
    with torch.no_grad():
        expected = token_ids_classifier(model)(**_as_tokens(onnx_model, inputs))
    got = onnx_model(inputs)
    return {"max_abs_logit_diff": float((got - expected).abs().max()), "max_abs_logit": float(expected.abs().max()),
            "top1_agreement": float((got.argmax(-1) == expected.argmax(-1)).float().mean())}


def _as_tokens(onnx_model: Any, inputs: Any) -> dict[str, torch.Tensor]:
    tokens = onnx_model.tokens(inputs) if isinstance(onnx_model, IntegerTextModel) else inputs
    return {name: tokens[name].cpu() for name in INPUT_NAMES}
