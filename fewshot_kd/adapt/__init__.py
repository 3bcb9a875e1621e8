"""Few-shot compression of a teacher into a student: ``adapt(teacher, student, shots=10)``."""

from fewshot_kd.adapt.adapt_report import AdaptReport
from fewshot_kd.adapt.api import adapt
from fewshot_kd.adapt.load import load_student
from fewshot_kd.adapt.policy import HAND_SET, Policy
from fewshot_kd.adapt.policy_parts import (DistillationConfig, OptimisationConfig, PruningConfig, QuantizationConfig,
                                           RepairConfig, ViewsConfig)
from fewshot_kd.adapt.report import AdaptResult
from fewshot_kd.adapt.target import Target

__all__ = ["HAND_SET", "AdaptReport", "AdaptResult", "DistillationConfig", "OptimisationConfig", "Policy",
           "PruningConfig", "QuantizationConfig", "RepairConfig", "Target", "ViewsConfig", "adapt", "load_student"]
