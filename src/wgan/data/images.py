"""Image decoding: one file to the model's size and channels (upright by its EXIF orientation, white under
transparency, 16-bit and float pixels brought to 0-255, centre-cropped to a square), and many files
at once, with worker threads and a progress bar, into the rows of a file, a chunk at a time."""

from __future__ import annotations

import os
import re
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from wgan.data.decoded import Rows
from wgan.errors import UserError

DECODE_THREADS = min(8, os.cpu_count() or 1)  # Pillow releases the GIL while decoding and resizing
CHUNK_BYTES = 4 << 20  # decoded images written to the file at once, at most (one image where it is larger)
DECODE_WINDOW = 8 * DECODE_THREADS  # images decoded ahead of the writing, at most


# Pillow warns, naming no file, about images past its own limit, and refuses those past twice that
# with an error: the decoder refuses them itself (below), with the file and the option to raise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class _Decoded:
    pixels: np.ndarray | None = None  # H x W (x C) uint8
    problem: str | None = None  # why the file was not used
    too_small: bool = False
    too_large: bool = False


_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def _to_eight_bits(img, path: Path):
    """16-bit, 32-bit integer and float grayscale as 8-bit "L" (a transparent value made white), or a
    problem string; other images pass through. Pillow's own conversion clips at 255, which turns
    16-bit scans almost white and 0-1 floats black."""
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
    if not img.has_transparency_data:
        return img
    rgba = img.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)


def _too_large(path: Path, size: str, max_megapixels: float) -> _Decoded:
    return _Decoded(problem=f"{path} is {size}, over --max-image-megapixels {max_megapixels:g}: shrink it, raise the "
                            "limit, remove it or pass --skip-bad-images", too_large=True)


def decode_image(path: Path, image_size: int, channels: int, max_megapixels: float = 40.0) -> _Decoded:
    """Decode, turn upright by the EXIF orientation, composite transparency onto white, bring 16-bit and
    float pixels to 0-255, centre-crop to a square (CelebA's 178x218 -> 178x178) and resize to image_size.

    An image is refused, from its header and before any pixel is decoded, when it would decode to more
    than `max_megapixels`: a 120 KB PNG can hold 10,000 x 10,000 pixels, a gigabyte once decoded. JPEGs
    count at the reduced size they decode to for a small model (draft), so large photos pass."""
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
            dw, dh = img.size
            if dw * dh > max_megapixels * 1e6:
                return _too_large(path, f"{w}x{h} ({dw * dh / 1e6:.0f} megapixels to decode)", max_megapixels)
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
    except Image.DecompressionBombError as exc:  # past twice Pillow's own limit: refused by Pillow at the header
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        return _too_large(path, f"{int(pixels.group(1)) / 1e6:.0f} megapixels" if pixels else "too large to decode",
                          max_megapixels)
    except (OSError, ValueError, SyntaxError) as exc:
        reason = str(exc).split("\n")[0][:120] or type(exc).__name__
        return _Decoded(problem=f"{path}: not a readable image ({reason}); remove it or pass --skip-bad-images")


def decode_images(files: list[Path], image_size: int, channels: int, skip_bad: bool, rows: Rows,
                  desc: str = "decoding images", max_megapixels: float = 40.0) -> tuple[int, np.ndarray, list[str]]:
    """Decode every file into `rows`, the usable ones one after another from row 0, CHUNK_BYTES at a time;
    returns their count, a keep-mask over `files` and notes on skipped files. Without `skip_bad` the first
    bad file (in file order) stops everything with its message. At most DECODE_WINDOW images are decoded
    ahead of the writing, so memory does not grow with the number of files."""
    chunk = np.empty((max(1, CHUNK_BYTES // (image_size * image_size * channels)), image_size, image_size, channels),
                     dtype=np.uint8)
    keep = np.zeros(len(files), dtype=bool)
    unreadable, small, large = [], [], []
    written = filled = 0

    def flush() -> None:
        nonlocal written, filled
        if filled:
            rows.put(written, chunk[:filled].transpose(0, 3, 1, 2))
            written, filled = written + filled, 0

    pool = ThreadPoolExecutor(max_workers=DECODE_THREADS)
    try:
        results = _in_order(pool, lambda p: decode_image(p, image_size, channels, max_megapixels), files)
        for i, result in enumerate(tqdm(results, total=len(files), desc=desc, unit=" img", disable=None,
                                        leave=False)):
            if result.problem is None:
                chunk[filled] = result.pixels.reshape(image_size, image_size, channels)
                filled += 1
                keep[i] = True
                if filled == len(chunk):
                    flush()
            elif not skip_bad:
                raise UserError(result.problem)
            else:
                (small if result.too_small else large if result.too_large else unreadable).append(files[i])
        flush()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    notes = []
    if unreadable:
        notes.append(f"skipped {len(unreadable)} unreadable file(s) (first: {unreadable[0]})")
    if small:
        notes.append(f"skipped {len(small)} image(s) smaller than {image_size}x{image_size} (first: {small[0]})")
    if large:
        notes.append(f"skipped {len(large)} image(s) over --max-image-megapixels {max_megapixels:g} (first: {large[0]})")
    if not keep.any():
        raise UserError(f"none of the {len(files)} images in {files[0].parent} could be used: {'; '.join(notes)}")
    return written, keep, notes


def _in_order(pool: ThreadPoolExecutor, fn, items: list) -> Iterator:
    """fn(item) for each item, in order, computed by the pool at most DECODE_WINDOW ahead of the caller
    (pool.map would decode every file before the first is written, holding them all)."""
    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= DECODE_WINDOW:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
