import pytest
import torch

from fewshot_kd import create_model, load_dataset
from fewshot_kd.errors import ClassCountMismatchError, FewShotKDError, NonFiniteLossError
from fewshot_kd.teachers import TeacherRecipe, load_or_train_teacher
from fewshot_kd.teachers.store import stratified_cap, teacher_dir
from fewshot_kd.training import TrainConfig, fit, predict_logits

QUICK = TrainConfig(epochs=3, lr=5e-3, batch_size=64, optimizer="adam", cosine_schedule=False)


def digits():
    return load_dataset("digits")


def test_fit_learns_digits():
    splits = digits()
    model = create_model("tiny_cnn", num_classes=10)
    fit(model, splits.train, QUICK, progress=False)
    acc = (predict_logits(model, splits.test).argmax(-1) == splits.test.labels).float().mean()
    assert acc > 0.5  # chance is 0.1


def test_fit_rejects_wrong_class_count_and_empty_data():
    splits = digits()
    with pytest.raises(ClassCountMismatchError, match="num_classes=10"):
        fit(create_model("tiny_cnn", num_classes=3), splits.train, QUICK, progress=False)
    with pytest.raises(FewShotKDError, match="empty"):
        fit(create_model("tiny_cnn"), splits.train.subset([]), QUICK, progress=False)


def test_fit_raises_on_nan_loss():
    splits = digits()
    model = create_model("tiny_cnn", num_classes=10)
    with pytest.raises(NonFiniteLossError, match="learning rate"):
        fit(model, splits.train, QUICK, progress=False, criterion=lambda s, t, y: s.sum() * float("nan"))


def test_stratified_cap_keeps_proportions():
    train = digits().train
    capped = stratified_cap(train, 500, seed=0)
    assert len(capped) <= 500
    share = capped.class_counts().float() / len(capped)
    assert torch.allclose(share, train.class_counts().float() / len(train), atol=0.02)


def test_teacher_is_trained_once_then_reloaded(tmp_path):
    recipe = TeacherRecipe("digits-quick", "digits", "tiny_cnn", {"num_classes": 10}, QUICK)
    model, info = load_or_train_teacher(recipe, store_root=tmp_path, progress=False)
    assert info["test_accuracy"] > 0.5 and (teacher_dir(recipe, tmp_path) / "model.safetensors").is_file()
    again, info2 = load_or_train_teacher(recipe, store_root=tmp_path, progress=False)
    assert info2 == info
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(model(x), again(x))
    changed = TeacherRecipe("digits-quick", "digits", "tiny_cnn", {"num_classes": 10}, QUICK, version=2)
    assert teacher_dir(changed, tmp_path) != teacher_dir(recipe, tmp_path)
