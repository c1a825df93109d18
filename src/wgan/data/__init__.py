"""Dataset registry. Every dataset becomes one in-memory tensor: uint8 images (N, C, H, W) or float32
points (N, D), plus int64 labels where the dataset has classes. Batches are index draws on whatever
device the tensor lives on, so on a GPU there is no DataLoader and no host round trip per step.

Where files are looked for: --data PATH alone when it is given (a user who names a path means that
data, so a miss there is an error naming it, never a silent switch to other files); otherwise, in order,
$WGAN_DATA (and $WGAN_DATA/<name>), the user cache dir (~/.cache/wgan/<name>) and the system dataset
directories Linux distributions install (/usr/share/datasets/<name>). Then torchvision's download, which
needs a network (never tried when $WGAN_OFFLINE is set), into --data PATH or else the user cache dir.

Sources that cannot be mapped as they are (the letters CSV, image folders, gzipped IDX, EMNIST) are decoded
once, in chunks, into one uint8 .npy under ~/.cache/wgan/decoded/ that every process maps, named by the
source's path, sizes and modification times and the decode options, so an edited file or folder is
decoded again: the letters CSV (seconds to parse, a fraction of a second from the cache) and image folders
(decoded, centre-cropped and resized to the model's size with worker threads and a progress bar).

The package: core.py holds Data and what every format shares, search.py where files are looked for,
cache.py the decoded cache's names and small arrays, decoded.py a source decoded in chunks into the file every
process maps, shared.py images held in memory shared through one file by a machine's processes, and each format has its module (idx.py, letters_csv.py, folders.py with
images.py, cifar.py, toy.py); this one is the registry and load_dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from wgan.classes import names_or_numbers
from wgan.data.cifar import CIFAR10_CLASSES, load_cifar10
from wgan.data.core import Data, LoadOptions, adapt_images, to_model_space, to_uint8_images
from wgan.data.folders import FOLDER_DEFAULT_CHANNELS, FOLDER_DEFAULT_SIZE, load_celeba, load_image_folder
from wgan.data.idx import (FASHION_CLASSES, LETTER_CLASSES, MNIST_CLASSES, load_emnist_letters, load_fashion_mnist,
                           load_mnist)
from wgan.data.letters_csv import LETTERS_CSV_NAMES, load_letters_csv
from wgan.data.toy import (centre_names, eight_gaussians_centres, sample_8gaussians, sample_25gaussians, swiss_roll, toy_loader,
                           twenty_five_gaussians_centres)
from wgan.errors import UserError

# The package's public face; the formats' own names are imported from their modules.
__all__ = ["DATASETS", "Data", "DatasetEntry", "LoadOptions", "adapt_images", "dataset_class_names", "load_dataset",
           "to_model_space", "to_uint8_images"]


@dataclass(frozen=True)
class DatasetEntry:
    load: Callable[..., Data]  # (split, data_path, options=LoadOptions()) -> Data at native size
    image_size: int  # native size (0 for points); folders: the default when the model does not say
    channels: int  # native channels (0 for points)
    num_classes: int  # 0: no labels, -1: as many as the folder's class subfolders
    description: str
    files: str = ""  # what it looks for, for `wgan datasets`
    class_names: tuple[str, ...] = ()  # one per class; a folder's are its subfolders', known once it is loaded


DATASETS: dict[str, DatasetEntry] = {
    "mnist": DatasetEntry(load_mnist, 28, 1, 10, "MNIST digits, 60k train / 10k test (IDX files)",
                          "train-images-idx3-ubyte[.gz] & co. (also .idx3-ubyte, MNIST/raw/); torchvision download",
                          class_names=tuple(MNIST_CLASSES)),
    "fashion-mnist": DatasetEntry(load_fashion_mnist, 28, 1, 10, "Fashion-MNIST, 60k train / 10k test (IDX files)",
                                  "train-images-idx3-ubyte[.gz] & co. (also .idx3-ubyte, FashionMNIST/raw/); "
                                  "torchvision download", class_names=tuple(FASHION_CLASSES)),
    "emnist-letters": DatasetEntry(load_emnist_letters, 28, 1, 26,
                                   "EMNIST letters A-Z, 124.8k train / 20.8k test (labels 1-26 -> 0-25, upright)",
                                   "emnist-letters-train-images-idx3-ubyte[.gz] & co. (also EMNIST/raw/); "
                                   "torchvision download", class_names=tuple(LETTER_CLASSES)),
    "letters-csv": DatasetEntry(load_letters_csv, 28, 1, 26,
                                "Kaggle A-Z handwritten letters CSV, 372k rows (a seeded 10% is the test split)",
                                f"{LETTERS_CSV_NAMES[0]} (or --data FILE.csv); decoded once into the cache",
                                class_names=tuple(LETTER_CLASSES)),
    "celeba": DatasetEntry(load_celeba, 64, 3, 0, "CelebA aligned faces: centre 178x178 crop, resized to the model",
                           "img_align_celeba/ (+ list_eval_partition.txt|csv), or --data FOLDER of faces; "
                           "torchvision download"),
    "image-folder": DatasetEntry(load_image_folder, FOLDER_DEFAULT_SIZE, FOLDER_DEFAULT_CHANNELS, -1,
                                 "any folder of images, flat or one subfolder per class (classes = labels)",
                                 "--data FOLDER (train/ and test/ subfolders are the splits if present)"),
    "cifar10": DatasetEntry(load_cifar10, 32, 3, 10, "CIFAR-10, 50k train / 10k test, 32x32 RGB",
                            "cifar-10-batches-py/ (torchvision's python version); torchvision download",
                            class_names=tuple(CIFAR10_CLASSES)),
    "toy-8gaussians": DatasetEntry(toy_loader("toy-8gaussians", sample_8gaussians, eight_gaussians_centres), 0, 0,
                                   8, "the WGAN-GP paper's 8 Gaussians (scale 2, std 0.02, / 1.414)",
                                   "generated, seeded (100k train / 20k test points)",
                                   class_names=tuple(centre_names(eight_gaussians_centres))),
    "toy-25gaussians": DatasetEntry(toy_loader("toy-25gaussians", sample_25gaussians, twenty_five_gaussians_centres),
                                    0, 0, 25, "the WGAN-GP paper's 25 Gaussians (5x5 grid, std 0.05, / 2.828)",
                                    "generated, seeded (100k train / 20k test points)",
                                    class_names=tuple(centre_names(twenty_five_gaussians_centres))),
    "toy-swissroll": DatasetEntry(toy_loader("toy-swissroll", lambda n, rng: (swiss_roll(n, rng), None), None),
                                  0, 0, 0, "the WGAN-GP paper's Swiss roll (noise 0.25, columns x and z, / 7.5)",
                                  "generated, seeded (100k train / 20k test points)"),
}


def dataset_class_names(name: str, num_classes: int) -> list[str]:
    """The names of a dataset's classes as the registry knows them (a model of `num_classes` classes made from
    it); the class numbers where it does not (image folders) or the count differs."""
    entry = DATASETS.get(name)
    return names_or_numbers(entry.class_names if entry else (), num_classes)


def load_dataset(name: str, *, split: str = "train", data_path: str | Path | None = None,
                 image_size: int | None = None, channels: int | None = None,
                 skip_bad_images: bool = False, max_image_megapixels: float = LoadOptions.max_image_megapixels) -> Data:
    """Load a registered dataset, adapted to the model's image size and channels."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}': choose one of {', '.join(DATASETS)} (see `wgan datasets`)")
    if split not in ("train", "test"):
        raise UserError(f"unknown split '{split}': use train or test")
    if data_path is not None and not str(data_path).strip():  # '' would silently search the default places
        raise UserError(f"--data {str(data_path)!r}: an empty path; leave --data out to search the default places")
    if data_path and not Path(data_path).expanduser().exists():
        raise UserError(f"--data {data_path}: no such file or folder")
    options = LoadOptions(image_size=image_size, channels=channels, skip_bad_images=skip_bad_images,
                          max_image_megapixels=max_image_megapixels)
    data = DATASETS[name].load(split, data_path, options)
    if len(data) == 0:
        raise UserError(f"{name} ({data.source}): the {split} split is empty")
    if not data.is_points:
        adapted = adapt_images(data.x, image_size, channels)
        if adapted is not data.x:  # resized or recoloured: the process's own array now, not the file's
            data.x, data.mapped_from = adapted, ""
    return data
