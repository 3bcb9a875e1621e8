"""adapt() as typed stages: each a function of the :class:`Job`, the student and the
:class:`~fewshot_kd.adapt.policy.Policy`, returning a small frozen dataclass."""

from fewshot_kd.adapt.stages.derive import Derived, derive
from fewshot_kd.adapt.stages.distill import Distilled, distill_stage_
from fewshot_kd.adapt.stages.export import Exported, export_stage_
from fewshot_kd.adapt.stages.job import Job
from fewshot_kd.adapt.stages.pipeline import Finished, run_stages
from fewshot_kd.adapt.stages.repair import repair_
from fewshot_kd.adapt.stages.views import Views, cache_views

__all__ = ["Derived", "Distilled", "Exported", "Finished", "Job", "Views", "cache_views", "derive",
           "distill_stage_", "export_stage_", "repair_", "run_stages"]
