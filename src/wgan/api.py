"""The Python API: the whole life of a run, from a notebook or a script (docs/python-api.md).

    import wgan
    run = wgan.train(preset="fashion-gp", steps=2000)           # what `wgan train` does; returns a Run
    run.metrics_frame()                                          # metrics.jsonl as a pandas DataFrame
    g = run.generator()                                          # or wgan.load_generator("runs/00003-fashion-gp")
    images = g.sample(64, labels="Sneaker", truncation=0.8, seed=0)   # uint8 (64, 1, 28, 28) on g.device
    wgan.evaluate(run, metrics=["fcd", "prc"], num=10000)        # {"fcd": ..., "precision": ..., ...}
    wgan.report(run)                                             # losses.png, quality.png, report.html

Each function goes through the code its `wgan` command runs: the same validated config and loop, the
checkpoint module's verified, weights-only loads (nothing in a file is executed), the same sampling, so
the same seed gives the same images as `wgan sample --seed`. Every problem is a ValueError (wgan's
UserError) whose message says what to change; option names in messages are the command line's.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Callable

import torch

from wgan import exported, launch, rundir, sampling
from wgan.errors import UserError, writing
from wgan.evaluation import EvalRequest, evaluate_run
from wgan.run_report import report_run
from wgan.sample_request import sample_options, walk_options
from wgan.sample_rules import (
    DEFAULT_FRAME_MS, DEFAULT_SAMPLES, DEFAULT_WALK_FRAMES, check_count, check_export_suffix, check_seed,
    label_index)
from wgan.walks import render_walk


def train(preset: str = "quick", data: str | Path | None = None, steps: int | None = None, *, progress: bool = True,
          dry_run: bool = False, **options) -> "Run":
    """Train a new run, as `wgan train --preset PRESET --data DATA --steps STEPS ...` does: `options` are
    TrainConfig's fields (lr_critic=1e-4, conditional=False, runs_dir="runs", ...) over the preset's.
    progress=False: no progress bar and nothing printed."""
    options = _plain(dict(options, preset=preset, data=data, steps=steps))
    return Run(launch.start_training(options, dry_run=dry_run, progress=progress, note=_say(progress)))


def resume(run: "str | Path | Run", steps: int | None = None, *, progress: bool = True, **options) -> "Run":
    """Continue a run (its directory, one of its checkpoint files, or a Run) from its checkpoint, exactly
    where it stopped, as `wgan train --resume` does; `steps` the new total. Only steps, device, fast,
    precision, data and inception_weights may change."""
    options = _plain(dict(options, steps=steps))
    return Run(launch.start_training(options, resume=Path(_run_path(run)), progress=progress, note=_say(progress)))


def evaluate(source: "str | Path | Run | TrainedGenerator", metrics: list[str] | str | None = None,
             num: int = 10000, *, seed: int = 0, device: str = "auto", data: str | Path | None = None,
             append: bool = False, progress: bool = True) -> dict:
    """The metrics (default: the run's --eval-metrics, else those that apply) of `num` samples of a run's
    generator or of a loaded one, as `wgan eval --run` computes them: {"fcd": 23.4, ..., "samples": {...}}.
    append=True also appends them to the run's metrics.jsonl, as `wgan eval` does."""
    req = EvalRequest(metrics=metrics, num=num, seed=seed, device=device, no_append=not append,
                      data=None if data is None else str(data), say=_say(progress), progress=progress)
    check_count(num, "num", 2)
    check_seed(seed, "--seed")
    if isinstance(source, TrainedGenerator):
        return evaluate_run(req, source.device, loaded=source.loaded)
    from wgan.distributed import resolve_device

    req.run = str(_run_path(source))
    return evaluate_run(req, resolve_device(device))


def report(run: "str | Path | Run", *, progress: bool = True) -> dict[str, Path]:
    """Rebuild losses.png, quality.png, timelapse.gif, walk.gif and report.html of a run (also one still
    training), as `wgan report` does; returns the files written, by kind ("losses", "html", ...)."""
    return report_run(Path(_run_path(run)), say=_say(progress))


def _plain(options: dict) -> dict:
    """Paths as the strings a config holds (runs_dir=Path("runs") is runs_dir="runs")."""
    return {name: os.fspath(value) if isinstance(value, os.PathLike) else value for name, value in options.items()}


def _say(progress: bool) -> Callable[[str], None]:
    return print if progress else (lambda text: None)


def _run_path(run) -> Path:
    return _path(run, "run")


class Run:
    """A run directory: its config, its metrics.jsonl records, its generator."""

    def __init__(self, run_dir: str | Path):
        self.dir = rundir.check_run_dir(Path(run_dir), "run")

    @property
    def config(self):
        """The TrainConfig the run was trained with (config.json)."""
        from wgan.config import TrainConfig

        stored = rundir.read_config(self.dir)
        if stored is None:
            raise UserError(f"{self.dir / rundir.CONFIG}: unreadable; not a run directory wgan wrote")
        return TrainConfig.from_dict(stored)

    def metrics(self) -> list[dict]:
        """metrics.jsonl's records, oldest first: training records (step, losses, ...) and evaluations."""
        return rundir.read_records(self.dir)

    def metrics_frame(self):
        """metrics.jsonl as a pandas DataFrame, one row per record (needs pandas)."""
        import pandas

        return pandas.DataFrame.from_records(self.metrics())

    def generator(self, device: str | torch.device = "cpu", raw_generator: bool = False) -> "TrainedGenerator":
        return load_generator(self.dir, device, raw_generator=raw_generator)

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r})"


def load_generator(source: str | Path, device: str | torch.device = "cpu",
                   raw_generator: bool = False) -> "TrainedGenerator":
    """The generator of `source`: a run directory (its newest checkpoint, else its generator.safetensors),
    a checkpoint file of a run, or a .safetensors file written by `wgan export`. The moving average of its
    weights where the run kept one, as `wgan sample` does; the trained weights with `raw_generator=True`."""
    return TrainedGenerator(exported.load_generator(_path(source, "load_generator"), device, raw=raw_generator,
                                                   option="load_generator"))


def _path(value, name: str) -> Path:
    """A path argument, or a UserError naming the argument when it is of another type."""
    if isinstance(value, Run):
        return value.dir
    if not isinstance(value, (str, os.PathLike)):
        raise UserError(f"{name}({value!r}): a path (a str or a pathlib.Path), not a {type(value).__name__}")
    return Path(value)


class TrainedGenerator:
    """A trained generator and what it makes: `classes`, `latent_dim`, `image_shape`, `device`."""

    def __init__(self, loaded: exported.LoadedGenerator):
        self.module = loaded.generator  # the torch module, in eval mode
        self.config = loaded.config  # the TrainConfig it was trained with
        self.step = loaded.step  # the training step it was saved at (None: the file does not say)
        self.weights = loaded.weights  # "ema": the moving average of its weights; "raw": the trained ones
        self.classes: tuple[str, ...] = tuple(loaded.class_names)  # () for an unconditional generator
        self.loaded = loaded  # where it came from (run_dir), for evaluate

    @property
    def latent_dim(self) -> int:
        return self.module.shape.latent_dim

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one image; (D,) for a generator of D-dimensional points (the toy data)."""
        return tuple(self.module.shape.sample_shape)

    @property
    def conditional(self) -> bool:
        return bool(self.classes)

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def to(self, device: str | torch.device) -> "TrainedGenerator":
        from wgan.distributed import resolve_device

        self.module.to(resolve_device(device, "device"))
        return self

    def __repr__(self) -> str:
        classes = f", {len(self.classes)} classes" if self.classes else ""
        return (f"TrainedGenerator({self.config.model}, image_shape={self.image_shape}, latent_dim={self.latent_dim}"
                f"{classes}, weights={self.weights!r}, step={self.step}, device={self.device})")

    def sample(self, num: int, labels=None, truncation: float | None = None, seed: int | None = None,
               batch_size: int = 500) -> torch.Tensor:
        """`num` samples, uint8 (N, C, H, W) on the generator's device (float points (N, D) for point data).

        labels: for a conditional generator, a class name (any case) or number for all samples, or a list of
        one per sample; None: every class in turn. truncation: each noise coordinate within
        [-truncation, truncation] (resampled, not clamped). seed: the same seed gives the same samples."""
        seed = random.SystemRandom().randrange(2**62) if seed is None else seed
        check_count(batch_size, "batch_size")
        request = sampling.samples_for(self.module, self.classes,
                                       sample_options(num, label=labels, truncation=truncation, seed=seed))
        samples = sampling.draw_samples(self.module, request, device=self.device, batch_size=batch_size)
        return samples.x.to(self.device)

    def walk(self, num_points: int = 4, frames: int = 8, num_walks: int = 1, label=None,
             truncation: float | None = None, seed: int = 0) -> torch.Tensor:
        """The frames of latent walks, uint8 (T, K, C, H, W): `num_walks` walks, each a loop through
        `num_points` fixed noise points, `frames` frames between neighbours (T = num_points * frames). A
        conditional generator shows each walk in every class (K = num_walks * classes, walk by walk), or in
        the one class `label` names."""
        request = sampling.walk_for(self.module, self.classes, walk_options(
            num_points, frames, num_walks=num_walks, label=label, truncation=truncation, seed=seed))
        return render_walk(self.module, device=self.device, **request.render_options()).frames.to(self.device)

    def save_samples(self, path: str | Path, num: int = DEFAULT_SAMPLES, labels=None, truncation: float | None = None,
                     seed: int = 0) -> Path:
        """`num` samples written to `path` as `wgan sample` writes them: a .png grid, or a .npz array (uint8
        images and their labels; points for point data). The same seed gives the same file."""
        request = sampling.samples_for(self.module, self.classes, sample_options(
            num, label=labels, truncation=truncation, seed=seed, out=Path(path)))
        return sampling.write_samples(self.module, request, device=self.device)

    def save_walk(self, path: str | Path, num_points: int = 4, frames: int = DEFAULT_WALK_FRAMES,
                  num_walks: int | None = None, label=None, truncation: float | None = None, seed: int = 0,
                  frame_ms: int = DEFAULT_FRAME_MS) -> Path:
        """The walks of `walk` as a .gif or .mp4 at `path`, as `wgan sample --walk` writes them; `num_walks`
        None: a 4 x 4 grid, or 4 rows of every class of a conditional generator."""
        request = sampling.walk_for(self.module, self.classes, walk_options(
            num_points, frames, frame_ms=frame_ms, num_walks=num_walks, label=label, truncation=truncation, seed=seed,
            out=Path(path)))
        sampling.write_walk(self.module, request, device=self.device)
        return Path(path)

    def export(self, path: str | Path) -> Path:
        """These weights as one .safetensors file (the config in its metadata), as `wgan export` writes them;
        load_generator(path) and `wgan sample --weights` read it."""
        path = Path(path)
        check_export_suffix(path, "path")
        with writing("path", path):
            path.parent.mkdir(parents=True, exist_ok=True)
            exported.save_generator(path, self.module.state_dict(), self.config.to_dict(),
                                    dict(self.module.shape.__dict__), self.step, self.weights,
                                    class_names=list(self.classes) or None)
        return path

    def class_index(self, label) -> int:
        """The number of the class `label` names (a name in any case, or a number)."""
        return label_index(label, self.classes, "label")
