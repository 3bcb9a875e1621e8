"""fewshot_kd.adapt with a meta-learned policy (option ``policy``: a policy folder; default
the policy shipped in ``fewshot_kd/policies/``), on a student derived from the teacher."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import fewshot_kd
from fewshot_kd.meta.meta_policy import MetaPolicy

from benchmarks.methods.adapt_handset import AdaptOptions, _run_with
from benchmarks.methods.base import MethodInput, MethodOutput, register_method

SHIPPED = Path(fewshot_kd.__file__).resolve().parent / "policies" / "meta_default"


@dataclass(frozen=True)
class AdaptMetaOptions(AdaptOptions):
    """As :class:`AdaptOptions` (the Policy fields set its base policy), and ``policy``: the
    meta-learned policy's folder."""

    policy: str = str(SHIPPED)


@register_method("adapt_meta", "fewshot_kd.adapt, meta-learned policy, student derived from the teacher (task target)",
                 AdaptMetaOptions)
def run(inp: MethodInput, options: AdaptMetaOptions) -> MethodOutput:
    policy = MetaPolicy.load(options.policy)
    policy.base = options.hand_set_policy(inp.modality, inp.augment)
    out = _run_with(inp, None, policy, options)
    dataset = inp.shots.name.split("/")[0]
    out.notes["held_out"] = dataset not in {entry.get("dataset") for entry in policy.trained_on}
    out.notes["meta_trained_on"] = policy.trained_on
    return out
