import pytest

from fewshot_kd.errors import CorruptFileError, FewShotKDError
from fewshot_kd.task_family import TaskFamily, find_task_family, load_task_family, tasks_dir


@pytest.mark.parametrize("path", sorted(tasks_dir().glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_task_file_loads(path):
    family = load_task_family(path)
    assert family.name == path.stem
    assert family.shots and all(k >= 1 for k in family.shots)


def test_round_trip_and_lookup_by_name():
    family = find_task_family("digits")
    assert TaskFamily.from_dict(family.to_dict()) == family


def test_bad_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: digits\nteacher: {recipe: digits-cnn}\nstudent: {model: tiny_cnn}\nwhat: 1\n")
    with pytest.raises(FewShotKDError, match="unknown keys"):
        load_task_family(bad)
    bad.write_text("dataset: digits\nteacher: {}\nstudent: {model: tiny_cnn}\n")
    with pytest.raises(FewShotKDError, match="teacher needs exactly one"):
        load_task_family(bad)
    marker = tmp_path / "ran"
    bad.write_text(f"!!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(CorruptFileError, match="bad.yaml is not plain YAML"):
        load_task_family(bad)
    assert not marker.exists()  # safe_load refused the tag instead of running it
