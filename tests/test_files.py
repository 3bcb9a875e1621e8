import os
import stat

import pytest
import torch

from fewshot_kd.errors import CorruptFileError

from fewshot_kd.files import atomic_path, load_tensors, load_torch, read_json, save_tensors, save_torch, write_json


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_tensor_round_trips(tmp_path):
    tensors = {"w": torch.randn(3, 4), "b": torch.arange(3)}
    save_tensors(tmp_path / "t.safetensors", tensors)
    back = load_tensors(tmp_path / "t.safetensors")
    assert all(torch.equal(tensors[k], back[k]) for k in tensors)
    save_torch(tmp_path / "c.pt", {"step": 3, "w": tensors["w"]})
    ckpt = load_torch(tmp_path / "c.pt")
    assert ckpt["step"] == 3 and torch.equal(ckpt["w"], tensors["w"])


def test_load_torch_refuses_pickled_code(tmp_path):
    torch.save({"f": torch.nn.Linear(2, 2)}, tmp_path / "module.pt")  # a pickled module, not just tensors
    with pytest.raises(CorruptFileError, match="module.pt") as refused:
        load_torch(tmp_path / "module.pt")
    assert "UnpicklingError" in str(refused.value)  # refused by weights_only, not failed some other way


@pytest.mark.parametrize("cut", [0, 1, 0.5, -2])
def test_a_cut_file_is_a_clear_error_naming_it(tmp_path, cut):
    save_tensors(tmp_path / "t.safetensors", {"w": torch.randn(50, 50)})
    save_torch(tmp_path / "c.pt", {"w": torch.randn(50, 50)})
    write_json(tmp_path / "j.json", {"a": list(range(50))})
    for name, load in (("t.safetensors", load_tensors), ("c.pt", load_torch), ("j.json", read_json)):
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: int(cut * len(data)) if isinstance(cut, float) else cut])
        with pytest.raises(CorruptFileError, match=name):
            load(tmp_path / name)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_umask_mode_like_any_other_file(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_json(tmp_path / "r.json", {"a": 1})
        save_tensors(tmp_path / "t.safetensors", {"w": torch.zeros(2)})
        save_torch(tmp_path / "c.pt", {"w": torch.zeros(2)})
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(modes, 0o666 & ~umask) and len(modes) == 4


def test_rewriting_a_file_keeps_its_mode(tmp_path):
    write_json(tmp_path / "r.json", {"a": 1})
    os.chmod(tmp_path / "r.json", 0o640)
    write_json(tmp_path / "r.json", {"a": 2})
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o640 and read_json(tmp_path / "r.json") == {"a": 2}
