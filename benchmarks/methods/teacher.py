"""The teacher itself, unchanged: the reference every compression is measured against."""

from fewshot_kd.files import save_tensors

from benchmarks.methods.base import MethodInput, MethodOutput, register_method
from benchmarks.methods.options import MethodOptions


@register_method("teacher", "the teacher, unchanged (reference)")
def run(inp: MethodInput, options: MethodOptions) -> MethodOutput:
    artifact = save_tensors(inp.workdir / "teacher.safetensors", inp.teacher.state_dict())
    return MethodOutput(model=inp.teacher.eval(), artifact=artifact)
