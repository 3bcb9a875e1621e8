"""Images on disk as a labelled set: torchvision's ImageFolder layout (one sub-folder per
class), and the PIL images a Hugging Face dataset holds, stacked into ``uint8 [N, C, H, W]``."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.errors import BadInputError, CorruptFileError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def class_folders(root: Path) -> list[Path]:
    """The visible sub-folders of ``root``, sorted by name (ImageFolder's class order)."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def open_image(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise CorruptFileError(f"{path} is not a readable image ({type(error).__name__}: {error}); "
                               f"remove or replace it") from None


def stack_images(images: Sequence, sources: Sequence[str], image_size: int | None = None) -> torch.Tensor:
    """PIL images as ``uint8 [N, C, H, W]``: grey (``C=1``) when every image is grey, else
    RGB. ``image_size`` resizes every image to a square of that side; without it they must
    already share one size."""
    from PIL import Image

    grey = all(image.mode in _GREY_MODES for image in images)
    converted = [image.convert("L" if grey else "RGB") for image in images]
    if image_size is not None:
        converted = [image.resize((image_size, image_size), Image.BILINEAR) for image in converted]
    sizes = {image.size for image in converted}
    if len(sizes) > 1:
        first = converted[0].size
        other = next(i for i, image in enumerate(converted) if image.size != first)
        raise BadInputError(f"images differ in size ({sources[0]} is {first[0]}x{first[1]}, {sources[other]} is "
                            f"{converted[other].size[0]}x{converted[other].size[1]}); pass image_size= "
                            f"(--image-size on the command line) to resize them all to one square size")
    arrays = np.stack([np.asarray(image, dtype=np.uint8) for image in converted])
    return torch.from_numpy(arrays[:, None] if grey else np.ascontiguousarray(arrays.transpose(0, 3, 1, 2)))


def read_image_folder(root: Path, name: str, image_size: int | None = None,
                      class_names: Sequence[str] | None = None) -> LabelledDataset:
    """Every image under ``root/<class>/`` (searched recursively), labelled by its class
    folder. ``class_names`` fixes the classes and their order (a test folder read with the
    train folder's classes); by default the sorted sub-folder names."""
    folders = {p.name: p for p in class_folders(root)}
    if not folders:
        raise BadInputError(f"{root} holds no class sub-folders; an image folder needs one sub-folder per class "
                            f"(torchvision's ImageFolder layout: {root}/<class>/<image>.png)")
    names = tuple(class_names) if class_names is not None else tuple(folders)
    unknown = sorted(set(folders) - set(names))
    if unknown:
        raise BadInputError(f"{root} has class folders {unknown} that the train split lacks (it has {list(names)}); "
                            f"give every split the same class folders")
    files, labels = [], []
    for label, class_name in enumerate(names):
        found = _image_files(folders[class_name]) if class_name in folders else []
        if not found and class_names is None:
            raise BadInputError(f"class folder {folders[class_name]} holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                                f"add some or remove the folder")
        files += found
        labels += [label] * len(found)
    if not files:
        raise BadInputError(f"{root} holds no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    images = stack_images([open_image(f) for f in files], [str(f) for f in files], image_size)
    return LabelledDataset(images, torch.tensor(labels, dtype=torch.long), names, name=name)
