"""Tests of fewshot_kd.measure against hand-computed values and scikit-learn."""

from __future__ import annotations

import io
import json
import os
import platform
import re
import shutil
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from rich.console import Console
from safetensors.torch import save_file

from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.errors import ClassCountMismatchError, UnsupportedLayerError
from fewshot_kd.measure import (
    LatencyResult,
    ModelReport,
    classification_metrics,
    compare,
    confusion_matrix,
    count_macs,
    count_params,
    environment_info,
    evaluate,
    latency_profile,
    measure_latency,
    measure_model,
    measure_peak_memory,
    render_table,
    rss_counter_slack_bytes,
    saved_size_bytes,
)

MiB = 1 << 20


class CharCounter(nn.Module):
    """A toy text model: per-string letter counts (no MACs) then a linear head."""

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.head = nn.Linear(3, num_classes)

    def forward(self, texts: list[str]) -> torch.Tensor:
        feats = torch.tensor([[t.count("a"), t.count("b"), len(t)] for t in texts], dtype=torch.float32)
        return self.head(feats.to(self.head.weight.device))


class KeywordModel(nn.Module):
    """Takes a tokenised batch as keyword tensors, like a Hugging Face model."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = (self.embed(input_ids) * attention_mask[..., None]).sum(1)
        return self.head(pooled)


# ---------------------------------------------------------------- MACs


def test_macs_of_linear_is_batch_times_in_times_out():
    assert count_macs(nn.Linear(7, 5), torch.rand(3, 7)) == 3 * 7 * 5


def test_macs_of_conv2d_hand_computed():
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    # outputs 2*8*6*6, each a 3*3*3 dot product
    assert count_macs(conv, torch.rand(2, 3, 6, 6)) == (2 * 8 * 6 * 6) * (3 * 3 * 3)
    grouped = nn.Conv2d(4, 8, kernel_size=3, stride=2, groups=2)
    # 7x7 input, stride 2, no padding -> 3x3 outputs; each sees 4/2 channels
    assert count_macs(grouped, torch.rand(1, 4, 7, 7)) == (8 * 3 * 3) * (2 * 3 * 3)


def test_macs_of_a_small_cnn_add_up():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 10))
    expected = (2 * 4 * 4) * 9 + 32 * 10
    assert count_macs(model, torch.rand(1, 1, 6, 6)) == expected


def test_macs_accept_text_tuple_and_keyword_inputs():
    assert count_macs(CharCounter(), ["ab", "bba", "c"]) == 3 * 3 * 2
    ids = torch.randint(0, 20, (4, 5))
    kwargs = {"input_ids": ids, "attention_mask": torch.ones(4, 5)}
    assert count_macs(KeywordModel(), kwargs) == 4 * 8 * 3
    assert count_macs(KeywordModel(), (ids, torch.ones(4, 5))) == 4 * 8 * 3


def test_macs_do_not_change_the_model():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    model.train()
    model[2].eval()
    before = model[1].running_mean.clone()
    count_macs(model, torch.rand(8, 4) * 10)
    assert torch.equal(model[1].running_mean, before)
    assert model.training and model[1].training and not model[2].training


def test_macs_of_dynamically_quantized_linear_match_float():
    float_model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            quantized = torch.ao.quantization.quantize_dynamic(float_model, {nn.Linear}, dtype=torch.qint8)
        except (AttributeError, RuntimeError) as error:
            pytest.skip(f"dynamic quantization unavailable in this torch build: {error}")
        x = torch.rand(5, 6)
        assert count_macs(quantized, x) == count_macs(float_model, x) == 5 * (6 * 4 + 4 * 2)
        assert count_params(quantized) == count_params(float_model) == 6 * 4 + 4 + 4 * 2 + 2


# ---------------------------------------------------------------- parameters and size


def tied_model() -> nn.Module:
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=False))
    model[1].weight = model[0].weight
    return model


def test_params_count_shared_weights_once():
    assert count_params(tied_model()) == 10 * 4
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    assert count_params(model) == (3 * 2 + 2) + (2 * 2 + 2)
    model[0].requires_grad_(False)
    assert count_params(model, trainable_only=True) == 2 * 2 + 2
    assert count_params(model) == 14


def test_params_count_a_tensor_shared_by_two_parameter_objects_once():
    base = nn.Linear(5, 5, bias=False)
    other = nn.Linear(5, 5, bias=False)
    other.weight = nn.Parameter(base.weight.data)  # same storage, different Parameter
    assert count_params(nn.ModuleList([base, other])) == 25


def test_saved_size_is_the_real_file_size(tmp_path):
    model = nn.Sequential(nn.Linear(100, 50), nn.Linear(50, 10))
    size = saved_size_bytes(model)
    reference = tmp_path / "ref.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(reference))
    assert size == os.path.getsize(reference)
    assert saved_size_bytes(reference) == os.path.getsize(reference)
    assert saved_size_bytes(str(reference)) == os.path.getsize(reference)
    assert size >= count_params(model) * 4
    assert saved_size_bytes(model.state_dict()) == size


def test_saved_size_grows_with_params_and_stores_tied_weights_once():
    small, large = nn.Linear(10, 10), nn.Linear(100, 100)
    assert saved_size_bytes(large) - saved_size_bytes(small) >= (count_params(large) - count_params(small)) * 4
    untied = nn.Sequential(nn.Embedding(1000, 16), nn.Linear(16, 1000, bias=False))
    assert saved_size_bytes(tied_model()) < saved_size_bytes(nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=False)))
    assert saved_size_bytes(untied) >= 2 * 1000 * 16 * 4


def test_saved_size_torch_format_and_folders(tmp_path):
    model = nn.Linear(64, 64)
    size = saved_size_bytes(model, format="torch")
    torch.save(model.state_dict(), tmp_path / "a.pt")
    assert size >= count_params(model) * 4
    assert abs(size - os.path.getsize(tmp_path / "a.pt")) < 256  # only the archive's inner name differs
    (tmp_path / "b.bin").write_bytes(b"x" * 123)
    assert saved_size_bytes(tmp_path) == os.path.getsize(tmp_path / "a.pt") + 123
    with pytest.raises(FileNotFoundError):
        saved_size_bytes(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="format"):
        saved_size_bytes(model, format="pickle")


def test_safetensors_size_refuses_quantized_tensors_with_advice():
    state = {"w": torch.quantize_per_tensor(torch.rand(4, 4), 0.1, 0, torch.qint8)}
    with pytest.raises(UnsupportedLayerError, match="format='torch'"):
        saved_size_bytes(state)
    assert saved_size_bytes(state, format="torch") > 16


# ---------------------------------------------------------------- metrics


def test_metrics_hand_computed():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    m = classification_metrics(y_true, y_pred, num_classes=3)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["macro_precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert m["macro_recall"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert m["macro_f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert m["num_examples"] == 6


def test_metrics_match_scikit_learn():
    sklearn = pytest.importorskip("sklearn.metrics")
    generator = torch.Generator().manual_seed(3)
    for trial in range(5):
        y_true = torch.randint(0, 5, (200,), generator=generator)
        y_pred = torch.where(torch.rand(200, generator=generator) < 0.6, y_true, torch.randint(0, 6, (200,), generator=generator))
        if trial == 0:
            y_pred[y_pred == 4] = 0  # a class that is never predicted
        m = classification_metrics(y_true, y_pred, num_classes=7)  # class 6 never occurs
        t, p = y_true.numpy(), y_pred.numpy()
        assert m["accuracy"] == pytest.approx(sklearn.accuracy_score(t, p))
        for ours, theirs in (("macro_precision", "precision_score"), ("macro_recall", "recall_score"), ("macro_f1", "f1_score")):
            assert m[ours] == pytest.approx(getattr(sklearn, theirs)(t, p, average="macro", zero_division=0)), ours
        assert m["confusion_matrix"] == sklearn.confusion_matrix(t, p, labels=list(range(7))).tolist()


def test_confusion_matrix_rejects_labels_out_of_range():
    assert confusion_matrix([1, 0], [1, 1]).tolist() == [[0, 1], [0, 1]]
    with pytest.raises(ClassCountMismatchError, match="num_classes"):
        confusion_matrix([0, 3], [0, 1], num_classes=2)
    with pytest.raises(ValueError, match="must match"):
        classification_metrics([0, 1], [0])


def identity_model(num_classes: int) -> nn.Module:
    model = nn.Linear(num_classes, num_classes, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(num_classes))
    return model


def test_evaluate_on_a_tiny_dataset_in_several_batches():
    scores = torch.tensor([[5.0, 0, 0], [0, 5, 0], [0, 0, 5], [5, 0, 0], [0, 5, 0], [0, 0, 5], [0, 5, 0]])
    labels = torch.tensor([0, 1, 2, 1, 1, 0, 1])  # predictions 0 1 2 0 1 2 1 -> 5 of 7 right
    data = LabelledDataset(scores, labels, ("a", "b", "c"), name="tiny")
    model = identity_model(3)
    model.train()
    m = evaluate(model, data, batch_size=3)
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["confusion_matrix"] == [[1, 0, 1], [1, 3, 0], [0, 0, 1]]
    assert m == classification_metrics(labels, torch.tensor([0, 1, 2, 0, 1, 2, 1]), 3)
    assert model.training


def test_evaluate_text_dataset_and_wrong_head():
    model = CharCounter()
    with torch.no_grad():  # class 1 if the text has more "a" than "b"
        model.head.weight.copy_(torch.tensor([[0.0, 1, 0], [1, 0, 0]]))
        model.head.bias.zero_()
    data = LabelledDataset(["aab", "bb", "a", "abb"], torch.tensor([1, 0, 1, 1]), ("neg", "pos"), name="text")
    assert evaluate(model, data, batch_size=2)["accuracy"] == pytest.approx(3 / 4)
    images = LabelledDataset(torch.rand(4, 2), torch.tensor([0, 1, 2, 3]), ("a", "b", "c", "d"), name="four")
    with pytest.raises(ClassCountMismatchError, match="4 classes"):
        evaluate(identity_model(2), images)


# ---------------------------------------------------------------- latency


def test_latency_is_positive_with_the_right_batch_size():
    result = measure_latency(nn.Linear(16, 4), torch.rand(8, 16), warmup=2, repeats=7)
    assert isinstance(result, LatencyResult)
    assert result.batch_size == 8 and result.repeats == 7 and result.warmup == 2
    assert 0 < result.min_ms <= result.median_ms <= result.p90_ms
    assert result.mean_ms > 0 and result.per_example_ms == pytest.approx(result.median_ms / 8)
    assert result.threads == torch.get_num_threads() and result.device == "cpu"
    assert json.loads(json.dumps(result.to_dict()))["batch_size"] == 8


def test_latency_profile_uses_each_batch_size():
    profile = latency_profile(CharCounter(), lambda n: ["ab"] * n, batch_sizes=(1, 5), warmup=1, repeats=3)
    assert sorted(profile) == [1, 5]
    assert [profile[n].batch_size for n in (1, 5)] == [1, 5]
    with pytest.raises(ValueError, match="returned a batch of 2"):
        latency_profile(nn.Linear(2, 2), lambda n: torch.rand(2, 2), batch_sizes=(3,), repeats=1)
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(nn.Linear(2, 2), torch.rand(1, 2), repeats=0)


# ---------------------------------------------------------------- memory


def test_peak_memory_of_a_big_allocation_is_at_least_its_size():
    size = 64 * MiB  # above glibc's largest mmap threshold: always fresh pages

    def allocate() -> float:
        big = torch.ones(size // 4, dtype=torch.float32)
        return float(big[-1])

    result, peak = measure_peak_memory(allocate)
    assert result == 1.0
    # the kernel's RSS counters lag by a documented, bounded number of pages
    assert peak + rss_counter_slack_bytes() >= size
    assert rss_counter_slack_bytes() < size // 8
    assert peak < 4 * size
    _, idle = measure_peak_memory(lambda: None)
    assert idle < 16 * MiB


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="freed heap is returned with glibc's malloc_trim")
def test_peak_memory_counts_reused_heap_pages():
    size = 8 * MiB  # below glibc's mmap threshold once raised: comes from the heap, reused

    def allocate() -> float:
        return float(torch.ones(size // 4)[-1])

    for _ in range(3):
        allocate()
    for _ in range(2):
        _, peak = measure_peak_memory(allocate)
        assert peak + rss_counter_slack_bytes() >= size


@pytest.mark.gpu
def test_peak_memory_on_cuda():
    size = 64 * MiB
    _, peak = measure_peak_memory(lambda: torch.ones(size // 4, device="cuda").sum().item(), device="cuda")
    assert peak >= size


# ---------------------------------------------------------------- reports


def report(name: str, params: int, macs: int, size: int, ms: float, acc: float) -> ModelReport:
    timing = LatencyResult(ms, ms, ms, ms, 1, 3, 1, 1, "cpu")
    return ModelReport(name, params, macs, size, latency={1: timing}, metrics={"accuracy": acc, "macro_f1": acc})


def test_compare_gives_teacher_over_student_ratios():
    teacher = report("teacher", 1000, 4000, 8000, 10.0, 0.9)
    student = report("student", 250, 1000, 1000, 2.5, 0.85)
    ratios = compare(teacher, student)
    assert ratios.params_ratio == 4.0 and ratios.macs_ratio == 4.0 and ratios.size_ratio == 8.0
    assert ratios.speedup == {1: 4.0}
    assert ratios.metric_deltas["accuracy"] == pytest.approx(-0.05)
    assert json.loads(json.dumps(ratios.to_dict()))["size_ratio"] == 8.0
    other = ModelReport("q", 250, 1000, 900, size_format="torch")
    with pytest.raises(ValueError, match="size_format"):
        compare(teacher, other)


def test_report_round_trips_through_json_and_renders():
    teacher = report("teacher", 1_500_000, 40_000_000, 6 * MiB, 12.0, 0.912)
    student = report("student", 150_000, 4_000_000, 600 * 1024, 3.0, 0.8)
    data = json.loads(json.dumps(teacher.to_dict()))
    assert ModelReport.from_dict(data) == teacher
    table = render_table([teacher, student], baseline=teacher, title="CIFAR-10")
    headers = [column.header for column in table.columns]
    assert headers[:5] == ["model", "params", "MACs", "size", "ms b1"]
    assert "accuracy" in headers and "×size" in headers and table.row_count == 2
    console = Console(file=io.StringIO(), width=200)
    console.print(table)
    text = console.file.getvalue()
    assert "1.50 M" in text and "6.00 MiB" in text and "91.20%" in text and "10.24×" in text
    assert render_table(student).row_count == 1


def test_measure_model_fills_every_field():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 3))
    data = LabelledDataset(torch.rand(10, 2, 3, 3), torch.arange(10) % 3, ("a", "b", "c"), name="tiny")
    result = measure_model(model, lambda n: torch.rand(n, 2, 3, 3), name="tiny", dataset=data, batch_sizes=(1, 4), repeats=3, warmup=1)
    assert result.params == 18 * 3 + 3 and result.macs == 18 * 3
    assert result.size_bytes == saved_size_bytes(model)
    assert sorted(result.latency) == [1, 4] and result.latency_b1_ms > 0 and result.latency_b64_ms is None
    with torch.no_grad():
        correct = (model(data.all_inputs()).argmax(1) == data.labels).float().mean().item()
    assert result.metrics["num_examples"] == 10 and result.metrics["accuracy"] == pytest.approx(correct)
    assert result.peak_memory_bytes is not None and result.peak_memory_bytes >= 0


# ---------------------------------------------------------------- environment


def test_environment_info_describes_the_machine(tmp_path):
    info = environment_info(tmp_path)  # not a git repository: no commit, no error
    assert info["torch"] == torch.__version__
    assert info["torch_threads"] == torch.get_num_threads()
    assert info["cpu_count"] == os.cpu_count() and info["cpu_model"]
    assert info["git_commit"] is None and info["git_dirty"] is None
    assert info["device"] == (torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
    json.dumps(info)


def test_environment_info_reads_the_git_commit():
    repo = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (repo / ".git").exists():
        pytest.skip("git or the repository's .git folder is not available")
    commit = environment_info(repo)["git_commit"]
    if commit is None:
        pytest.skip("git refused to read this checkout (e.g. 'dubious ownership')")
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
