"""ImageNet-size teachers through adapt(): random-weight torchvision ResNet-18 and MobileNetV3-Small
at 224x224 (SE blocks, hardswish, depthwise convs), derived at half the MACs, int8-exported, reloaded."""

from __future__ import annotations

import pytest
import torch

from fewshot_kd import LabelledDataset, adapt, create_model, load_student
from fewshot_kd.measure import count_macs

torchvision = pytest.importorskip("torchvision")

SIZE = 224
TINY = {"steps": 5, "views_per_shot": 2, "batch_size": 8, "flip": False}
pytestmark = pytest.mark.filterwarnings("ignore:the student agrees with the teacher on only")  # 5 steps


def patterns(per_class: int = 8, size: int = SIZE, seed: int = 0) -> LabelledDataset:
    """Three classes of noisy ``uint8`` images: reddish horizontal stripes, greenish vertical
    stripes, bluish checks."""
    g = torch.Generator().manual_seed(seed)
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    textures = [(rows // 16) % 2, (cols // 16) % 2, ((rows // 16) + (cols // 16)) % 2]
    images, labels = [], []
    for label, texture in enumerate(textures):
        for _ in range(per_class):
            img = torch.rand(3, size, size, generator=g) * 80 + texture * 60
            img[label] += 100
            images.append(img.clamp(0, 255).to(torch.uint8))
            labels.append(label)
    return LabelledDataset(torch.stack(images), torch.tensor(labels), ("red", "green", "blue"), name="patterns")


def random_teacher(arch: str, data: LabelledDataset) -> torch.nn.Module:
    """``arch`` with random weights, its BatchNorm statistics estimated on ``data`` (torchvision's
    init leaves a random MobileNetV3's logits near 1e-10 otherwise)."""
    torch.manual_seed(0)
    model = create_model("torchvision", arch=arch, num_classes=data.num_classes)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches seen
    model.train()
    with torch.no_grad():
        model(data.input_batch(slice(None)))
    return model.eval()


def state_bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def check_derived_int8_student(arch: str, tmp_path, integer: bool = False):
    """adapt() ``arch`` at half the MACs and 8 bits; check MACs, file size, reload and input sizes."""
    data = patterns()
    teacher = random_teacher(arch, data)
    result = adapt(teacher, None, shots=4, data=data, target={"macs": 0.5, "bits": 8}, policy=TINY,
                   export_dir=tmp_path, integer=integer, progress=False)
    student = result.student.eval()
    one = data.input_batch(slice(0, 1))
    assert count_macs(student, one) <= 0.5 * 1.05 * count_macs(teacher, one)
    stored = (tmp_path / "student.int8.safetensors").stat().st_size
    weights = sum(m.weight.numel() for m in student.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert stored >= weights  # every conv / linear weight kept, at one byte
    expected = 4 * state_bytes(teacher) / state_bytes(student)  # int8 against fp32, times the pruning
    assert state_bytes(teacher) / stored >= 0.8 * expected  # less fp32 per-channel scales and BatchNorm
    x = torch.rand(3, 3, SIZE, SIZE)
    with torch.no_grad():
        out = student(x)
        torch.testing.assert_close(load_student(tmp_path)(x), out, rtol=1e-4, atol=1e-4 * float(out.abs().max()))
        assert student(torch.rand(1, 3, 160, 128)).shape == (1, 3)  # global pooling: other sizes run too
    assert out.shape == (3, 3) and torch.isfinite(out).all()
    return result


@pytest.mark.slow
def test_resnet18_at_224_is_derived_pruned_and_int8_exported(tmp_path):
    result = check_derived_int8_student("resnet18", tmp_path)
    assert result.student.net.fc.in_features < 512  # the last stage lost channels too


def test_mobilenet_v3_small_with_se_blocks_prunes_and_exports_to_int8(tmp_path):
    result = check_derived_int8_student("mobilenet_v3_small", tmp_path, integer=True)
    se = [m for m in result.student.modules() if type(m).__name__ == "SqueezeExcitation"]
    assert se and all(m.fc2.out_channels == m.fc1.in_channels for m in se)  # the excitation scales every channel
    assert result.report["integer"]["integer_arithmetic"]
