"""fewshot_kd.adapt with a meta-learned policy (``options.policy``: a policy folder; default
the policy shipped in ``fewshot_kd/policies/``), on a student derived from the teacher."""

from pathlib import Path

import fewshot_kd
from fewshot_kd.meta.meta_policy import MetaPolicy

from benchmarks.methods.adapt_handset import _policy, _run_with
from benchmarks.methods.base import MethodInput, MethodOutput, register_method

SHIPPED = Path(fewshot_kd.__file__).resolve().parent / "policies" / "meta_default"


@register_method("adapt_meta", "fewshot_kd.adapt, meta-learned policy, student derived from the teacher (task target)")
def run(inp: MethodInput) -> MethodOutput:
    policy = MetaPolicy.load(inp.options.get("policy", SHIPPED))
    policy.base = _policy(inp)
    out = _run_with(inp, None, policy)
    dataset = inp.shots.name.split("/")[0]
    out.notes["held_out"] = dataset not in {entry.get("dataset") for entry in policy.trained_on}
    out.notes["meta_trained_on"] = policy.trained_on
    return out
