"""Animations from frames: GIF through Pillow (always installed, as for timelapse.gif), MP4 through imageio's
ffmpeg plugin where it is installed. Written beside the target and renamed over it, so a failed write leaves
nothing half-written.

Generic: nothing here knows about GANs, and nothing of ours is imported but the file helpers.
"""

from __future__ import annotations

import importlib.util
import io
import os
from pathlib import Path
from typing import Callable

import numpy as np

from wgan.files import atomic_write

MP4_PLUGIN_HINT = "pip install imageio[ffmpeg], or write a .gif"


def _mp4_plugin_missing() -> bool:
    return any(importlib.util.find_spec(name) is None for name in ("imageio", "imageio_ffmpeg"))


def animation_problem(path: Path) -> str | None:
    """Why an animation cannot be written to `path` (checked before any frame is made), or None."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITERS:
        return f"an animation is a {' or '.join(WRITERS)} file; name it so"
    if suffix == ".mp4" and _mp4_plugin_missing():
        return f"writing MP4 needs imageio's ffmpeg plugin, which is not installed: {MP4_PLUGIN_HINT}"
    return None


def write_gif(path: Path, frames: np.ndarray, frame_ms: int) -> None:
    """uint8 frames (T, H, W, 3) as a GIF that loops forever. Grey frames stay grey (one channel, no
    palette search); colour ones get a palette each. Identical neighbouring frames are merged by the GIF
    writer into one frame of their summed duration, which plays the same."""
    grey = bool(np.all(frames == frames[..., :1]))
    save_gif(path, [_gif_frame(f, grey) for f in frames], frame_ms)


def save_gif(path: Path, images: list, durations_ms: int | list[int]) -> None:
    """Pillow images as a GIF that loops forever, each shown its duration (one for all, or one each),
    written whole to memory first and then atomically."""
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=durations_ms, loop=0,
                   optimize=False, disposal=1)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def _gif_frame(frame: np.ndarray, grey: bool):
    from PIL import Image

    if grey:
        return Image.fromarray(np.ascontiguousarray(frame[..., 0]))  # 2-D uint8: mode L
    return Image.fromarray(np.ascontiguousarray(frame)).quantize(colors=255)


def write_mp4(path: Path, frames: np.ndarray, frame_ms: int) -> None:
    """uint8 frames (T, H, W, 3) as H.264 MP4 (yuv420p, which players expect and which needs even sides: an
    odd side gets one white row or column)."""
    import imageio.v2 as imageio

    frames = np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)),
                    constant_values=255)
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")  # ffmpeg picks the format by suffix
    try:
        with imageio.get_writer(str(tmp), format="FFMPEG", mode="I", fps=1000.0 / frame_ms, codec="libx264",
                                pixelformat="yuv420p", macro_block_size=1) as writer:
            for frame in frames:
                writer.append_data(frame)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


WRITERS: dict[str, Callable[[Path, np.ndarray, int], None]] = {".gif": write_gif, ".mp4": write_mp4}


def write_animation(path: Path, frames: np.ndarray, frame_ms: int) -> None:
    """uint8 frames (T, H, W, 3), each shown `frame_ms` milliseconds, in the format `path`'s suffix names."""
    problem = animation_problem(path)
    if problem:
        raise ValueError(f"{path}: {problem}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    WRITERS[Path(path).suffix.lower()](Path(path), np.asarray(frames, dtype=np.uint8), frame_ms)
