"""Post-training int8 quantization of the teacher, calibrated on the shots, run by onnxruntime
in integer arithmetic (QLinearConv / QGemm): no training, no pruning."""

from fewshot_kd.model_io import CallableModule
from fewshot_kd.quant import to_integer_model

from benchmarks.methods.base import MethodInput, MethodOutput, register_method
from benchmarks.methods.options import MethodOptions


@register_method("ptq_int8", "teacher, int8 PTQ calibrated on the shots, onnxruntime integer kernels")
def run(inp: MethodInput, options: MethodOptions) -> MethodOutput:
    calibration = [inp.shots.input_batch(slice(s, s + 64)) for s in range(0, len(inp.shots), 64)]
    int8 = to_integer_model(inp.teacher, calibration, inp.workdir / "teacher.int8.onnx")
    return MethodOutput(model=CallableModule(int8), artifact=int8.path, float_module=inp.teacher,
                        integer_arithmetic=int8.integer_arithmetic, notes={"backend": int8.backend},
                        weight_bits=8)
