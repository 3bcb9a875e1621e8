"""fewshot_kd: few-shot model compression (distillation, pruning, quantization)."""

from fewshot_kd._version import __version__
from fewshot_kd.adapt import AdaptResult, Policy, Target, adapt, load_student
from fewshot_kd.data.catalog import list_datasets, load_dataset
from fewshot_kd.data.dataset import DatasetSplits, LabelledDataset
from fewshot_kd.models.catalog import create_model, list_models
from fewshot_kd.registry import Registry

__all__ = [
    "__version__",
    "AdaptResult",
    "Policy",
    "Target",
    "adapt",
    "DatasetSplits",
    "LabelledDataset",
    "Registry",
    "create_model",
    "list_datasets",
    "list_models",
    "load_student",
    "load_dataset",
]
