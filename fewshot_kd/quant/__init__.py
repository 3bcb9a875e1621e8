"""Quantization for few-shot compression: fake quantization (STE + LSQ) for QAT, PTQ
calibration from the few shots, a packed int8/int4 weights file, and a real int8 CPU path
(onnxruntime) with latency measurement.

Typical use::

    quantize_model_(student, weight_bits=4, act_bits=8)      # in place
    calibrate_(student, few_shots)                           # PTQ
    ... train as usual (QAT) ...
    export_quantized(student, "student.w4.safetensors", fold_batchnorm=True)
    int8 = to_integer_model(student, few_shots)              # onnxruntime QLinearConv
    int8_text = to_integer_text_model(text_student)          # token ids in, MatMulInteger
    rows = compare_latency(student_float, int8, (3, 32, 32))
"""

from fewshot_kd.measure.latency import measure_latency  # the one latency measurer, also offered here
from fewshot_kd.quant.calibrate import calibrate_
from fewshot_kd.quant.dynamic import DynamicInt8Model, to_dynamic_int8
from fewshot_kd.quant.export import dequantized_weights, export_quantized, folded_batchnorm, load_quantized, read_quantized
from fewshot_kd.quant.fake import (
    ActivationQuantizer,
    WeightQuantizer,
    fake_quantize,
    lsq_grad_scale,
    minmax_weight_steps,
    quantize_weight_ste,
)
from fewshot_kd.quant.integer import IntegerModel, compare_latency, to_integer_model
from fewshot_kd.quant.modules import (
    QuantConv1D,
    QuantConv2d,
    QuantEmbedding,
    QuantLinear,
    dequantize_model_,
    quantize_model_,
    quantized_layers,
    set_quantization_,
)
from fewshot_kd.quant.qat import qat_param_groups, qat_step, step_parameters
from fewshot_kd.quant.text_onnx import IntegerTextModel, export_text_onnx, logit_agreement, to_integer_text_model

__all__ = [
    "ActivationQuantizer",
    "DynamicInt8Model",
    "IntegerModel",
    "IntegerTextModel",
    "QuantConv1D",
    "QuantConv2d",
    "QuantEmbedding",
    "QuantLinear",
    "WeightQuantizer",
    "calibrate_",
    "compare_latency",
    "dequantize_model_",
    "dequantized_weights",
    "export_quantized",
    "export_text_onnx",
    "fake_quantize",
    "folded_batchnorm",
    "logit_agreement",
    "load_quantized",
    "lsq_grad_scale",
    "measure_latency",
    "minmax_weight_steps",
    "qat_param_groups",
    "qat_step",
    "quantize_model_",
    "quantize_weight_ste",
    "quantized_layers",
    "read_quantized",
    "set_quantization_",
    "step_parameters",
    "to_dynamic_int8",
    "to_integer_model",
    "to_integer_text_model",
]
