"""adapt()'s extractive-QA path: :func:`adapt_qa`, its :class:`QAPolicy` and :class:`QAAdaptResult`."""

from fewshot_kd.adapt.qa.api import adapt_qa
from fewshot_kd.adapt.qa.export import load_qa_student
from fewshot_kd.adapt.qa.policy import QAPolicy
from fewshot_kd.adapt.qa.report import QAAdaptResult, QAReport

__all__ = ["QAAdaptResult", "QAPolicy", "QAReport", "adapt_qa", "load_qa_student"]
