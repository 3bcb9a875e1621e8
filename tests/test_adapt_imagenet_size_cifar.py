"""One end-to-end check of an ImageNet-size teacher on real photos: CIFAR-10 images upscaled to
224x224, a torchvision ResNet-18 trained briefly on some of them, adapt()ed at half the MACs and int8."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fewshot_kd import LabelledDataset, adapt, create_model, load_student
from fewshot_kd.data.class_subset import class_subset
from fewshot_kd.data.local_files import CIFAR10_FILES, load_image_npz
from fewshot_kd.measure import count_macs
from fewshot_kd.training import TrainConfig, fit

pytest.importorskip("torchvision")

CLASSES = (0, 1, 6)  # airplane, automobile, frog
SIZE = 224


def upscaled(data: LabelledDataset, size: int = SIZE) -> LabelledDataset:
    """``data``'s images resized (bilinear) to ``size`` x ``size``, still ``uint8``."""
    big = F.interpolate(data.inputs.float(), size=(size, size), mode="bilinear", align_corners=False)
    return LabelledDataset(big.round().clamp(0, 255).to(torch.uint8), data.labels, data.class_names, data.name)


def three_way_split(data: LabelledDataset, train: int, pool: int) -> tuple[LabelledDataset, ...]:
    """Per class, in file order: the first ``train`` examples, the next ``pool``, and the rest."""
    parts = ([], [], [])
    for c in range(data.num_classes):
        idx = torch.nonzero(data.labels == c).flatten().tolist()
        for part, chosen in zip(parts, (idx[:train], idx[train:train + pool], idx[train + pool:])):
            part.extend(chosen)
    return tuple(data.subset(sorted(p)) for p in parts)


@pytest.mark.slow
@pytest.mark.shared_data
def test_resnet18_teacher_on_upscaled_cifar10_photos(shared_data_files, tmp_path, record_property):
    root = shared_data_files(CIFAR10_FILES["test_exact"])
    photos = class_subset(load_image_npz(CIFAR10_FILES["test_exact"], data_root=root, name="cifar10"), CLASSES)
    train, pool, held_out = three_way_split(upscaled(photos), train=50, pool=20)
    torch.manual_seed(0)
    teacher = create_model("torchvision", arch="resnet18", num_classes=len(CLASSES))
    fit(teacher, train, TrainConfig(epochs=6, lr=1e-3, batch_size=16, augment="crop_flip"), progress=False)
    result = adapt(teacher.eval(), None, shots=10, data=pool, eval_data=held_out, target={"macs": 0.5, "bits": 8},
                   policy={"steps": 40, "views_per_shot": 4, "batch_size": 16}, export_dir=tmp_path, progress=False)
    accuracy = {who: result.report["eval"]["eval"][who]["accuracy"] for who in ("teacher", "student")}
    record_property("accuracy", accuracy)
    print(f"\nupscaled CIFAR-10 {CLASSES}, {len(held_out)} held-out photos: teacher {accuracy['teacher']:.1%}, "
          f"int8 student at half the MACs {accuracy['student']:.1%}")
    one = held_out.input_batch(slice(0, 1))
    assert count_macs(result.student, one) <= 0.5 * 1.05 * count_macs(teacher, one)
    assert accuracy["teacher"] > 1 / len(CLASSES)  # it learned something from 50 photos a class
    x = held_out.input_batch(slice(0, 8))
    with torch.no_grad():
        student_out = result.student.eval()(x)
        torch.testing.assert_close(load_student(tmp_path)(x), student_out, rtol=1e-4,
                                   atol=1e-4 * float(student_out.abs().max()))
