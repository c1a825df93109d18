"""Dataset registry. Every dataset becomes one in-memory tensor: uint8 images (N, C, H, W) or float32
points (N, D), plus int64 labels where the dataset has classes. Batches are index draws on whatever
device the tensor lives on, so on a GPU there is no DataLoader and no host round trip per step.

Where files are looked for: --data PATH alone when it is given (a user who names a path means that
data, so a miss there is an error naming it, never a silent switch to other files); otherwise, in order,
$WGAN_DATA (and $WGAN_DATA/<name>), the user cache dir (~/.cache/wgan/<name>) and the system dataset
directories Linux distributions install (/usr/share/datasets/<name>). Then torchvision's download, which
needs a network (never tried when $WGAN_OFFLINE is set), into --data PATH or else the user cache dir.

Slow sources are parsed once and cached as uint8 arrays under ~/.cache/wgan/decoded/, keyed by the
source's path, sizes and modification times, so an edited file or folder is read again:
the letters CSV (seconds to parse, a fraction of a second from the cache) and image folders
(decoded, centre-cropped and resized to the model's size with worker threads and a progress bar).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from wgan.data.cache import decoded_cache_dir, load_cache, save_cache, stamp
from wgan.data.core import Data, LoadOptions, adapt_images, to_model_space, to_uint8_images
from wgan.data.idx import load_emnist_letters, load_fashion_mnist, load_mnist
from wgan.data.letters_csv import LETTERS_CSV_NAMES, load_letters_csv
from wgan.data.search import candidate_dirs, download_root, not_there, refuse_file, try_download
from wgan.errors import UserError, first_line

# The package's public face; the formats' own names are imported from their modules.
__all__ = ["DATASETS", "Data", "DatasetEntry", "LoadOptions", "adapt_images", "load_dataset", "to_model_space",
           "to_uint8_images"]


# ---------------------------------------------------------------------------------------------
# Image folders (CelebA's img_align_celeba, any folder; class subfolders become labels)

# The raster formats Pillow reads without extra software (.jfif, .jpe: JPEG; .mpo: cameras' multi-picture
# JPEG; .dib: BMP), so a folder of any of them loads; other files are counted in a note, never read.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".png", ".apng", ".bmp", ".dib", ".gif",
                            ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".qoi", ".avif"})
FOLDER_DEFAULT_SIZE = 64
FOLDER_DEFAULT_CHANNELS = 3
DECODE_THREADS = min(8, os.cpu_count() or 1)  # Pillow releases the GIL while decoding and resizing
SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val", "valid", "validation")}


def _is_image(p: Path) -> bool:
    # Dot files are macOS/editor metadata (._x.jpg, .DS_Store), never images.
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()


def _files_under(folder: Path) -> Iterator[Path]:
    """Every file under `folder`, dot files and dot folders left out. Symlinked subfolders are followed
    (pathlib's rglob skips them, silently dropping their images), each real folder once, so a link back
    up the tree ends instead of looping. Sorted names, so the first image is found without a full walk."""
    seen: set[tuple[int, int]] = set()
    stack = [folder]
    while stack:
        d = stack.pop()
        try:
            st = d.stat()
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            # scandir knows most entries' types without a stat each: CelebA's folder holds 200k files.
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue  # a dangling link or an unreadable folder holds nothing we could load
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    subdirs.append(Path(entry.path))
                elif entry.is_file():
                    yield Path(entry.path)
            except OSError:
                continue
        stack.extend(reversed(subdirs))


def _images_under(folder: Path, others: list[Path] | None = None) -> list[Path]:
    """The images under `folder`, sorted; files without an image suffix are added to `others`."""
    images = []
    for p in _files_under(folder):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            images.append(p)
        elif others is not None:
            others.append(p)
    return sorted(images)


def _holds_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in _files_under(folder))


def _ignored_note(others: list[Path]) -> list[str]:
    if not others:
        return []
    counts = Counter(p.suffix.lower() or "no suffix" for p in others)
    kinds = ", ".join(f"{k} {n}" for k, n in counts.most_common(4))
    return [f"ignored {len(others)} file(s) without an image suffix ({kinds}; first: {others[0]})"]


def _names(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


@dataclass
class FolderListing:
    root: Path
    files: list[Path]
    labels: list[int] | None
    class_names: list[str]
    notes: list[str] = field(default_factory=list)


def list_image_folder(root: Path, other_classes: set[str] | None = None) -> FolderListing:
    """A flat folder of images, or one subfolder per class (sorted names become labels 0, 1, ...).
    `other_classes`, the other split's class folders, are numbered with this one's, so a class keeps its
    index in a split that lacks it."""
    if not root.is_dir():
        raise UserError(f"{root}: not a folder; pass a folder of images (flat or one subfolder per class)")
    loose, others, subdirs = [], [], []
    for p in sorted(root.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            subdirs.append(p)
        elif _is_image(p):
            loose.append(p)
        elif p.is_file():
            others.append(p)
    classes, empty = [], []
    for d in subdirs:
        imgs = _images_under(d, others)
        if imgs:
            classes.append((d.name, imgs))
        else:
            empty.append(d.name)
    if loose and classes:
        raise UserError(f"{root}: holds both loose images ({loose[0].name}, ...) and class subfolders "
                        f"({', '.join(n for n, _ in classes[:3])}); move the loose images into a subfolder "
                        "or pass one of the subfolders as --data")
    notes = _ignored_note(others)
    if classes:
        names = sorted(other_classes | {n for n, _ in classes}) if other_classes else [n for n, _ in classes]
        index = {n: i for i, n in enumerate(names)}
        files = [p for _, imgs in classes for p in imgs]
        labels = [index[n] for n, imgs in classes for _ in imgs]
        missing = [n for n in names if n not in {c for c, _ in classes}]
        if missing:
            notes.append(f"{root} has no images of class(es) {_names(missing)}, which the other split has; "
                         f"the class numbers are those of both splits")
        empty = [n for n in empty if n not in index]
        if empty:
            notes.append(f"{root}: subfolder(s) {_names(empty)} hold no images and are not classes")
        if len(names) == 1:
            notes.append(f"{root} has a single class folder ({names[0]}); conditional training needs at least 2")
        return FolderListing(root, files, labels, list(names), notes)
    if not loose:
        raise UserError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, "
                        "also in subfolders); pass the folder that holds the images")
    return FolderListing(root, loose, None, [], notes)


def _class_folder_names(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    return {d.name for d in folder.iterdir() if not d.name.startswith(".") and d.is_dir() and _holds_images(d)}


def _split_folder(root: Path, split: str) -> tuple[Path, Path | None, str | None]:
    """`train/` and `test/` (or `val/`) subfolders are the splits (returned with the other split's
    folder); otherwise both splits are the whole folder, which the returned note says."""
    has_train = (root / "train").is_dir()
    test = next((root / n for n in SPLIT_FOLDERS["test"] if (root / n).is_dir()), None)
    if has_train and test is not None:
        return (root / "train", test, None) if split == "train" else (test, root / "train", None)
    if split == "test":
        return root, None, f"{root} has no train/ and test/ subfolders: the test split is the training images"
    return root, None, None


@dataclass(frozen=True)
class _Decoded:
    pixels: np.ndarray | None = None  # H x W (x C) uint8
    problem: str | None = None  # why the file was not used
    too_small: bool = False


_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def _to_eight_bits(img, path: Path):
    """16-bit, 32-bit integer and float grayscale as 8-bit "L" (a transparent value made white), or a
    problem string; other images pass through. Pillow's own conversion clips at 255, which turns
    16-bit scans almost white and 0-1 floats black."""
    from PIL import Image

    if img.mode not in (*_SIXTEEN_BIT_MODES, "I", "F"):
        return img
    values = np.asarray(img)
    if img.mode == "F":
        if not np.isfinite(values).all():
            return (f"{path}: float pixels include NaN or infinity; fix the image, remove it or pass "
                    f"--skip-bad-images")
        low, high = float(values.min()), float(values.max())
        if low >= 0 and high <= 1:
            scaled = values * 255.0
        elif low >= 0 and high <= 255:
            scaled = values  # floats already on the 8-bit scale (a uint8 array saved as float)
        else:
            return (f"{path}: float pixels run from {low:g} to {high:g}, neither 0-1 nor 0-255; rescale it "
                    f"to one of them, remove it or pass --skip-bad-images")
    else:
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > 65535:
            return (f"{path}: 32-bit pixels run from {low} to {high}, beyond 16 bits' 0-65535; save it with 8 "
                    f"or 16 bits, remove it or pass --skip-bad-images")
        scaled = values.astype(np.float64) * (255.0 / 65535.0)  # "I" holds 16-bit PNG/PGM/TIFF values too
    transparent = img.info.get("transparency")
    if isinstance(transparent, int):  # white, as _on_white puts under every other transparent pixel
        scaled = np.where(values == transparent, 255, scaled)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def _on_white(img):
    """Transparent pixels composited onto white: the colour stored under them is arbitrary (often black
    or noise), and white is what a viewer shows for a cut-out object or a logo."""
    from PIL import Image

    if not img.has_transparency_data:
        return img
    rgba = img.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)


def decode_image(path: Path, image_size: int, channels: int) -> _Decoded:
    """Decode, turn upright by the EXIF orientation, composite transparency onto white, bring 16-bit and
    float pixels to 0-255, centre-crop to a square (CelebA's 178x218 -> 178x178) and resize to image_size."""
    from PIL import Image, ImageOps

    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(path) as img:
            w, h = img.size
            if min(w, h) < image_size:
                return _Decoded(problem=f"{path} is {w}x{h}, smaller than the model's {image_size}x{image_size} "
                                        f"images; remove it, pass --skip-bad-images or a smaller --image-size",
                                too_small=True)
            # JPEG can decode at 1/2, 1/4, 1/8 scale for free; draft never goes below the asked size.
            img.draft(mode, (image_size, image_size))
            # Phones store photos sideways with an Orientation tag; without it they load turned 90 degrees.
            ImageOps.exif_transpose(img, in_place=True)
            img = _to_eight_bits(img, path)
            if isinstance(img, str):
                return _Decoded(problem=img)
            img = _on_white(img).convert(mode)
            w, h = img.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            # A real crop first: resize(box=...) would let the filter reach pixels outside the square.
            img = img.crop((left, top, left + side, top + side))
            img = img.resize((image_size, image_size), Image.Resampling.LANCZOS)
            return _Decoded(pixels=np.asarray(img, dtype=np.uint8))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = str(exc).split("\n")[0][:120] or type(exc).__name__
        return _Decoded(problem=f"{path}: not a readable image ({reason}); remove it or pass --skip-bad-images")


def decode_images(files: list[Path], image_size: int, channels: int, skip_bad: bool,
                  desc: str = "decoding images") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All files as uint8 (N, C, H, W), with a keep-mask over `files` and notes on skipped files.
    Without `skip_bad` the first bad file (in file order) stops everything with its message."""
    from tqdm import tqdm

    out = np.empty((len(files), image_size, image_size, channels), dtype=np.uint8)
    keep = np.zeros(len(files), dtype=bool)
    unreadable, small = [], []
    pool = ThreadPoolExecutor(max_workers=DECODE_THREADS)
    try:
        results = pool.map(lambda p: decode_image(p, image_size, channels), files)
        for i, result in enumerate(tqdm(results, total=len(files), desc=desc, unit=" img", disable=None,
                                        leave=False)):
            if result.problem is None:
                out[i] = result.pixels.reshape(image_size, image_size, channels)
                keep[i] = True
            elif not skip_bad:
                raise UserError(result.problem)
            else:
                (small if result.too_small else unreadable).append(files[i])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    notes = []
    if unreadable:
        notes.append(f"skipped {len(unreadable)} unreadable file(s) (first: {unreadable[0]})")
    if small:
        notes.append(f"skipped {len(small)} image(s) smaller than {image_size}x{image_size} (first: {small[0]})")
    if not keep.any():
        raise UserError(f"none of the {len(files)} images in {files[0].parent} could be used: {'; '.join(notes)}")
    return np.ascontiguousarray(out[keep].transpose(0, 3, 1, 2)), keep, notes


def load_folder_images(name: str, listing: FolderListing, options: LoadOptions, *, labelled: bool = True,
                       extra_notes: list[str] | None = None) -> Data:
    """Decode (or take from the cache) every image of a listing at the model's size and channels."""
    size = options.image_size or FOLDER_DEFAULT_SIZE
    channels = options.channels or FOLDER_DEFAULT_CHANNELS
    if channels not in (1, 3):
        raise UserError(f"--channels {channels}: image folders load as 1 (grayscale) or 3 (RGB) channels")
    try:
        stats = [p.stat() for p in listing.files]
    except OSError as exc:
        raise UserError(f"{exc.filename}: cannot be read ({exc.strerror})") from None
    root = listing.root.resolve()
    # The version stands for what decoding does (EXIF orientation, white under transparency, 16-bit and
    # float scaling): images cached by a decoder that did otherwise are decoded again.
    key = stamp("v2", root, size, channels, options.skip_bad_images, listing.labels is not None,
                 *(f"{p.relative_to(listing.root)}|{s.st_size}|{s.st_mtime_ns}" for p, s in zip(listing.files, stats)))
    cache = decoded_cache_dir() / f"{name}-{stamp(root)[:8]}-{size}px-{channels}ch-{key}.npz"
    notes = list(extra_notes or []) + listing.notes
    cached = load_cache(cache, {"images", "keep", "notes"},
                         lambda a: a["keep"].dtype == bool and len(a["keep"]) == len(listing.files)
                         and len(a["images"]) == int(a["keep"].sum()))
    if cached is not None:
        images, keep = cached["images"], cached["keep"]
        notes += [str(n) for n in cached["notes"]]
    else:
        images, keep, decode_notes = decode_images(listing.files, size, channels, options.skip_bad_images,
                                                   desc=f"decoding {listing.root.name}")
        notes += decode_notes
        write_note = save_cache(cache, images=images, keep=keep, notes=np.array(decode_notes, dtype=str))
        if write_note:
            notes.append(write_note)
    y, class_names = None, []
    if labelled and listing.labels is not None:
        y = torch.from_numpy(np.asarray(listing.labels, dtype=np.int64)[keep])
        class_names = list(listing.class_names)
    return Data(name, torch.from_numpy(images), y, len(class_names), class_names, source=str(listing.root),
                notes=notes)


def load_image_folder(split: str, data_path, options: LoadOptions = LoadOptions()) -> Data:
    env = os.environ.get("WGAN_DATA")
    root = Path(data_path).expanduser() if data_path else (Path(env).expanduser() / "image-folder" if env else None)
    if root is not None and root.is_file():
        other = " (the letters CSV is --dataset letters-csv)" if root.suffix.lower() == ".csv" else ""
        raise UserError(f"{'--data ' if data_path else ''}{root}: is a file, not a folder of images; pass --data "
                        f"FOLDER holding the images, flat or one subfolder per class{other}")
    if root is None or not root.is_dir():
        where = f" ({root} does not exist)" if root is not None else ""
        raise UserError(f"image-folder needs --data FOLDER: a folder of images, flat or one subfolder per "
                        f"class{where}")
    folder, other, note = _split_folder(root, split)
    # Both splits' class folders number the classes: numbered per split, a class missing from one split
    # would shift every later class's label there, and a model trained on one split would be scored on
    # wrongly labelled images of the other.
    other_classes = _class_folder_names(other) if other is not None else None
    return load_folder_images("image-folder", list_image_folder(folder, other_classes), options,
                              extra_notes=[note] if note else [])


# CelebA: torchvision's layout is ROOT/celeba/img_align_celeba/ beside list_eval_partition.txt; Kaggle's
# zip unpacks to ROOT/img_align_celeba/img_align_celeba/ beside list_eval_partition.csv.
CELEBA_PARTITIONS = {"train": 0, "test": 2}  # 1 is the validation split


def _celeba_folder(d: Path, nested: bool = False) -> Path | None:
    """The folder of faces in `d`: the usual layouts holding images directly, or with `nested` `d` itself
    with its images anywhere below (faces/part1/, faces/part2/, ...)."""
    if nested:
        return d if d.is_dir() and _holds_images(d) else None
    for folder in (d / "img_align_celeba" / "img_align_celeba", d / "img_align_celeba", d):
        if folder.is_dir() and any(_is_image(p) for p in folder.iterdir()):
            return folder
    return None


def _find_celeba(dirs: list[Path], data_path) -> Path | None:
    found = next((f for d in dirs if (f := _celeba_folder(d)) is not None), None)
    if found is None:
        # Nested faces only after every usual layout missed, and never in the bare $WGAN_DATA, whose
        # subfolders are other datasets.
        found = next((f for d in dirs if (data_path or d.name == "celeba")
                      and (f := _celeba_folder(d, nested=True)) is not None), None)
    return found


def _celeba_partition(folder: Path) -> tuple[Path, dict[str, int]] | None:
    for d in (folder, folder.parent, folder.parent.parent):
        for file_name in ("list_eval_partition.txt", "list_eval_partition.csv"):
            path = d / file_name
            if path.is_file():
                return path, _read_partition(path)
    return None


def _read_partition(path: Path) -> dict[str, int]:
    parts = {}
    for line_no, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        fields = line.replace(",", " ").split()
        if not fields or (line_no == 1 and not fields[-1].isdigit()):
            continue  # blank line or the Kaggle csv's header
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise UserError(f"{path} line {line_no}: expected 'FILE PARTITION' with partition 0, 1 or 2, "
                            f"got {line.strip()[:60]!r}")
        parts[fields[0]] = int(fields[1])
    return parts


def load_celeba(split: str, data_path, options: LoadOptions = LoadOptions()) -> Data:
    refuse_file(data_path, "celeba", "img_align_celeba/ or the face images")
    dirs = candidate_dirs("celeba", data_path, "celeba")
    folder = _find_celeba(dirs, data_path)
    if folder is None:
        def fetch(root: Path) -> None:
            import torchvision

            torchvision.datasets.CelebA(str(root), split="all", download=True)

        if try_download(fetch, download_root("celeba", data_path)):
            folder = _find_celeba(dirs, data_path)
    if folder is None:
        raise not_there("celeba", data_path, "img_align_celeba/ folder and no face images", dirs, "celeba",
                         hint=" (any folder of face images works as --data)")
    # Unlabelled, so subfolders are just more faces, not classes.
    others: list[Path] = []
    listing = FolderListing(folder, _images_under(folder, others), None, [])
    partition = _celeba_partition(folder)
    notes = _ignored_note([p for p in others if not p.name.startswith("list_eval_partition")])
    if partition is not None:
        part_file, parts = partition
        wanted = CELEBA_PARTITIONS[split]
        chosen = [i for i, p in enumerate(listing.files) if parts.get(p.name) == wanted]
        if not chosen:
            raise UserError(f"{part_file}: lists no images of {folder} in the {split} partition ({wanted})")
        listing = FolderListing(listing.root, [listing.files[i] for i in chosen], None, [])
    elif split == "test":
        notes.append(f"{folder} has no list_eval_partition file: the test split is the training images")
    return load_folder_images("celeba", listing, options, labelled=False, extra_notes=notes)


# ---------------------------------------------------------------------------------------------
# CIFAR-10: torchvision's python batches are pickles; torchvision reads them after checking their md5.


def load_cifar10(split: str, data_path, options: LoadOptions = LoadOptions()) -> Data:
    import torchvision

    refuse_file(data_path, "cifar10", "cifar-10-batches-py/")
    dirs = candidate_dirs("cifar10", data_path)

    def find() -> Path | None:
        return next((d.parent if d.name == "cifar-10-batches-py" else d for d in dirs
                     if (d / "cifar-10-batches-py").is_dir() or (d.name == "cifar-10-batches-py" and d.is_dir())),
                    None)

    root = find()
    if root is None:
        if try_download(lambda r: torchvision.datasets.CIFAR10(str(r), train=True, download=True),
                         download_root("cifar10", data_path)):
            root = find()
    if root is None:
        raise not_there("cifar10", data_path, "cifar-10-batches-py/ folder (CIFAR-10's python batch files)", dirs,
                         None, hint=" (the folder holding cifar-10-batches-py)")
    try:
        ds = torchvision.datasets.CIFAR10(str(root), train=(split == "train"), download=False)
    except RuntimeError as exc:  # torchvision's md5 check: missing or damaged batch files
        raise UserError(f"{root / 'cifar-10-batches-py'}: {first_line(exc, None)} (re-download it)") from None
    except Exception as exc:  # a damaged pickle raises anything from EOFError to KeyError
        raise UserError(f"{root / 'cifar-10-batches-py'}: cannot be read ({type(exc).__name__}: {exc}); "
                        "re-download it") from None
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(ds.data, dtype=np.uint8).transpose(0, 3, 1, 2)))
    y = torch.as_tensor(ds.targets, dtype=torch.int64)
    return Data("cifar10", x, y, len(ds.classes), list(ds.classes), source=str(root / "cifar-10-batches-py"))


# ---------------------------------------------------------------------------------------------
# The WGAN-GP paper's 2-D toy data (gan_toy.py), pre-generated with a fixed seed per split.

TOY_TRAIN_POINTS = 100_000
TOY_TEST_POINTS = 20_000
TOY_SEEDS = {"train": 0, "test": 1}


def eight_gaussians_centres() -> np.ndarray:
    d = 1.0 / math.sqrt(2.0)
    unit = [(1, 0), (-1, 0), (0, 1), (0, -1), (d, d), (d, -d), (-d, d), (-d, -d)]
    return 2.0 * np.array(unit) / 1.414  # scale 2, then the paper's division by 1.414


def twenty_five_gaussians_centres() -> np.ndarray:
    return np.array([(2.0 * i, 2.0 * j) for i in range(-2, 3) for j in range(-2, 3)]) / 2.828


def sample_8gaussians(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centres = eight_gaussians_centres()
    mode = rng.integers(len(centres), size=n)
    return centres[mode] + rng.standard_normal((n, 2)) * 0.02 / 1.414, mode


def sample_25gaussians(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centres = twenty_five_gaussians_centres()
    mode = rng.integers(len(centres), size=n)
    return centres[mode] + rng.standard_normal((n, 2)) * 0.05 / 2.828, mode


def swiss_roll(n: int, rng: np.random.Generator, noise: float = 0.25) -> np.ndarray:
    """scikit-learn's make_swiss_roll, columns (x, z), divided by 7.5 as in the paper."""
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
    height = 21 * rng.uniform(size=n)
    xyz = np.stack([t * np.cos(t), height, t * np.sin(t)]) + noise * rng.standard_normal((3, n))
    return xyz[[0, 2]].T / 7.5


def _toy_loader(name: str, make: Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray | None]],
                centres: Callable[[], np.ndarray] | None):
    def load(split: str, data_path, options: LoadOptions = LoadOptions()) -> Data:
        n = TOY_TRAIN_POINTS if split == "train" else TOY_TEST_POINTS
        points, mode = make(n, np.random.default_rng(TOY_SEEDS[split]))
        x = torch.from_numpy(points.astype(np.float32))
        if mode is None:
            return Data(name, x, source=f"generated (seed {TOY_SEEDS[split]})")
        # The mixture component is a natural label: it lets metrics count covered modes.
        names = [f"({cx:.2f}, {cy:.2f})" for cx, cy in centres()]
        return Data(name, x, torch.from_numpy(mode.astype(np.int64)), len(names), names,
                    source=f"generated (seed {TOY_SEEDS[split]})")

    return load


# ---------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class DatasetEntry:
    load: Callable[..., Data]  # (split, data_path, options=LoadOptions()) -> Data at native size
    image_size: int  # native size (0 for points); folders: the default when the model does not say
    channels: int  # native channels (0 for points)
    num_classes: int  # 0: no labels, -1: as many as the folder's class subfolders
    description: str
    files: str = ""  # what it looks for, for `wgan datasets`


DATASETS: dict[str, DatasetEntry] = {
    "mnist": DatasetEntry(load_mnist, 28, 1, 10, "MNIST digits, 60k train / 10k test (IDX files)",
                          "train-images-idx3-ubyte[.gz] & co. (also .idx3-ubyte, MNIST/raw/); torchvision download"),
    "fashion-mnist": DatasetEntry(load_fashion_mnist, 28, 1, 10, "Fashion-MNIST, 60k train / 10k test (IDX files)",
                                  "train-images-idx3-ubyte[.gz] & co. (also .idx3-ubyte, FashionMNIST/raw/); "
                                  "torchvision download"),
    "emnist-letters": DatasetEntry(load_emnist_letters, 28, 1, 26,
                                   "EMNIST letters A-Z, 124.8k train / 20.8k test (labels 1-26 -> 0-25, upright)",
                                   "emnist-letters-train-images-idx3-ubyte[.gz] & co. (also EMNIST/raw/); "
                                   "torchvision download"),
    "letters-csv": DatasetEntry(load_letters_csv, 28, 1, 26,
                                "Kaggle A-Z handwritten letters CSV, 372k rows (a seeded 10% is the test split)",
                                f"{LETTERS_CSV_NAMES[0]} (or --data FILE.csv); cached as .npz after the first read"),
    "celeba": DatasetEntry(load_celeba, 64, 3, 0, "CelebA aligned faces: centre 178x178 crop, resized to the model",
                           "img_align_celeba/ (+ list_eval_partition.txt|csv), or --data FOLDER of faces; "
                           "torchvision download"),
    "image-folder": DatasetEntry(load_image_folder, FOLDER_DEFAULT_SIZE, FOLDER_DEFAULT_CHANNELS, -1,
                                 "any folder of images, flat or one subfolder per class (classes = labels)",
                                 "--data FOLDER (train/ and test/ subfolders are the splits if present)"),
    "cifar10": DatasetEntry(load_cifar10, 32, 3, 10, "CIFAR-10, 50k train / 10k test, 32x32 RGB",
                            "cifar-10-batches-py/ (torchvision's python version); torchvision download"),
    "toy-8gaussians": DatasetEntry(_toy_loader("toy-8gaussians", sample_8gaussians, eight_gaussians_centres), 0, 0,
                                   8, "the WGAN-GP paper's 8 Gaussians (scale 2, std 0.02, / 1.414)",
                                   "generated, seeded (100k train / 20k test points)"),
    "toy-25gaussians": DatasetEntry(_toy_loader("toy-25gaussians", sample_25gaussians, twenty_five_gaussians_centres),
                                    0, 0, 25, "the WGAN-GP paper's 25 Gaussians (5x5 grid, std 0.05, / 2.828)",
                                    "generated, seeded (100k train / 20k test points)"),
    "toy-swissroll": DatasetEntry(_toy_loader("toy-swissroll", lambda n, rng: (swiss_roll(n, rng), None), None),
                                  0, 0, 0, "the WGAN-GP paper's Swiss roll (noise 0.25, columns x and z, / 7.5)",
                                  "generated, seeded (100k train / 20k test points)"),
}


def load_dataset(name: str, *, split: str = "train", data_path: str | Path | None = None,
                 image_size: int | None = None, channels: int | None = None,
                 skip_bad_images: bool = False) -> Data:
    """Load a registered dataset, adapted to the model's image size and channels."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}': choose one of {', '.join(DATASETS)} (see `wgan datasets`)")
    if split not in ("train", "test"):
        raise UserError(f"unknown split '{split}': use train or test")
    if data_path and not Path(data_path).expanduser().exists():
        raise UserError(f"--data {data_path}: no such file or folder")
    options = LoadOptions(image_size=image_size, channels=channels, skip_bad_images=skip_bad_images)
    data = DATASETS[name].load(split, data_path, options)
    if len(data) == 0:
        raise UserError(f"{name} ({data.source}): the {split} split is empty")
    if not data.is_points:
        data.x = adapt_images(data.x, image_size, channels)
    return data
