"""Teacher-training recipes for task families whose teacher does not ship pretrained."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import torch

from fewshot_kd.data._split import stratified_split
from fewshot_kd.registry import Registry
from fewshot_kd.teachers.lm_recipe import LMTeacherRecipe, LMTrainConfig
from fewshot_kd.teachers.qa_recipe import QATeacherRecipe, QATrainConfig
from fewshot_kd.training import TrainConfig


@dataclass(frozen=True)
class TeacherRecipe:
    """How to train one teacher: which dataset, which model, which schedule.

    ``max_train_examples`` caps the training set (a stratified, seeded subset) so text
    teachers train in minutes on a CPU. ``holdout`` (``{"fraction": f, "seed": s}``) keeps a
    stratified, seeded fraction of the train split from the teacher: meta-training episodes
    draw from it (see :meth:`pools`). ``classes`` (label ids, in output order) trains a
    specialist on those classes only, its outputs relabelled ``0 .. len(classes) - 1``
    (``model_kwargs`` must give it that many). The recipe's :meth:`fingerprint` keys the cache.
    """

    name: str
    dataset: str
    model: str
    model_kwargs: dict = field(default_factory=dict)
    train: TrainConfig = TrainConfig()
    max_train_examples: int | None = None
    version: int = 1
    holdout: dict | None = None
    classes: tuple[int, ...] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TeacherRecipe":
        data = dict(data)
        data["train"] = TrainConfig(**data.get("train", {}))
        if data.get("classes") is not None:
            data["classes"] = tuple(data["classes"])
        return cls(**data)

    def fingerprint(self) -> str:
        data = self.to_dict()
        for key in ("holdout", "classes"):
            if data[key] is None:
                del data[key]  # recipes without one keep the cache key they had before it existed
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def pools(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices into the train split ``(teacher pool, held-out pool)``, disjoint and
        stratified; without a holdout the teacher has every index and nothing is held out."""
        if self.holdout is None:
            return torch.arange(len(labels)), torch.zeros(0, dtype=torch.long)
        return stratified_split(labels, float(self.holdout["fraction"]), int(self.holdout["seed"]))


RECIPES: Registry[TeacherRecipe | LMTeacherRecipe | QATeacherRecipe] = Registry("teacher recipe")


def _add(recipe: TeacherRecipe | LMTeacherRecipe | QATeacherRecipe, help: str) -> None:
    RECIPES.register(recipe.name, help)(recipe)


_CNN = TrainConfig(epochs=12, lr=2e-3, batch_size=64, weight_decay=5e-4, optimizer="adamw")
_TEXT = TrainConfig(epochs=1, lr=5e-5, batch_size=32, weight_decay=0.01, optimizer="adamw")

_add(TeacherRecipe("digits-cnn", "digits", "small_cnn", {"in_channels": 1, "num_classes": 10, "input_size": 8}, _CNN,
                   holdout={"fraction": 0.5, "seed": 0}),
     "small CNN on half of scikit-learn digits' train split (the other half is held out for meta-training)")
# Omniglot at 28x28: the same CNN at 105x105 for 12 epochs (_CNN) reached 5.9 % on the 1,210 test images (242
# classes, 5 drawers each to learn from) after 12 minutes. At 28x28 with random crops, 40 epochs gave 69.8 % and
# 80 epochs 74.3 % (width 64 at 40 epochs: 67.4 %); 80 epochs take about 2 minutes on one CPU core.
_add(TeacherRecipe("omniglot-cnn", "omniglot28", "small_cnn", {"in_channels": 1, "num_classes": 242, "width": 32, "input_size": 28},
                   TrainConfig(epochs=80, lr=2e-3, batch_size=64, weight_decay=5e-4, optimizer="adamw", augment="crop"),
                   holdout={"fraction": 2 / 3, "seed": 0}),
     "wider small CNN on 5 of the 15 train drawers of each Omniglot background character at 28x28 (10 held out for meta-training)")
_add(TeacherRecipe("mnist-cnn", "torchvision:MNIST", "small_cnn", {"in_channels": 1, "num_classes": 10, "input_size": 28},
                   TrainConfig(epochs=3, lr=2e-3, batch_size=128, weight_decay=5e-4, optimizer="adamw")),
     "small CNN on torchvision:MNIST (needs the torchvision download)")
# Local files, no download. A third of train (20,000 images, 2,000 per class) teaches for five epochs
# (about 2 minutes on 2 CPU cores, 89.3 % on the 10k test split); the other 40,000 images are the
# meta-training episode pool.
_add(TeacherRecipe("fashion_mnist-cnn", "fashion_mnist", "small_cnn",
                   {"in_channels": 1, "num_classes": 10, "input_size": 28},
                   TrainConfig(epochs=5, lr=2e-3, batch_size=128, weight_decay=5e-4, optimizer="adamw"),
                   holdout={"fraction": 2 / 3, "seed": 0}),
     "small CNN on a third of local Fashion-MNIST's train split (the other two thirds held out for meta-training)")
for _name, _classes in (("sst2", 2), ("ag_news", 4), ("mr", 2), ("subj", 2), ("mpqa", 2), ("dbpedia", 14)):
    _add(TeacherRecipe(f"{_name}-minilm", _name, "minilm_classifier", {"num_classes": _classes}, _TEXT,
                       max_train_examples=4000),
         f"all-MiniLM-L6-v2 fine-tuned on {_name} (4,000 training sentences, 1 epoch)")
# CR's train split has only 3,017 sentences, so a 4,000 cap would leave no episode pool: a stratified
# third is held out instead (1,005 sentences), and the teacher's 2,012 get two epochs, about the
# 125 optimizer steps of the capped recipes.
_add(TeacherRecipe("cr-minilm", "cr", "minilm_classifier", {"num_classes": 2},
                   TrainConfig(epochs=2, lr=5e-5, batch_size=32, weight_decay=0.01, optimizer="adamw"),
                   holdout={"fraction": 1 / 3, "seed": 0}),
     "all-MiniLM-L6-v2 fine-tuned on two thirds of cr's train split (2 epochs; a third held out for meta-training)")


# Specialists for the multi-teacher benchmark: CIFAR-10 split into two 5-class halves, each a
# ResNet-20 started from the pretrained 10-class backbone (fresh 5-way head) and fine-tuned on
# 2,500 train images of its classes (500 each) for 3 epochs: minutes on a CPU.
for _classes in ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9)):
    _add(TeacherRecipe(f"cifar10-resnet20-classes{_classes[0]}-{_classes[-1]}", "cifar10", "cifar_resnet20",
                       {"num_classes": 5, "pretrained": True},
                       TrainConfig(epochs=3, lr=1e-3, batch_size=64, weight_decay=5e-4, optimizer="adamw",
                                   augment="crop_flip"),
                       max_train_examples=2500, classes=_classes),
         f"ResNet-20 specialist on CIFAR-10 classes {_classes[0]}-{_classes[-1]} (pretrained backbone, new 5-way "
         f"head, 3 epochs on 2,500 images of its classes)")


# The same split of digits, tiny: each half's specialist on the digits-cnn teacher pool (a dry run of the cell).
for _classes in ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9)):
    _add(TeacherRecipe(f"digits-cnn-classes{_classes[0]}-{_classes[-1]}", "digits", "small_cnn",
                       {"in_channels": 1, "num_classes": 5, "input_size": 8}, _CNN,
                       holdout={"fraction": 0.5, "seed": 0}, classes=_classes),
         f"small CNN specialist on digits {_classes[0]}-{_classes[-1]} (digits-cnn's half of the train split)")


# A small byte-level GPT-2 (6 blocks, width 128, 4 heads, 1.26 M parameters) on Tiny Shakespeare's
# train split (the first 90 %): 400 steps of 16 random windows of its full 256-token context (so every
# position the sliding-window perplexity reads was trained), a few minutes on one CPU core.
_add(LMTeacherRecipe("tinyshakespeare-gpt2", "tinyshakespeare",
                     {"n_layer": 6, "n_embd": 128, "n_head": 4, "n_positions": 256, "dropout": 0.0},
                     LMTrainConfig(steps=400, lr=3e-3, batch_size=16, sequence_length=256, warmup_steps=40)),
     "byte-level GPT-2 (6 blocks, width 128) trained on Tiny Shakespeare's train split (400 steps)")


# The packaged all-MiniLM-L6-v2 (6 layers, width 384, 22.6 M parameters) with a fresh span head, fine-tuned
# on every question of SQuAD's 24 teacher articles (4,911), never an evaluated one: their windows of 192 tokens
# (stride 64: 7,110 windows), two epochs of batches of 16 at lr 1.5e-4 (890 steps, 63 minutes on 2 shared CPU
# cores). Scored on 500 fixed questions of the test articles: EM 56.0, F1 67.8. (The first recipe, 1,024 questions
# for one epoch at lr 2e-4, about 8 CPU-minutes, reached only EM 11.0, F1 18.7.)
_add(QATeacherRecipe("squad-minilm", "squad", None,
                     QATrainConfig(max_questions=4911, max_length=192, doc_stride=64, epochs=2, lr=1.5e-4,
                                   batch_size=16), eval_questions=500),
     "MiniLM-L6 + span head fine-tuned on the 4,911 questions of SQuAD's teacher articles (2 epochs, 192 tokens)")


def get_recipe(name: str) -> TeacherRecipe | LMTeacherRecipe | QATeacherRecipe:
    return RECIPES.get(name)


def list_recipes() -> list[str]:
    return RECIPES.names()
