"""Teacher-training recipes for task families whose teacher does not ship pretrained."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from fewshot_kd.registry import Registry
from fewshot_kd.training import TrainConfig


@dataclass(frozen=True)
class TeacherRecipe:
    """How to train one teacher: which dataset, which model, which schedule.

    ``max_train_examples`` caps the training set (a stratified, seeded subset) so text
    teachers train in minutes on a CPU. The recipe's :meth:`fingerprint` keys the cache.
    """

    name: str
    dataset: str
    model: str
    model_kwargs: dict = field(default_factory=dict)
    train: TrainConfig = TrainConfig()
    max_train_examples: int | None = None
    version: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TeacherRecipe":
        data = dict(data)
        data["train"] = TrainConfig(**data.get("train", {}))
        return cls(**data)

    def fingerprint(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


RECIPES: Registry[TeacherRecipe] = Registry("teacher recipe")


def _add(recipe: TeacherRecipe, help: str) -> None:
    RECIPES.register(recipe.name, help)(recipe)


_CNN = TrainConfig(epochs=12, lr=2e-3, batch_size=64, weight_decay=5e-4, optimizer="adamw")
_TEXT = TrainConfig(epochs=1, lr=5e-5, batch_size=32, weight_decay=0.01, optimizer="adamw")

_add(TeacherRecipe("digits-cnn", "digits", "small_cnn", {"in_channels": 1, "num_classes": 10, "input_size": 8}, _CNN),
     "small CNN on scikit-learn digits (embedded, offline)")
_add(TeacherRecipe("omniglot-cnn", "omniglot", "small_cnn", {"in_channels": 1, "num_classes": 242, "width": 32, "input_size": 105}, _CNN),
     "wider small CNN on the 242 Omniglot background characters")
for _name, _online in (("mnist", "torchvision:MNIST"), ("fashion_mnist", "torchvision:FashionMNIST")):
    _add(TeacherRecipe(f"{_name}-cnn", _online, "small_cnn", {"in_channels": 1, "num_classes": 10, "input_size": 28},
                       TrainConfig(epochs=3, lr=2e-3, batch_size=128, weight_decay=5e-4, optimizer="adamw")),
         f"small CNN on {_online} (needs the torchvision download)")
for _name, _classes in (("sst2", 2), ("ag_news", 4), ("mr", 2), ("subj", 2)):
    _add(TeacherRecipe(f"{_name}-minilm", _name, "minilm_classifier", {"num_classes": _classes}, _TEXT,
                       max_train_examples=4000),
         f"all-MiniLM-L6-v2 fine-tuned on {_name} (4,000 training sentences, 1 epoch)")


def get_recipe(name: str) -> TeacherRecipe:
    return RECIPES.get(name)


def list_recipes() -> list[str]:
    return RECIPES.names()
