"""Teachers trained by recipe and cached, for task families without a pretrained teacher,
and teachers loaded by path or name (:func:`load_teacher`)."""

from fewshot_kd.teachers.by_path import load_teacher
from fewshot_kd.teachers.recipe import TeacherRecipe, get_recipe, list_recipes
from fewshot_kd.teachers.store import load_or_train_teacher

__all__ = ["TeacherRecipe", "get_recipe", "list_recipes", "load_or_train_teacher", "load_teacher"]
