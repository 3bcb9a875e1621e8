import pytest
import torch

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


NEW_FAMILIES = {  # issue #17's families: name -> (dataset, recipe or pretrained model)
    "fashion-mnist": ("fashion_mnist", "fashion_mnist-cnn"),
    "cr": ("cr", "cr-minilm"),
    "mpqa": ("mpqa", "mpqa-minilm"),
    "dbpedia": ("dbpedia", "dbpedia-minilm"),
    "cifar10-resnet32": ("cifar10", "cifar_resnet32"),
    "cifar10-resnet44": ("cifar10", "cifar_resnet44"),
}


@pytest.mark.parametrize("name", sorted(NEW_FAMILIES))
def test_new_families_are_found_by_name(name):
    from fewshot_kd.teachers.recipe import get_recipe

    family = find_task_family(name)
    dataset, teacher = NEW_FAMILIES[name]
    assert family.name == name and family.dataset == dataset and family.shots == (5, 10, 20)
    if "recipe" in family.teacher:
        assert family.teacher["recipe"] == teacher and get_recipe(teacher).dataset == dataset
        assert not family.episodes  # a recipe teacher's episode pool is its recipe's
    else:
        assert family.teacher == {"model": teacher, "pretrained": True}
        assert family.episodes == find_task_family("cifar10-resnet20").episodes
        assert family.eval_splits == ("test_exact", "test")
    assert family.modality == ("image" if name.startswith(("fashion", "cifar")) else "text")


def _check_pools(name, splits, teacher_count, episode_count):
    from fewshot_kd.meta.pools import family_pools

    pools = family_pools(find_task_family(name), splits)
    teacher, episodes = set(pools.teacher_indices.tolist()), set(pools.episode_indices.tolist())
    assert len(teacher) == teacher_count and len(episodes) == episode_count
    assert not teacher & episodes
    assert torch.equal(pools.episode_indices, family_pools(find_task_family(name), splits).episode_indices)
    return pools


def test_fashion_mnist_pools_are_disjoint_and_stratified(shared_data_files):
    from fewshot_kd import load_dataset
    from fewshot_kd.teachers.recipe import get_recipe

    root = shared_data_files("fashion_mnist/train.npz", "fashion_mnist/test.npz")
    train = load_dataset("fashion_mnist", data_root=root).train
    pools = _check_pools("fashion-mnist", {"train": train}, 20000, 40000)
    assert torch.bincount(train.labels[pools.episode_indices]).tolist() == [4000] * 10
    # the teacher store trains on exactly the recipe's teacher pool (no cap on top)
    recipe = get_recipe("fashion_mnist-cnn")
    assert recipe.max_train_examples is None
    assert torch.equal(recipe.pools(train.labels)[0], pools.teacher_indices)


@pytest.mark.parametrize("name, teacher_count, episode_count", [
    ("cr", 2012, 1004),  # 3,017 train sentences: a third held out (a 4,000 cap would hold out none), less 1 repeat
    ("dbpedia", 3995, 1005),  # capped at 4,000 (stratified), the rest of the 5,000 is the pool
])
def test_text_recipe_pools_are_disjoint(shared_data_files, name, teacher_count, episode_count):
    from fewshot_kd import load_dataset

    folder = f"text/{name}"
    files = ("validation.jsonl.gz", "test.jsonl.gz") if name == "dbpedia" else ("all.jsonl.gz",)
    root = shared_data_files(*(f"{folder}/{f}" for f in (*files, "label_names.json")))
    train = load_dataset(name, data_root=root).train
    pools = _check_pools(name, {"train": train}, teacher_count, episode_count)
    assert min(pools.record["episodes"]["per_class"]) >= 60  # K=20 support + queries for every class


def test_teacher_source_names_a_recipe_with_its_fingerprint_else_the_teacher_entry():
    from fewshot_kd.task_family import teacher_source
    from fewshot_kd.teachers.recipe import get_recipe

    source = teacher_source(find_task_family("squad-minilm"))
    assert source["recipe"]["train"]["max_questions"] == get_recipe("squad-minilm").train.max_questions
    assert source["fingerprint"] == get_recipe("squad-minilm").fingerprint()
    assert teacher_source(find_task_family("cifar10-resnet56")) == find_task_family("cifar10-resnet56").teacher
