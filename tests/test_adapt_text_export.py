"""adapt()'s files for text students: a student derived from a Hugging Face folder (or a
TextClassifier with a folder's tokenizer) reloads with load_student (safetensors + JSON + its
tokenizer files, no pickles) and computes the same logits; integer=True builds the
dynamic-int8 ONNX model taking token ids."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers")

from fewshot_kd import LabelledDataset, Policy, adapt, create_model, load_student  # noqa: E402
from fewshot_kd.errors import BadInputError, ClassCountMismatchError, CorruptFileError  # noqa: E402
from text_fixtures import texts, tiny_hf_classifier, tiny_text_classifier  # noqa: E402

FAST = Policy(name="fast", steps=2, views_per_shot=1, lr=3.5e-4)


def _data(n: int = 30) -> LabelledDataset:
    return LabelledDataset(texts(n), torch.tensor([i % 3 for i in range(n)]), ("a", "b", "c"), name="toy-text")


@pytest.mark.parametrize("bits", [8, None])
@pytest.mark.parametrize("kind", ["hugging_face", "text_classifier"])
def test_a_student_with_its_own_tokenizer_reloads_with_the_same_logits(kind, bits, tmp_path):
    make = tiny_hf_classifier if kind == "hugging_face" else tiny_text_classifier
    teacher = make(tmp_path / "teacher")
    out = tmp_path / "out"
    result = adapt(teacher, None, shots=4, data=_data(), target={"macs": 0.5, "bits": bits}, policy=FAST,
                   export_dir=out, progress=False)
    assert result.report["decisions"]["prune"]["heads"]  # pruned: the reload must rebuild the new shapes
    weights = "student.int8.safetensors" if bits else "student.safetensors"
    assert sorted(p.name for p in out.iterdir()) == ["student.arch.json", weights, "tokenizer.json",
                                                     "tokenizer_config.json"]
    assert str(tmp_path) not in (out / "student.arch.json").read_text()  # the folder travels: no paths in it
    loaded = load_student(out)
    batch = texts(12, offset=5)  # 1 to 7 words: padded batches
    with torch.no_grad():
        expected, got = result.student.eval()(batch), loaded(batch)
    assert torch.allclose(got, expected, atol=1e-5 * max(1.0, float(expected.abs().max())))
    assert type(loaded).__name__ == type(teacher).__name__ and not loaded.training


def test_the_architecture_rebuilds_by_name_and_bad_configs_are_named(tmp_path):
    student = tiny_hf_classifier(tmp_path / "teacher")
    twin = create_model(**student.arch)  # random weights, the folder's tokenizer
    twin.load_state_dict(student.state_dict())
    with torch.no_grad():
        assert torch.allclose(twin.eval()(texts(5)), student(texts(5)), atol=1e-6)
    bare = create_model(**{**student.arch, "tokenizer": None})
    with pytest.raises(BadInputError, match="without a tokenizer.*forward_ids"):
        bare(texts(2))
    with pytest.raises(BadInputError, match="model_type"):
        create_model("hf_sequence_classifier", config={"hidden_size": 16})
    with pytest.raises(ClassCountMismatchError, match="3 labels"):
        create_model("hf_sequence_classifier", config=student.arch["config"], num_classes=5)


def test_a_folder_that_lost_its_tokenizer_is_named(tmp_path):
    teacher = tiny_hf_classifier(tmp_path / "teacher")
    out = tmp_path / "out"
    adapt(teacher, None, shots=4, data=_data(), target={"macs": None, "bits": None}, policy=FAST, export_dir=out,
          progress=False)
    (out / "tokenizer_config.json").unlink()
    with pytest.raises(CorruptFileError, match="no tokenizer_config.json"):
        load_student(out)


def test_integer_builds_the_dynamic_int8_text_model_and_reports_it(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    teacher = tiny_text_classifier(tmp_path / "tokenizer")
    out = tmp_path / "out"
    result = adapt(teacher, None, shots=4, data=_data(), target={"macs": None, "layers": "last 1", "bits": 8},
                   policy=FAST, export_dir=out, integer=True, progress=False)
    integer = json.loads(json.dumps(result.report["integer"]))
    assert integer["integer_arithmetic"] is True and "MatMulInteger" in integer["backend"]
    assert integer["scheme"].startswith("onnxruntime dynamic int8")
    agreement = integer["agreement_on_shots"]
    assert agreement["max_abs_logit_diff"] <= 0.05 * agreement["max_abs_logit"]
    assert {"student.int8.onnx", "student.float.onnx", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    session = ort.InferenceSession(str(out / "student.int8.onnx"), providers=["CPUExecutionProvider"])
    tokens = teacher.tokenizer(texts(4), padding=True, return_tensors="np")
    logits = session.run(None, {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]})[0]
    assert logits.shape == (4, 3)


class _WordCounts(torch.nn.Module):
    """A text model without token ids: word counts into a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(1, 3)

    def forward(self, batch: list[str]) -> torch.Tensor:
        return self.linear(torch.tensor([[float(len(t.split()))] for t in batch]))


def test_integer_for_a_text_model_without_token_ids_is_refused_before_any_work(tmp_path):
    pytest.importorskip("onnxruntime")
    with pytest.raises(BadInputError, match="integer=True exports a text student.*_WordCounts"):
        adapt(_WordCounts(), None, shots=4, data=_data(), policy=FAST, integer=True, progress=False)
