"""Image folders: any folder of images, flat or one subfolder per class (sorted names become labels),
with train/ and test/ subfolders as the splits; and CelebA's aligned faces in torchvision's or Kaggle's
layout, split by list_eval_partition. Decoded once into the decoded cache's file that every process maps."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from wgan.data.cache import stamp
from wgan.data.core import Data, LoadOptions
from wgan.data.decoded import Rows, decoded
from wgan.data.images import decode_images
from wgan.data.search import candidate_dirs, download_root, not_there, refuse_file, try_download
from wgan.errors import UserError

# The raster formats Pillow reads without extra software (.jfif, .jpe: JPEG; .mpo: cameras' multi-picture
# JPEG; .dib: BMP), so a folder of any of them loads; other files are counted in a note, never read.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".png", ".apng", ".bmp", ".dib", ".gif",
                            ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".qoi", ".avif"})
FOLDER_DEFAULT_SIZE = 64
FOLDER_DEFAULT_CHANNELS = 3
SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val", "valid", "validation")}


def _is_image(p: Path) -> bool:
    # Dot files are macOS/editor metadata (._x.jpg, .DS_Store), never images.
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()


@dataclass
class WalkNotes:
    """What a walk met besides files: links that lead nowhere, and whether it followed a linked folder
    (then two class folders may reach the same images)."""

    broken_links: list[Path] = field(default_factory=list)
    followed_links: bool = False


def _files_under(folder: Path, walk: WalkNotes | None = None) -> Iterator[Path]:
    """Every file under `folder`, dot files and dot folders left out. Symlinked subfolders are followed
    (pathlib's rglob skips them, silently dropping their images), each real folder once, so a link back
    up the tree ends instead of looping. Sorted names, so the first image is found without a full walk.
    Broken links and followed folder links are noted in `walk`."""
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
                    if walk is not None and entry.is_symlink():
                        walk.followed_links = True
                elif entry.is_file():
                    yield Path(entry.path)
                elif walk is not None and entry.is_symlink():  # a link to nothing (any more)
                    walk.broken_links.append(Path(entry.path))
            except OSError:
                continue
        stack.extend(reversed(subdirs))


def _images_under(folder: Path, others: list[Path] | None = None, walk: WalkNotes | None = None) -> list[Path]:
    """The images under `folder`, sorted; files without an image suffix are added to `others`."""
    images = []
    for p in _files_under(folder, walk):
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
    loose, others, subdirs, walk = [], [], [], WalkNotes()
    for p in sorted(root.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            subdirs.append(p)
            walk.followed_links |= p.is_symlink()
        elif _is_image(p):
            loose.append(p)
        elif p.is_file():
            others.append(p)
        elif p.is_symlink():
            walk.broken_links.append(p)
    classes, empty = [], []
    for d in subdirs:
        imgs = _images_under(d, others, walk)
        if imgs:
            classes.append((d.name, imgs))
        else:
            empty.append(d.name)
    twice = _drop_images_reached_twice(classes) if walk.followed_links else []
    if loose and classes:
        raise UserError(f"{root}: holds both loose images ({loose[0].name}, ...) and class subfolders "
                        f"({', '.join(n for n, _ in classes[:3])}); move the loose images into a subfolder "
                        "or pass one of the subfolders as --data")
    notes = _ignored_note(others) + _link_notes(walk, twice)
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


def _drop_images_reached_twice(classes: list[tuple[str, list[Path]]]) -> list[Path]:
    """Images that class folders reach twice through symbolic links are kept once, in the first class that
    reaches them; returns the copies dropped."""
    owner: set[str] = set()
    dropped = []
    for i, (name, imgs) in enumerate(classes):
        kept = []
        for p in imgs:
            real = os.path.realpath(p)
            if real in owner:
                dropped.append(p)
            else:
                owner.add(real)
                kept.append(p)
        classes[i] = (name, kept)
    classes[:] = [(n, imgs) for n, imgs in classes if imgs]
    return dropped


def _link_notes(walk: WalkNotes, twice: list[Path]) -> list[str]:
    notes = []
    broken = list({os.path.realpath(p): p for p in walk.broken_links}.values())  # one link reached twice: once
    if broken:
        notes.append(f"skipped {len(broken)} broken symbolic link(s) (first: {broken[0]} -> {os.readlink(broken[0])})")
    if twice:
        notes.append(f"{len(twice)} image(s) reached twice through symbolic links were counted once, in the first "
                     f"class that reaches them (first: {twice[0]})")
    return notes


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
    # The pixel limit decides what a skipping load keeps; without skipping, a refused image stops it uncached.
    limit = (f"max{options.max_image_megapixels:g}MP",) if options.skip_bad_images else ()
    key = stamp("v2", root, size, channels, options.skip_bad_images, listing.labels is not None, *limit,
                 *(f"{p.relative_to(listing.root)}|{s.st_size}|{s.st_mtime_ns}" for p, s in zip(listing.files, stats)))
    prefix = f"{name}-{stamp(root)[:8]}-{size}px-{channels}ch-"
    notes = list(extra_notes or []) + listing.notes

    def decode(rows: Rows) -> tuple[int, dict[str, np.ndarray]]:
        count, keep, decode_notes = decode_images(listing.files, size, channels, options.skip_bad_images, rows,
                                                  desc=f"decoding {listing.root.name}",
                                                  max_megapixels=options.max_image_megapixels)
        return count, {"keep": keep, "notes": np.array(decode_notes, dtype=str)}

    def consistent(count: int, arrays: dict[str, np.ndarray]) -> bool:
        keep = arrays.get("keep")
        return (keep is not None and "notes" in arrays and keep.dtype == bool and len(keep) == len(listing.files)
                and int(keep.sum()) == count)

    found = decoded(prefix + key, prefix, (channels, size, size), len(listing.files), decode,
                    source=str(listing.root), consistent=consistent)
    keep = found.arrays["keep"]
    notes += found.notes + [str(n) for n in found.arrays["notes"]]
    y, class_names = None, []
    if labelled and listing.labels is not None:
        y = torch.from_numpy(np.asarray(listing.labels, dtype=np.int64)[keep])
        class_names = list(listing.class_names)
    return Data(name, found.images, y, len(class_names), class_names, source=str(listing.root), notes=notes,
                mapped_from=str(found.path or ""))


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
            import torchvision  # here, not at the top: seconds to import, needed only to download

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
