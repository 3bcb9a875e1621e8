"""``python -m fewshot_kd.adapt``: the command end to end on digits, its output folder (whole
or absent), its ONNX student, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from fewshot_kd import load_dataset
from fewshot_kd.adapt import load_student
from fewshot_kd.adapt.cli import main
from fewshot_kd.adapt.cli_args import parse_target
from fewshot_kd.errors import BadInputError
from fewshot_kd.prune.serialize import save_pruned
from path_fixtures import image_folder, tiny_bert_folder


@pytest.fixture()
def teacher_file(teacher, tmp_path):
    """The shared digits teacher in this library's own safetensors format."""
    return str(save_pruned(teacher, tmp_path / "digits_teacher.safetensors"))


def _run(*argv: str) -> None:
    main([*argv, "--no-progress", "--device", "cpu"])


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_help_reads_well():
    done = subprocess.run([sys.executable, "-m", "fewshot_kd.adapt", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    for words in ("--teacher PATH_OR_NAME", "--data PATH_OR_NAME", "--target KEY=VALUE", "--onnx", "examples:",
                  "one sub-folder", "save_to_disk", "weights_only=True"):
        assert words in done.stdout


def test_the_command_writes_report_student_and_an_onnx_file_that_runs_without_fewshot_kd(teacher_file, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "runs" / "digits"
    _run("--teacher", teacher_file, "--data", "digits", "--shots", "5", "--steps", "3", "--seed", "1",
         "--target", "macs=0.5,bits=8", "--onnx", "--out", str(out))
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "student.arch.json", "student.int8.safetensors",
                                                    "student.onnx"]
    assert _leftovers(out.parent) == []
    report = json.loads((out / "report.json").read_text())
    assert report["shots"] == 5 and report["seed"] == 1 and report["target"]["bits"] == 8
    assert report["student_kind"] == "derived" and report["policy"]["steps"] == 3
    assert report["student"]["macs"] <= 0.5 * report["teacher"]["macs"] * 1.02
    assert "--steps 3" in report["cli"]["command"] and len(report["history"]) >= 1
    student = load_student(out)
    images = load_dataset("digits").test.input_batch(slice(0, 64))
    session = ort.InferenceSession(str(out / "student.onnx"), providers=["CPUExecutionProvider"])
    onnx_logits = torch.from_numpy(session.run(None, {"input": images.numpy()})[0])
    with torch.no_grad():
        torch_logits = student(images)
    assert onnx_logits.shape == (64, 10)
    assert torch.allclose(onnx_logits, torch_logits, atol=1e-3)


def test_a_failure_leaves_no_output_folder_and_no_partial_files(teacher_file, tmp_path, monkeypatch):
    import fewshot_kd.quant.integer as integer

    def broken_export(*args, **kwargs):
        raise BadInputError("export broke on purpose")

    monkeypatch.setattr(integer, "export_onnx", broken_export)
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="error: export broke on purpose"):
        _run("--teacher", teacher_file, "--data", "digits", "--shots", "2", "--steps", "1", "--onnx", "--out", str(out))
    assert not out.exists() and _leftovers(tmp_path) == []


def test_an_existing_output_folder_needs_overwrite_and_is_replaced_whole(teacher_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("from an earlier run")
    args = ("--teacher", teacher_file, "--data", "digits", "--shots", "2", "--steps", "1", "--target", "bits=none",
            "--out", str(out))
    with pytest.raises(SystemExit, match="already holds files.*--overwrite"):
        _run(*args)
    assert (out / "old.txt").is_file()
    _run(*args, "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "student.arch.json", "student.safetensors"]
    assert _leftovers(tmp_path) == []


def test_data_by_path_and_a_class_mismatch_on_the_command_line(teacher_file, tmp_path):
    digits = load_dataset("digits").train
    images = (digits.inputs[:90, 0] * 255).round().to(torch.uint8).numpy()
    np.savez(tmp_path / "three.npz", x=images, y=digits.labels[:90].numpy() % 3, class_names=np.array(["a", "b", "c"]))
    with pytest.raises(SystemExit, match="error: the teacher outputs 10 classes but the data has 3"):
        _run("--teacher", teacher_file, "--data", str(tmp_path / "three.npz"), "--shots", "2", "--out", str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv,message", [
    (["--data", "nowhere/at/all"], "error: nowhere/at/all does not exist"),
    (["--teacher", "no_such_teacher"], "error: unknown teacher 'no_such_teacher'"),
    (["--policy", '{"stepz": 3}'], "error: policy has unknown keys \\['stepz'\\]"),
    (["--policy", "{not json"], "error: --policy is not valid JSON"),
    (["--policy", "missing_policy.json"], "error: --policy 'missing_policy.json': no such file"),
    (["--shots", "500"], "error: .*500 shots per class asked"),
])
def test_bad_arguments_end_with_one_clear_error(teacher_file, tmp_path, argv, message):
    base = {"--teacher": teacher_file, "--data": "digits", "--shots": "2", "--out": str(tmp_path / "o")}
    base.update(dict(zip(argv[::2], argv[1::2])))
    with pytest.raises(SystemExit, match=message):
        _run(*[word for pair in base.items() for word in pair])
    assert not (tmp_path / "o").exists()


def test_a_text_student_gets_onnx_files_that_take_token_ids_and_reloads(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    tiny_bert_folder(tmp_path / "bert")
    words = ["good", "bad", "movie", "the", "is", "not"]
    rows = [(" ".join(words[(i + j) % 6] for j in range(1 + i % 5)), "pos" if i % 2 else "neg") for i in range(30)]
    (tmp_path / "reviews.csv").write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows))
    out = tmp_path / "out"
    _run("--teacher", str(tmp_path / "bert"), "--data", str(tmp_path / "reviews.csv"), "--shots", "4", "--steps", "2",
         "--onnx", "--integer", "--out", str(out))
    assert {"student.onnx", "student.int8.onnx", "student.arch.json", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    report = json.loads((out / "report.json").read_text())
    assert report["integer"]["integer_arithmetic"] is True and "dynamic" in report["integer"]["scheme"]
    student = load_student(out)  # rebuilt from its config JSON, with the tokenizer saved beside it
    batch = [t for t, _ in rows[:7]]
    tokens = student.tokenizer(batch, padding=True, return_tensors="np")
    session = ort.InferenceSession(str(out / "student.onnx"), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(None, {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]})[0]
    with torch.no_grad():
        torch_logits = student(batch)
    assert torch.allclose(torch.from_numpy(onnx_logits), torch_logits, atol=1e-4)


def test_targets_read_as_typed_values():
    assert parse_target("macs=0.5,bits=8") == {"macs": 0.5, "bits": 8}
    assert parse_target("params=0.25, bits=none, size_bytes=2MB") == {"params": 0.25, "macs": None, "bits": None,
                                                                          "size_bytes": 2_000_000}
    assert parse_target("layers=last 3,size_bytes=1KiB") == {"layers": "last 3", "size_bytes": 1024}
    for bad, words in (("macs", "key=value"), ("macs=2", "in \\(0, 1\\]"), ("speed=1", "unknown target keys"),
                       ("bits=eight", "not a number"), ("size_bytes=3 parsecs", "unit")):
        with pytest.raises(BadInputError, match=words):
            parse_target(bad)


def test_a_bad_target_is_an_argparse_error_with_the_reason(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--teacher", "x", "--data", "digits", "--out", "o", "--target", "macs=3"])
    assert stopped.value.code == 2 and "in (0, 1]" in capsys.readouterr().err


def test_an_image_folder_and_a_torchvision_teacher_with_a_state_dict(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    image_folder(tmp_path / "photos", per_class=6, size=(16, 16))
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "resnet18.pt")
    out = tmp_path / "out"
    _run("--teacher", "resnet18", "--weights", str(tmp_path / "resnet18.pt"), "--data", str(tmp_path / "photos"),
         "--shots", "3", "--steps", "2", "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    assert report["shots"] == 3 and report["student"]["macs"] < report["teacher"]["macs"]
    student = load_student(out)  # a torchvision architecture reloads from its recorded arch
    assert student.arch["arch"] == "resnet18" and student(torch.rand(2, 3, 16, 16)).shape == (2, 3)


def test_a_csv_and_a_hugging_face_teacher_folder(tmp_path):
    tiny_bert_folder(tmp_path / "bert")
    words = ["good", "bad", "movie", "the", "is", "not"]
    rows = [(" ".join(words[(i + j) % 6] for j in range(4)), "pos" if i % 2 else "neg") for i in range(30)]
    (tmp_path / "reviews.csv").write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows))
    out = tmp_path / "out"
    _run("--teacher", str(tmp_path / "bert"), "--data", str(tmp_path / "reviews.csv"), "--shots", "4", "--steps", "2",
         "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    assert report["shots"] == 4 and (out / "student.int8.safetensors").is_file()
    assert report["student"]["params"] < report["teacher"]["params"]


def test_unlabelled_inputs_and_the_int8_onnxruntime_model(teacher_file, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "out"
    _run("--teacher", teacher_file, "--data", "digits", "--shots", "3", "--steps", "2", "--unlabelled", "40",
         "--integer", "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    assert report["integer"]["integer_arithmetic"] is True and (out / "student.int8.onnx").is_file()
    assert report["stages"]["unlabelled_inputs"] == 40
