"""``hf_sequence_classifier``: a Hugging Face ``*ForSequenceClassification`` model rebuilt from
its config (random weights), so students derived from a local Hugging Face folder reload from
JSON and safetensors (:func:`fewshot_kd.adapt.load_student`) without pickled code."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from fewshot_kd.errors import BadInputError, ClassCountMismatchError
from fewshot_kd.models.catalog import register_model

__all__ = ["hf_sequence_classifier"]


def _config(values: Mapping[str, Any]) -> Any:
    from transformers import AutoConfig

    values = dict(values)
    model_type = values.pop("model_type", None)
    if not model_type:
        raise BadInputError("config needs a 'model_type' (e.g. 'bert'); pass the dict that model.arch['config'] holds")
    values.pop("_name_or_path", None)
    try:
        return AutoConfig.for_model(model_type, **values)
    except ValueError as error:
        raise BadInputError(f"config: {error}") from None


def _tokenizer(folder: str | os.PathLike) -> Any:
    """The tokenizer saved in ``folder``, read offline and uncached (the folder is the student's)."""
    from transformers import AutoTokenizer

    from fewshot_kd.models._minilm import quiet_transformers

    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError) as error:
        raise BadInputError(f"no usable tokenizer in {folder} ({type(error).__name__}: {str(error)[:200]}); save it "
                            f"there with tokenizer.save_pretrained") from None


@register_model("hf_sequence_classifier", "a Hugging Face *ForSequenceClassification model from its config "
                                          "(random weights; load a state dict after)")
def hf_sequence_classifier(
    config: Mapping[str, Any],
    max_length: int = 128,
    tokenizer: str | os.PathLike | None = None,
    num_classes: int | None = None,
    pretrained: bool = False,
    data_root: str | os.PathLike | None = None,
):
    """The architecture ``model.arch`` of a :class:`~fewshot_kd.teachers.hf_folder.HFSequenceClassifier`
    describes, randomly initialised. ``tokenizer``: a folder holding its tokenizer files, or
    ``None`` (the model then takes token ids only, through ``forward_ids``). ``num_classes``,
    when given, must match the config's ``num_labels``; ``data_root`` is unused."""
    from transformers import AutoModelForSequenceClassification

    from fewshot_kd.models._minilm import quiet_transformers
    from fewshot_kd.teachers.hf_folder import HFSequenceClassifier

    if pretrained:
        raise BadInputError("hf_sequence_classifier has no pretrained weights: load a state dict after building it, "
                            "or load the original folder with fewshot_kd.teachers.load_teacher")
    built = _config(config)
    if num_classes is not None and num_classes != built.num_labels:
        raise ClassCountMismatchError(f"num_classes={num_classes} but the config has {built.num_labels} labels; "
                                      f"leave num_classes unset to keep the config's head")
    with quiet_transformers():
        model = AutoModelForSequenceClassification.from_config(built)
    return HFSequenceClassifier(model.eval(), None if tokenizer is None else _tokenizer(tokenizer), max_length)
