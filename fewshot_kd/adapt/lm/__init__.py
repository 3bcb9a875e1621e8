"""adapt()'s causal-LM path: :func:`adapt_lm`, its :class:`LMPolicy` and :class:`LMAdaptResult`."""

from fewshot_kd.adapt.lm.api import adapt_lm
from fewshot_kd.adapt.lm.export import load_lm_student
from fewshot_kd.adapt.lm.policy import LMPolicy
from fewshot_kd.adapt.lm.report import LMAdaptResult, LMReport

__all__ = ["LMAdaptResult", "LMPolicy", "LMReport", "adapt_lm", "load_lm_student"]
