import sys
import types

import pytest

import fewshot_kd
from fewshot_kd.errors import UnknownNameError
from fewshot_kd.registry import Registry


def test_register_get_and_names():
    reg = Registry("thing")

    @reg.register("alpha", "first thing")
    def alpha():
        return 1

    assert reg.get("alpha") is alpha
    assert reg.names() == ["alpha"]
    assert "alpha" in reg and len(reg) == 1
    assert reg.describe("alpha") == "first thing"


def test_unknown_name_suggests_close_match_and_lists_known():
    reg = Registry("thing")
    reg.register("resnet56")(object())
    with pytest.raises(UnknownNameError) as err:
        reg.get("resnet65")
    assert "resnet56" in str(err.value) and "Did you mean" in str(err.value)


def test_double_registration_is_an_error():
    reg = Registry("thing")
    reg.register("a")(1)
    with pytest.raises(ValueError, match="twice"):
        reg.register("a")(2)


def test_public_api_is_importable():
    for name in fewshot_kd.__all__:
        assert hasattr(fewshot_kd, name), name
    assert "digits" in fewshot_kd.list_datasets()
    assert "cifar_resnet56" in fewshot_kd.list_models()


def test_listed_modules_are_imported_on_first_lookup_only(tmp_path, monkeypatch):
    holder = types.ModuleType("probe_registry_holder")
    holder.REG = Registry("probe", modules=("probe_registry_entries",), plural="probes")
    monkeypatch.setitem(sys.modules, "probe_registry_holder", holder)
    (tmp_path / "probe_registry_entries.py").write_text(
        "from probe_registry_holder import REG\nREG.register('alpha', 'the first probe')(1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "probe_registry_entries", raising=False)
    assert "probe_registry_entries" not in sys.modules
    assert len(holder.REG) == 1 and "probe_registry_entries" in sys.modules
    assert holder.REG["alpha"] == 1 and holder.REG.describe("alpha") == "the first probe"
    with pytest.raises(UnknownNameError, match="Known probes: alpha"):
        holder.REG.get("beta")
