"""The causal-LM student's folder carries its tokenizer: a Hugging Face teacher's own tokenizer is
saved beside the weights and read back by load_student; the recipe teachers' byte tokenizer is
recorded by name (no files); a folder exported before tokenizers were recorded still loads."""

from __future__ import annotations

import gzip
import json

import pytest

pytest.importorskip("transformers", reason="the causal LMs need transformers")

from fewshot_kd import adapt  # noqa: E402
from fewshot_kd.adapt import load_student  # noqa: E402
from fewshot_kd.adapt.export import ARCH_FILE, TOKENIZER_IN_FOLDER  # noqa: E402
from fewshot_kd.adapt.lm.export import BYTE_TOKENIZER  # noqa: E402
from fewshot_kd.data.tinyshakespeare import TINYSHAKESPEARE_FILE, corpus_by_position  # noqa: E402
from fewshot_kd.errors import CorruptFileError  # noqa: E402
from fewshot_kd.models.byte_tokenizer import ByteTokenizer  # noqa: E402
from fewshot_kd.teachers.by_path import load_teacher  # noqa: E402
from fewshot_kd.teachers.lm_recipe import LMTeacherRecipe, LMTrainConfig  # noqa: E402
from fewshot_kd.teachers.lm_store import load_or_train_lm_teacher  # noqa: E402
from path_fixtures import tiny_gpt2_folder  # noqa: E402

TEXT = "".join(f"{name}: to be or not to be, {verb} is the question.\n"
               for name in ("HAMLET", "OPHELIA", "KING") for verb in ("that", "this", "what", "which")) * 20
POLICY = {"sequence_length": 16, "steps": 2, "batch_size": 4, "eval_window": 32, "eval_stride": 16,
          "generations": 1, "generation_tokens": 3, "prompt_chars": 10}
PROBE = "KING: to be, Yorick, or not to be? that is the question."
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt")


def _adapt(teacher, out, bits=8):
    return adapt(teacher, shots=2, data=corpus_by_position(TEXT, "toy"), target={"macs": None, "bits": bits},
                 policy=POLICY, export_dir=out, progress=False)


def _arch(out) -> dict:
    return json.loads((out / ARCH_FILE).read_text())


def _drop_tokenizer_record(out) -> None:
    """Make ``out`` look like a folder exported before tokenizers were recorded."""
    arch = _arch(out)
    del arch["tokenizer"]
    (out / ARCH_FILE).write_text(json.dumps(arch))
    for name in TOKENIZER_FILES:
        (out / name).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def hf_teacher(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpt2")
    tiny_gpt2_folder(folder, TEXT)
    return load_teacher(str(folder))


@pytest.fixture(scope="module")
def recipe_teacher(tmp_path_factory):
    """A byte-level GPT-2 from the recipe loader (one training step on the toy text), as the recipes give it."""
    root = tmp_path_factory.mktemp("data")
    (root / TINYSHAKESPEARE_FILE).parent.mkdir(parents=True)
    with gzip.open(root / TINYSHAKESPEARE_FILE, "wt", encoding="utf-8") as file:
        file.write(TEXT)
    recipe = LMTeacherRecipe("toy-bytes", "tinyshakespeare",
                             {"n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 256, "dropout": 0.0},
                             LMTrainConfig(steps=1, batch_size=2, sequence_length=32, warmup_steps=0))
    model, _ = load_or_train_lm_teacher(recipe, data_root=root, store_root=tmp_path_factory.mktemp("store"),
                                        progress=False)
    return model


@pytest.mark.parametrize("bits", [8, None])
def test_a_folder_teachers_tokenizer_is_saved_and_loaded_back(hf_teacher, tmp_path, bits):
    result = _adapt(hf_teacher, tmp_path, bits)
    assert {"tokenizer.json", "tokenizer_config.json"} <= {p.name for p in tmp_path.iterdir()}
    assert _arch(tmp_path)["tokenizer"] == TOKENIZER_IN_FOLDER
    loaded = load_student(tmp_path).tokenizer
    ids = hf_teacher.tokenizer.encode(PROBE)
    assert loaded.encode(PROBE) == ids and 0 in ids  # Yorick is not in the vocabulary: [UNK]
    assert loaded.decode(ids) == hf_teacher.tokenizer.decode(ids)
    model_files = (tmp_path / ARCH_FILE, result.artifact)  # the tokenizer's files are not counted
    assert result.report["student"]["bytes"] == sum(p.stat().st_size for p in model_files)


def test_a_recipe_teachers_byte_tokenizer_is_recorded_by_name_without_files(recipe_teacher, tmp_path):
    assert isinstance(recipe_teacher.tokenizer, ByteTokenizer)
    _adapt(recipe_teacher, tmp_path)
    assert not {p.name for p in tmp_path.iterdir()} & set(TOKENIZER_FILES)
    assert _arch(tmp_path)["tokenizer"] == BYTE_TOKENIZER
    loaded = load_student(tmp_path).tokenizer
    assert isinstance(loaded, ByteTokenizer) and loaded.decode(loaded.encode(PROBE)) == PROBE


def test_folders_exported_before_tokenizers_were_recorded_load_as_before(hf_teacher, recipe_teacher, tmp_path):
    _adapt(recipe_teacher, tmp_path / "bytes")
    _adapt(hf_teacher, tmp_path / "hf")
    for out in (tmp_path / "bytes", tmp_path / "hf"):
        _drop_tokenizer_record(out)
    assert isinstance(load_student(tmp_path / "bytes").tokenizer, ByteTokenizer)  # a 256-token vocabulary
    assert not hasattr(load_student(tmp_path / "hf"), "tokenizer")


def test_a_recorded_tokenizer_whose_files_are_gone_is_a_clear_error(hf_teacher, tmp_path):
    _adapt(hf_teacher, tmp_path)
    (tmp_path / "tokenizer_config.json").unlink()
    with pytest.raises(CorruptFileError, match="no tokenizer_config.json"):
        load_student(tmp_path)
