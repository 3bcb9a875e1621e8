"""Bad input to adapt() fails before any work, with an error saying what was wrong and what to do."""

import importlib
import os
import stat
import warnings

import pytest
import torch

from fewshot_kd import LabelledDataset, Policy, adapt, create_model
from fewshot_kd.adapt._fidelity import heldout_agreement
from fewshot_kd.errors import BadInputError, ClassCountMismatchError, FewShotKDError, NotEnoughExamplesError

api = importlib.import_module("fewshot_kd.adapt.api")  # fewshot_kd.adapt is also the function


class Pair(torch.nn.Module):
    """A teacher whose forward returns (logits, features), as some checkpoints do."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x), x


def _student(**kw):
    return create_model("small_cnn", **{"in_channels": 1, "input_size": 8, "width": 4, "num_classes": 10, **kw})


def _big(d):
    return torch.nn.functional.interpolate(d.train.all_inputs(), size=16)


def _mlp(d):
    return create_model("mlp", num_classes=10, input_shape=(1, 8, 8))


def _rgb(d):
    return d.train.all_inputs().repeat(1, 3, 1, 1)


# (name, adapt() arguments over the defaults, expected error, words the message must hold)
CASES = [
    ("teacher None", lambda t, d, p: {"teacher": None}, BadInputError, "teacher must be a trained torch.nn.Module"),
    ("teacher a name", lambda t, d, p: {"teacher": "small_cnn"}, BadInputError, "create_model"),
    ("teacher a state_dict", lambda t, d, p: {"teacher": t.state_dict()}, BadInputError, "got a OrderedDict"),
    ("teacher without parameters", lambda t, d, p: {"teacher": torch.nn.Flatten()}, BadInputError, "no parameters"),
    ("teacher returns a tuple", lambda t, d, p: {"teacher": Pair(t)}, BadInputError, "logits shaped"),
    ("shots 0", lambda t, d, p: {"shots": 0}, BadInputError, "shots must be a whole number >= 1"),
    ("shots fractional", lambda t, d, p: {"shots": 2.5}, BadInputError, "got 2.5"),
    ("shots a string", lambda t, d, p: {"shots": "10"}, BadInputError, "got '10'"),
    ("shots over the pool", lambda t, d, p: {"shots": 10_000}, NotEnoughExamplesError, "at most"),
    ("data None", lambda t, d, p: {"data": None}, FewShotKDError, "needs data="),
    ("data name misspelt", lambda t, d, p: {"data": "digitz"}, FewShotKDError, "Did you mean 'digits'"),
    ("data RGB for a grey teacher", lambda t, d, p: {"data": (_rgb(d), d.train.labels)}, BadInputError,
     r"3 channel\(s\) but the teacher takes 1"),
    ("data 16x16 for an MLP teacher", lambda t, d, p: {"teacher": _mlp(d), "data": (_big(d), d.train.labels)},
     BadInputError, r"the teacher cannot run on the data's inputs \(\[N, 1, 16, 16\]\) \(its inputs: \[N, 1, 8, 8\]\)"),
    ("data labels as names", lambda t, d, p: {"data": (d.train.all_inputs(), ["a"] * len(d.train))}, FewShotKDError,
     "class indices"),
    ("data lengths differ", lambda t, d, p: {"data": (d.train.all_inputs(), d.train.labels[:100])}, FewShotKDError,
     "must match"),
    ("student a name", lambda t, d, p: {"student": "small_cnn"}, BadInputError, "create_model"),
    ("student with 3 classes", lambda t, d, p: {"student": _student(num_classes=3)}, ClassCountMismatchError,
     "3 classes"),
    ("student for RGB", lambda t, d, p: {"student": _student(in_channels=3)}, BadInputError, "the student takes 3"),
    ("target fractional bits", lambda t, d, p: {"target": {"bits": 4.5}}, FewShotKDError,
     "target bits must be a whole number"),
    ("target macs in percent", lambda t, d, p: {"target": {"macs": 50}}, FewShotKDError, "fraction"),
    ("target key misspelt", lambda t, d, p: {"target": {"mac": 0.5}}, FewShotKDError, "unknown target keys"),
    ("target a word", lambda t, d, p: {"target": "half"}, FewShotKDError, "must be a Target or a dict"),
    ("policy key misspelt", lambda t, d, p: {"policy": {"learning_rate": 1e-3}}, FewShotKDError, "unknown keys"),
    ("policy file missing", lambda t, d, p: {"policy": str(p / "nope.json")}, BadInputError, "does not exist"),
    ("policy lr negative", lambda t, d, p: {"policy": {"lr": -1e-3}}, FewShotKDError, "lr must be positive"),
    ("device 'gpu'", lambda t, d, p: {"device": "gpu"}, BadInputError, "is not a device"),
    ("device cuda:99", lambda t, d, p: {"device": "cuda:99"}, BadInputError, "CUDA device"),
    ("export_dir a file", lambda t, d, p: {"export_dir": _file(p)}, BadInputError, "is a file, not a folder"),
    ("export_dir under a file", lambda t, d, p: {"export_dir": _file(p) / "out"}, BadInputError, "cannot be created"),
    ("export_dir read-only", lambda t, d, p: {"export_dir": _read_only(p) / "out"}, BadInputError, "not writable"),
    ("eval_data a name", lambda t, d, p: {"eval_data": "test"}, BadInputError, "not the name 'test'"),
    ("eval_data (inputs, labels)", lambda t, d, p: {"eval_data": (d.test.all_inputs(), d.test.labels)}, BadInputError,
     "LabelledDataset"),
    ("eval_data all splits", lambda t, d, p: {"eval_data": d}, BadInputError, r"splits\['test'\]"),
    ("eval_data RGB", lambda t, d, p: {"eval_data": {"rgb": LabelledDataset(_rgb(d), d.train.labels, d.class_names)}},
     BadInputError, r"rgb's inputs are \[N, 3, 8, 8\]"),
    ("unlabelled RGB", lambda t, d, p: {"unlabelled": _rgb(d)[:50]}, BadInputError, "unlabelled inputs are"),
    ("unlabelled negative", lambda t, d, p: {"unlabelled": -5}, BadInputError, "unlabelled must be a whole number"),
    ("unlabelled text for images", lambda t, d, p: {"unlabelled": ["a photo"]}, BadInputError, "text"),
    ("seed a string", lambda t, d, p: {"seed": "abc"}, BadInputError, "seed must be a whole number"),
]


def _read_only(folder):
    if os.geteuid() == 0:
        pytest.skip("root writes to read-only folders")
    (folder / "ro").mkdir()
    (folder / "ro").chmod(0o500)
    return folder / "ro"


def _file(folder):
    (folder / "a_file").write_text("")
    return folder / "a_file"


@pytest.mark.parametrize("make, error, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_before_any_work(teacher, digits, tmp_path, monkeypatch, make, error, words):
    def work_started(*args, **kwargs):
        raise AssertionError("the bad input was not caught before the work started")

    monkeypatch.setattr(api, "run_stages", work_started)
    kwargs = {"teacher": teacher, "student": None, "shots": 10, "data": digits, "progress": False,
              **make(teacher, digits, tmp_path)}
    with pytest.raises(error, match=words):
        adapt(**kwargs)
    assert not any(tmp_path.glob("**/student*"))  # nothing written


def test_bad_input_leaves_the_models_as_they_were(teacher, digits):
    teacher.train()
    with pytest.raises(ClassCountMismatchError):
        adapt(teacher, _student(num_classes=3), shots=2, data=digits, progress=False)
    assert teacher.training and all(p.requires_grad for p in teacher.parameters())
    teacher.eval()


def test_images_of_another_size_run_with_a_warning(teacher, digits, monkeypatch):
    monkeypatch.setattr(api, "run_stages", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("stop")))
    big = _big(digits)
    with pytest.warns(UserWarning, match="16x16 but the teacher was built for 8x8"), pytest.raises(RuntimeError):
        adapt(teacher, None, shots=2, data=(big, digits.train.labels), progress=False)


def test_heldout_agreement_flags_a_collapsed_student(teacher, digits):
    shots, policy = digits.train.few_shot(5), Policy()
    info, notes = heldout_agreement(teacher, teacher, shots, policy, seed=0)
    assert info["teacher_agreement"] == 1.0 and notes == []

    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(len(x), 10).index_fill_(1, torch.tensor([3]), 1.0)

    with pytest.warns(UserWarning, match="distillation collapsed"):
        info, notes = heldout_agreement(teacher, Constant(), shots, policy, seed=0)
    assert info["teacher_agreement"] < info["collapse_below"] and len(notes) == 1


@pytest.mark.slow
def test_a_diverging_learning_rate_is_reported_and_files_get_the_umask_mode(teacher, digits, tmp_path):
    policy = Policy(steps=15, views_per_shot=2, flip=False, lr=50.0)
    old = os.umask(0o022)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = adapt(teacher, None, shots=5, data=digits, target={"bits": None}, policy=policy,
                           export_dir=tmp_path / "out", progress=False)
    finally:
        os.umask(old)
    assert any("collapsed" in w for w in result.report["warnings"])
    assert result.report["heldout_agreement"]["teacher_agreement"] < result.report["heldout_agreement"]["collapse_below"]
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "out").iterdir()}
    assert len(modes) == 2 and set(modes.values()) == {0o644}, modes
