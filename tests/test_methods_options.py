"""Typed method options: defaults as before the move, unknown keys and wrong types rejected,
Policy fields routed to the adapt methods' policy; the library never imports benchmarks."""

import inspect
from pathlib import Path

import pytest

from fewshot_kd.adapt.policy import HAND_SET_TEXT
from fewshot_kd.errors import FewShotKDError

from benchmarks.harness.suite import SUITES_DIR, load_suite
from benchmarks.methods.adapt_meta import SHIPPED
from benchmarks.methods.base import list_methods, method_options
from benchmarks.methods.maml_student import MetaConfig
from benchmarks.methods.torch_pruning_finetune import torch_pruning_to_macs_

DEFAULTS = {  # what each method read from an empty options dict before options were typed
    "scratch": {"steps": 300},
    "hinton_kd": {"steps": 300},
    "prune_finetune": {"steps": 300, "lr": 5e-4},
    "adapt": {"overrides": {}, "target": {}},
    "adapt_student": {"overrides": {}, "target": {}},
    "adapt_unlabelled": {"overrides": {}, "target": {}, "unlabelled": 2000},
    "adapt_student_unlabelled": {"overrides": {}, "target": {}, "unlabelled": 2000},
    "adapt_meta": {"overrides": {}, "target": {}, "policy": str(SHIPPED)},
    "adapt_random_search": {"overrides": {}, "trials": 4, "target": {}},
    "adapt_teachers": {"overrides": {}, "target": {}, "teachers": "cifar10-resnet20-classes0-4,cifar10-resnet20-classes5-9"},
    "teacher": {},
    "ptq_int8": {},
}


@pytest.mark.parametrize("method", sorted(DEFAULTS))
def test_defaults_are_the_old_ones(method):
    assert vars(method_options(method, {})) == DEFAULTS[method]


def test_torch_pruning_defaults_are_its_functions():
    options = method_options("tp_prune_finetune", {})
    keywords = {name: p.default for name, p in inspect.signature(torch_pruning_to_macs_).parameters.items()
                if p.kind is p.KEYWORD_ONLY}
    assert options.pruning() == keywords and (options.steps, options.lr) == (300, 5e-4)


def test_maml_defaults_are_meta_config_with_the_cell_s_augment_and_seed():
    options = method_options("maml_student", {})
    assert options.meta_config("crop", 3) == MetaConfig(augment="crop", seed=3)
    assert (options.steps, options.lr) == (300, 1e-3)
    assert method_options("maml_student", {"seed": 7, "augment": "none"}).meta_config("crop", 3).seed == 7


def test_every_method_has_typed_options_and_shipped_suites_parse():
    assert set(list_methods()) == set(DEFAULTS) | {"tp_prune_finetune", "maml_student"}
    from benchmarks.harness.lm_runner import is_lm_suite
    from benchmarks.harness.qa_runner import is_qa_suite
    from benchmarks.methods.lm import lm_options
    from benchmarks.methods.qa import qa_options

    for path in SUITES_DIR.glob("*.yaml"):
        suite = load_suite(path)
        own = lm_options if is_lm_suite(suite) else qa_options if is_qa_suite(suite) else None
        for method in suite.methods:
            if own is not None:  # causal-LM / QA methods: their policy's fields and unlabelled
                if method != "teacher":
                    own(method, suite.method_options.get(method, {}))
                continue
            method_options(method, suite.method_options.get(method, {}))


@pytest.mark.parametrize("method, options, message", [
    ("hinton_kd", {"step": 3}, r"hinton_kd options has unknown keys \['step'\]; known keys: \['steps'\]"),
    ("teacher", {"steps": 3}, r"unknown keys \['steps'\]; known keys: none"),
    ("adapt", {"unlabelled": 5}, r"adapt options has unknown keys \['unlabelled'\].*any Policy field"),
    ("adapt_random_search", {"trial": 2}, r"unknown keys \['trial'\]"),
    ("adapt@cutmix", {"mixx": 8}, r"adapt@cutmix options has unknown keys \['mixx'\]"),
    ("scratch", {"steps": "300"}, "scratch options: steps must be a whole number, got '300'"),
    ("prune_finetune", {"lr": True}, "lr must be a number, got True"),
    ("tp_prune_finetune", {"global_pruning": 1}, "global_pruning must be true or false"),
    ("adapt_unlabelled", {"unlabelled": 2000.0}, "unlabelled must be a whole number"),
    ("adapt", {"target": 8}, "target must be a mapping"),
    ("maml_student", {"seed": "0"}, "seed must be a whole number or null"),
    ("adapt", [("steps", 5)], "adapt options must map option names to values"),
])
def test_unknown_keys_and_wrong_types_are_clear_errors(method, options, message):
    with pytest.raises(FewShotKDError, match=message):
        method_options(method, options)


def test_policy_fields_set_the_hand_set_policy_for_the_modality():
    options = method_options("adapt@cutmix", {"mix_views": 8, "mix": "cutmix", "target": {"size_ratio": 8}})
    assert options.overrides == {"mix_views": 8, "mix": "cutmix"} and options.target == {"size_ratio": 8}
    image = options.hand_set_policy("image", "crop")
    assert (image.mix_views, image.mix, image.flip, image.lr) == (8, "cutmix", False, 1e-3)
    assert options.hand_set_policy("image", "crop_flip").flip
    assert options.hand_set_policy("text", "none").lr == HAND_SET_TEXT.lr
    with pytest.raises(FewShotKDError, match="policy mix must be"):
        method_options("adapt", {"mix": "blend"}).hand_set_policy("image", "crop")


def test_the_library_does_not_import_benchmarks():
    library = Path(__file__).resolve().parents[1] / "fewshot_kd"
    offenders = [str(p.relative_to(library)) for p in library.rglob("*.py")
                 if "import benchmarks" in p.read_text() or "from benchmarks" in p.read_text()]
    assert not offenders
