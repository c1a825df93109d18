"""The `wgan` command: parse, build a validated config, call one function.

Every problem the user can cause ends as one line on stderr and exit code 2; a run whose losses
became NaN or infinite ends as one line and exit code 3.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import typing
from pathlib import Path

# Only what imports no numerical library: `wgan --help` must answer at once. The commands import the rest.
from wgan import __version__
from wgan.config import PRESETS, TrainConfig, flag, preset_config, resolve_sizes, validate
from wgan.errors import Stopped, TrainingDiverged, UserError, first_line, os_reason, report_error, writing
from wgan.files import user_cache_dir


def _field_type(f: dataclasses.Field) -> type:
    """A config field's value type, without the None of an optional one (str | None -> str)."""
    kind = typing.get_type_hints(TrainConfig)[f.name]
    return next((t for t in typing.get_args(kind) if t is not type(None)), kind)


def _config_fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """Every TrainConfig field as an option of `wgan train`: its flag, type and help come from the field."""
    quick = preset_config("quick")  # a bare `wgan train` is the quick preset
    for name, f in _config_fields().items():
        value = getattr(quick, name)
        default = "quick" if name == "preset" else "none" if value is None else f"the preset's; quick: {value}"
        help_text = f"{f.metadata['help']} (default: {default})"
        if _field_type(f) is bool:
            parser.add_argument(flag(name), dest=name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        else:
            parser.add_argument(flag(name), dest=name, type=_field_type(f), default=None, metavar=name.upper(),
                                help=help_text)


_METAVARS = {"data": "PATH", "inception_weights": "FILE", "runs_dir": "DIR"}


def add_config_option(parser: argparse.ArgumentParser, name: str, *, default=None, help: str | None = None) -> None:
    """A TrainConfig option (--dataset, --data, --device, --seed, ...) for a command other than train: the
    same flag and type, the field's help unless the command says more."""
    f = _config_fields()[name]
    text = help or f.metadata["help"]
    if _field_type(f) is bool:
        parser.add_argument(flag(name), dest=name, action="store_true", help=text)
    else:
        parser.add_argument(flag(name), dest=name, type=_field_type(f), default=default,
                            metavar=_METAVARS.get(name), help=text)


class OneLineParser(argparse.ArgumentParser):
    """A parse error (unknown option, `--steps x`) is a user error too: one line on stderr, exit code 2,
    instead of argparse's usage block. Subcommand parsers inherit this class."""

    def error(self, message: str) -> typing.NoReturn:
        report_error(f"{self.prog}: error: {message} (see `{self.prog} --help`)")
        self.exit(2)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; each subcommand's options are one table below. Imports neither torch nor
    numpy, so `wgan --help` answers at once."""
    parser = OneLineParser(prog="wgan", description="Wasserstein GANs: train, sample, evaluate, report.")
    parser.add_argument("--version", action="version", version=f"wgan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_train_parser, _sample_parser, _export_parser, _eval_parser, _report_parser, _presets_parser,
                _bench_parser, _claims_parser, _datasets_parser):
        add(sub)
    return parser


def _raw_generator_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--raw-generator", action="store_true",
                        help="the trained generator's own weights, not their moving average (which runs with "
                             "--ema-halflife-kimg > 0 sample and evaluate by default)")


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a WGAN / WGAN-GP")
    add_train_options(p)
    p.add_argument("--resume", metavar="DIR|FILE|auto",
                   help="DIR: continue the run in DIR from its newest checkpoint, exactly where it stopped. "
                        "FILE: from that checkpoint of a run (DIR/checkpoints/step-NNNNNNNN.pt), e.g. the previous "
                        "good one that the error names when the newest is damaged; newer checkpoints are then "
                        "renamed *.superseded, never deleted. auto: the newest run in --runs-dir with the same "
                        "options, or a new run if there is none. On resume only --steps, --device, --fast, "
                        "--precision, --data and --inception-weights may change")
    p.add_argument("--dry-run", action="store_true", help="build everything and run 2 steps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _sample_parser(sub) -> None:
    p = sub.add_parser("sample", help="sample from a trained generator")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", metavar="DIR|FILE", help="run directory (its newest checkpoint) or one checkpoint")
    src.add_argument("--weights", metavar="FILE", help="generator .safetensors from `wgan export`")
    p.add_argument("--num", type=int, default=None,
                   help=f"number of samples (default: {DEFAULT_SAMPLES}); with --walk: number of walks (default: "
                        f"{DEFAULT_WALKS}; conditional models: {DEFAULT_WALK_ROWS} rows of every class)")
    p.add_argument("--label", default=None,
                   help="conditional models: the class, by name in any case (Sneaker, A) or number; default: all "
                        "classes, one per column")
    p.add_argument("--out", required=True, help="output: .png (grid of images) or .npz (uint8 N x C x H x W; "
                   "2-D point models: .npz of the points); with --walk: .gif or .mp4")
    add_config_option(p, "seed", default=0, help="seed of the noise (same seed, same samples; default: 0)")
    add_config_option(p, "device", default="auto")
    _raw_generator_option(p)
    _sampling_options(p)


DEFAULT_SAMPLES = 64
DEFAULT_WALKS = 16  # a 4 x 4 grid of walks
DEFAULT_WALK_ROWS = 4  # a conditional generator's walks: each row one walk, shown in every class
DEFAULT_WALK_FRAMES = 16
DEFAULT_FRAME_MS = 80


def _sampling_options(p: argparse.ArgumentParser) -> None:
    """The truncation trick and latent walks, for `wgan sample`."""
    p.add_argument("--truncation", type=float, default=None, metavar="PSI",
                   help="draw every noise coordinate within [-PSI, PSI] (resampled, not clamped): less variety, "
                        "more typical samples (e.g. 0.7; default: no truncation)")
    p.add_argument("--walk", type=int, default=None, metavar="N",
                   help="write a latent walk instead of samples: a loop through N fixed noise points (N >= 2) by "
                        "spherical interpolation, --num walks side by side; --out .gif or .mp4")
    p.add_argument("--frames", type=int, default=None, metavar="F",
                   help=f"with --walk: frames between neighbouring points (default: {DEFAULT_WALK_FRAMES})")
    p.add_argument("--frame-ms", type=int, default=None,
                   help=f"with --walk: milliseconds each frame is shown (default: {DEFAULT_FRAME_MS})")


def _export_parser(sub) -> None:
    p = sub.add_parser("export", help="write a run's generator to one .safetensors file (config in its metadata)")
    p.add_argument("--run", required=True, metavar="DIR|FILE",
                   help="run directory (its newest checkpoint) or one of its checkpoint files")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="the .safetensors file to write; `wgan sample --weights FILE` samples from it")
    _raw_generator_option(p)


def _eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="measure a trained generator (FCD, class coverage, ...); train the classifier")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--run", metavar="DIR|FILE",
                      help="run directory to evaluate (its newest checkpoint), or one of its checkpoint files; "
                           "results are appended to the run's metrics.jsonl")
    what.add_argument("--train-classifier", action="store_true",
                      help="train and cache the domain classifier of --dataset (FCD's feature extractor)")
    what.add_argument("--baselines", action="store_true",
                      help="score --num training images and --num uniform-noise images against the test split: "
                           "the floor and the ceiling that put a run's numbers in context")
    p.add_argument("--metrics", default=None, help="comma-separated, from: fcd, class-coverage, cond-accuracy, "
                   "prc, dc, w1-exact, fid, kid, prc-inception, dc-inception (default for --run: the run's "
                   "--eval-metrics, else the ones that apply)")
    p.add_argument("--num", type=int, default=10000, help="generated samples per metric (default: 10000)")
    add_config_option(p, "dataset", help="with --train-classifier / --baselines: dataset name")
    add_config_option(p, "data", help="where the dataset's files are (default: the run's)")
    add_config_option(p, "image_size", help="with --train-classifier / --baselines: image side")
    add_config_option(p, "channels", help="with --train-classifier / --baselines: 1 or 3")
    p.add_argument("--epochs", type=int, default=None, help="with --train-classifier: training epochs (default: 3)")
    add_config_option(p, "inception_weights",
                      help="Inception-v3 weights for fid/kid through torch-fidelity (needed offline)")
    add_config_option(p, "seed", default=0, help="seed of the samples drawn (default: 0)")
    add_config_option(p, "device", default="auto")
    p.add_argument("--no-append", action="store_true", help="with --run: print only, leave metrics.jsonl alone")
    _raw_generator_option(p)
    _eval_analysis_options(p)


def _report_parser(sub) -> None:
    p = sub.add_parser("report", help="rebuild losses.png, quality.png, timelapse.gif and report.html of a run")
    p.add_argument("--run", metavar="DIR", required=True, help="run directory (also one still training or killed)")


def _presets_parser(sub) -> None:
    sub.add_parser("presets", help="list the presets and their settings")


def _bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="time the fast training step against a plain eager step")
    add_config_option(p, "preset", default="fashion-gp", help="preset whose model and settings to time")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: the preset's)")
    p.add_argument("--seconds", type=float, default=10.0, help="timed seconds per variant")
    add_config_option(p, "device", default="auto")
    add_config_option(p, "precision", help="fast variant's precision: fp32, tf32, bf16 (default: preset's)")
    add_config_option(p, "data", help="dataset files (else the usual search; synthetic if absent)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")


def _claims_parser(sub) -> None:
    p = sub.add_parser("claims", help="check the papers' claims on the 2-D toy data against exact optimal transport")
    p.add_argument("--datasets", default="toy-8gaussians,toy-25gaussians,toy-swissroll",
                   help="comma-separated toy datasets (default: %(default)s)")
    p.add_argument("--losses", default="gp,clip",
                   help="gp (the toy presets' penalty), clip (WGAN's clipping), or both (default: %(default)s)")
    p.add_argument("--steps", type=int, default=2000,
                   help="generator steps per run; verdicts on training need >= 500, on the trained critic >= 1000 "
                        "(default: %(default)s)")
    p.add_argument("--checks", type=int, default=16,
                   help="measurements per run: step 0, then spaced geometrically; r(estimate, W1) needs >= 9 "
                        "(default: %(default)s)")
    p.add_argument("--points", type=int, default=2000,
                   help="real and generated points per measurement (default: %(default)s)")
    add_config_option(p, "width", default=512, help="MLP width (default: %(default)s, the paper's toy models)")
    add_config_option(p, "gp_weight", help="the penalty's lambda (default: the toy presets' 0.1, from the paper's "
                                           "toy code; its image models use 10)")
    add_config_option(p, "critic_steps_boosted", default=0,
                      help="the WGAN reference code's extra critic updates: this many on the first 25 generator "
                           "steps and every 500th (it uses 100); 0 = off")
    add_config_option(p, "device", default="auto")
    add_config_option(p, "seed", default=0, help="random seed (default: %(default)s)")
    add_config_option(p, "runs_dir", default="runs", help="where the results folder NNNNN-claims is made")


def _datasets_parser(sub) -> None:
    p = sub.add_parser("datasets", help="list the datasets and where each looks for its files")
    p.add_argument("--check", metavar="NAME", help="load NAME (train split) and report what was found")
    add_config_option(p, "data", help="with --check: the file or folder to load from")
    p.add_argument("--split", default="train", help="with --check: train or test")
    add_config_option(p, "image_size", help="with --check: resize to this side, in pixels")
    add_config_option(p, "channels", help="with --check: 1 (grayscale) or 3 (RGB)")
    add_config_option(p, "skip_bad_images", help="with --check: skip unreadable/too-small images")
    add_config_option(p, "max_image_megapixels", default=40.0,
                      help="with --check: refuse larger images before decoding them (default: 40)")


def cmd_train(args: argparse.Namespace) -> int:
    from wgan import checkpoint, distributed
    from wgan.training import train

    if args.resume and args.dry_run:
        # A dry run trains 2 steps of a new run; in a resumed run it would write into the user's run directory.
        raise UserError(f"--dry-run with --resume {args.resume}: a dry run starts a new run of 2 steps; drop "
                        "--dry-run to resume, or drop --resume to check the options on a new run")
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    resume = None
    if args.resume and args.resume != "auto":
        resume = checkpoint.open_checkpoint(Path(args.resume))
        cfg = checkpoint.resume_config(resume, overrides)
    else:
        preset = overrides.pop("preset") or "quick"
        cfg = preset_config(preset, **overrides) if preset != "custom" else TrainConfig(
            **{k: v for k, v in overrides.items() if v is not None})
        cfg = resolve_sizes(validate(cfg))
        if args.resume == "auto":
            run = checkpoint.find_resumable_run(Path(cfg.runs_dir), cfg.to_dict())
            print(f"--resume auto: resuming {run}" if run else
                  f"--resume auto: no run of these options with a checkpoint in {cfg.runs_dir}; starting a new one")
            if run is not None:
                resume = checkpoint.open_checkpoint(run)
                cfg = checkpoint.resume_config(resume, overrides)
    if resume is not None:
        check_stored_data(cfg.data, resume.run_dir, given=args.data)
    run_dir = train(absolute_paths(validate(cfg)), resume=resume, dry_run=args.dry_run, progress=not args.no_progress)
    if distributed.launched_rank() == 0:  # under torchrun, once rather than once per process
        print(f"run directory: {run_dir}")
    return 0


def absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """--data and --inception-weights stored whole (after validate has named them as given), so that the run
    resumes and evaluates from any folder."""
    whole = {name: os.path.abspath(os.path.expanduser(value)) for name in ("data", "inception_weights")
             if (value := getattr(cfg, name))}
    return dataclasses.replace(cfg, **whole)


def check_stored_data(data: str | None, run_dir: Path, given: str | None) -> None:
    """A run's stored --data that no longer exists: said of the run's config, not of an option never given."""
    if data and not given and not Path(data).expanduser().exists():
        from wgan import rundir

        raise UserError(f"{Path(run_dir) / rundir.CONFIG}: its data {data} do not exist (any more); pass --data PATH "
                        "to say where they are now")


def cmd_sample(args: argparse.Namespace) -> int:
    import torch

    from wgan.checkpoint import load_generator
    from wgan.distributed import resolve_device
    from wgan.metrics import generate_samples

    check_sampling_options(args)
    if args.walk is not None:
        return sample_walk(args)
    args.num = DEFAULT_SAMPLES if args.num is None else args.num
    if args.num < 1:
        raise UserError(f"--num {args.num}: must be >= 1")
    out = Path(args.out)
    if out.suffix not in (".png", ".npz"):
        raise UserError(f"--out {out}: use a .png (grid) or .npz (array) file name")
    device = resolve_device(args.device)
    loaded = load_generator(Path(args.run or args.weights), device, raw=args.raw_generator,
                            option="--run" if args.run else "--weights")
    generator = loaded.generator
    shape = generator.shape
    _check_sample_count(args.num, out, shape)
    labels = None
    if shape.conditional:
        label = None if args.label is None else _class_number(args.label, loaded.class_names)
        labels = torch.full((args.num,), label) if label is not None else None  # None: every class in turn
    elif args.label is not None:
        raise UserError("--label: this generator is not class-conditional")
    if shape.point_dim and out.suffix != ".npz":
        raise UserError("--out: point data (toy 2-D) can only be written as .npz")
    with writing("--out", out):  # before the sampling, which can take minutes
        out.parent.mkdir(parents=True, exist_ok=True)
    samples = generate_samples(generator, args.num, device=device, seed=args.seed, batch_size=1024, labels=labels,
                               truncation=args.truncation)
    with writing("--out", out):
        _write_samples(out, samples, shape, args)
    print(f"wrote {args.num} samples to {out}")
    return 0


MAX_GRID_IMAGES = 10_000  # a 100 x 100 grid: more is no longer a picture anyone looks at


def _check_sample_count(num: int, out: Path, shape) -> None:
    """Sample counts that cannot be held or drawn are refused before sampling, with the memory they need."""
    from wgan.metrics.samples import samples_memory_problem

    problem = samples_memory_problem(num, shape)
    if problem:
        raise UserError(f"--num {num}: {problem}; write fewer (several files, with other --seed values)")
    if out.suffix == ".png" and num > MAX_GRID_IMAGES:
        raise UserError(f"--num {num}: a grid of more than {MAX_GRID_IMAGES:,} images; write them as .npz")


def _class_number(text: str, class_names: list[str]) -> int:
    """--label as a class number: a class name in any case (Sneaker, a), or the class number itself."""
    from wgan.classes import class_index

    try:
        return class_index(text, class_names)
    except ValueError as exc:
        raise UserError(f"--label {text}: {exc}") from None


def check_sampling_options(args: argparse.Namespace) -> None:
    """--truncation and the walk's options, before any generator is loaded or anything is written."""
    if args.truncation is not None and not args.truncation > 0:  # NaN too
        raise UserError(f"--truncation {args.truncation}: must be a number > 0 (noise coordinates are kept within "
                        "[-PSI, PSI]; e.g. 0.7)")
    out = Path(args.out)
    if args.walk is None:
        given = [f for f, v in (("--frames", args.frames), ("--frame-ms", args.frame_ms)) if v is not None]
        if given:
            raise UserError(f"{given[0]}: only for a latent walk; add --walk N (its number of points)")
        if out.suffix.lower() in (".gif", ".mp4"):
            raise UserError(f"--out {out}: an animation is a latent walk; add --walk N (its number of points), or "
                            "write samples as .png or .npz")
        return
    from wgan.animation import animation_problem

    args.frames = DEFAULT_WALK_FRAMES if args.frames is None else args.frames
    args.frame_ms = DEFAULT_FRAME_MS if args.frame_ms is None else args.frame_ms
    least_values = (("--walk", args.walk, 2), ("--frames", args.frames, 1), ("--frame-ms", args.frame_ms, 10),
                    ("--num", args.num, 1))
    for name, value, least in least_values:
        if value is not None and value < least:
            why = " (a walk loops through at least 2 points)" if name == "--walk" else ""
            raise UserError(f"{name} {value}: must be >= {least}{why}")
    problem = animation_problem(out)
    if problem:
        raise UserError(f"--out {out}: {problem}")


def sample_walk(args: argparse.Namespace) -> int:
    """`wgan sample --walk N`: a GIF or MP4 of latent walks (wgan.walks), checked by check_sampling_options."""
    from wgan.animation import write_animation
    from wgan.checkpoint import load_generator
    from wgan.distributed import resolve_device
    from wgan.walks import grid_frames, render_walk

    device = resolve_device(args.device)
    out = Path(args.out)
    loaded = load_generator(Path(args.run or args.weights), device, raw=args.raw_generator,
                            option="--run" if args.run else "--weights")
    shape = loaded.generator.shape
    if shape.point_dim:
        raise UserError("--walk: this generator makes 2-D points; a latent walk is a sequence of images")
    if args.label is not None and not shape.conditional:
        raise UserError("--label: this generator is not class-conditional")
    label = None if args.label is None else _class_number(args.label, loaded.class_names)
    every_class = shape.conditional and label is None
    num = args.num or (DEFAULT_WALK_ROWS if every_class else DEFAULT_WALKS)
    images = args.walk * args.frames * num * (shape.num_classes if every_class else 1)
    _check_walk_size(images, shape)
    with writing("--out", out):  # before the rendering, which can take minutes
        out.parent.mkdir(parents=True, exist_ok=True)
    walk = render_walk(loaded.generator, num_walks=num, num_points=args.walk, frames_per_segment=args.frames,
                       seed=args.seed, truncation=args.truncation, label=label, device=device)
    try:
        with writing("--out", out):
            write_animation(out, grid_frames(walk).numpy(), args.frame_ms)
    except RuntimeError as exc:  # ffmpeg's own failures reach us as RuntimeErrors from imageio
        raise UserError(f"--out {out}: could not write the walk ({first_line(exc)}); try a .gif") from None
    rows = f"{num} walks, each in every class" if every_class else f"{num} walk{'s' * (num > 1)}"
    print(f"wrote a latent walk to {out}: {walk.num_frames} frames ({args.walk} points x {args.frames}), {rows}")
    return 0


def _check_walk_size(images: int, shape) -> None:
    """A walk whose frames cannot be held is refused before rendering, with what it needs."""
    from wgan.walks import walk_memory_problem

    problem = walk_memory_problem(images, shape)
    if problem:
        raise UserError(f"--walk/--frames/--num: {problem}; use fewer points, frames or walks")


def _write_samples(out: Path, samples, shape, args: argparse.Namespace) -> None:
    import numpy as np

    if shape.point_dim:
        np.savez_compressed(out, points=samples.x.numpy())
    elif out.suffix == ".npz":
        arrays = {"images": samples.x.numpy()}
        if samples.requested_labels is not None:
            arrays["labels"] = samples.requested_labels.numpy()
        np.savez_compressed(out, **arrays)
    else:
        from wgan.grids import save_grid

        nrow = shape.num_classes if shape.conditional and args.label is None else max(1, int(args.num ** 0.5))
        save_grid(out, samples.x, nrow=nrow)


def cmd_export(args: argparse.Namespace) -> int:
    from wgan.checkpoint import export_run

    point, weights = export_run(Path(args.run), Path(args.out), raw=args.raw_generator)
    what = "the moving average of the generator" if weights == "ema" else "the generator"
    print(f"wrote {what} of {point.checkpoint} (step {point.step}) to {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from wgan import metrics
    from wgan.distributed import resolve_device

    if args.num < 2:
        raise UserError(f"--num {args.num}: must be >= 2")
    if _analysis_asked(args):
        return _eval_analysis(args)
    device = resolve_device(args.device)
    if args.run:
        return _eval_run(args, device)
    if not args.dataset:
        flag = "--train-classifier" if args.train_classifier else "--baselines"
        raise UserError(f"{flag} needs --dataset NAME (see `wgan datasets`)")
    if args.train_classifier:
        return _train_classifier(args, device)
    ev = metrics.Evaluator(args.metrics or [], dataset=args.dataset, data_path=args.data, image_size=args.image_size,
                           channels=args.channels, device=device, seed=args.seed,
                           inception_weights=args.inception_weights)
    points = ev.train_data().is_points
    ev.names = ev.names or metrics.default_metric_names(points=points, conditional=False)
    metrics.check_sample_count(ev.names, args.num, "--num")
    if not ev.prepare(points=points, conditional=False):
        raise UserError(f"--metrics {args.metrics}: none of them applies to {args.dataset}; see the notes above")
    for title, samples in metrics.baseline_samples(ev.train_data(), args.num, seed=args.seed).items():
        print(f"\n{title}:\n{metrics.format_table(ev.evaluate(samples))}")
    return 0


def _train_classifier(args: argparse.Namespace, device) -> int:
    from wgan import metrics
    from wgan.data import load_dataset

    epochs = 3 if args.epochs is None else args.epochs
    if epochs < 1:
        raise UserError(f"--epochs {epochs}: must be >= 1")
    load = dict(data_path=args.data, image_size=args.image_size, channels=args.channels)
    train = load_dataset(args.dataset, split="train", **load)
    test = load_dataset(args.dataset, split="test", **load)
    try:
        clf = metrics.fit_classifier(train, test, device=device, epochs=epochs, seed=args.seed, progress=True)
    except metrics.MetricUnavailable as exc:
        raise UserError(str(exc)) from None
    path = metrics.classifier_path(train)
    metrics.save_classifier(clf, path)
    print(f"{train.name}: classifier test accuracy {clf.test_accuracy:.2%} on {len(test)} test images "
          f"(trained {epochs} epochs on {len(train)} images); cached in {path}")
    return 0


def _eval_run(args: argparse.Namespace, device) -> int:
    from wgan import metrics, rundir
    from wgan.checkpoint import load_generator

    run_dir = Path(args.run)
    loaded = load_generator(run_dir, device, raw=args.raw_generator)
    generator, cfg = loaded.generator, loaded.config
    append = not args.no_append and loaded.run_dir is not None
    trainer = rundir.lock_holder(loaded.run_dir) if append else None
    if trainer is not None:  # its metrics.jsonl is the trainer's while it trains: refused before any work
        raise UserError(f"--run {run_dir}: the run is being trained (PID {trainer or 'unknown'}) and its "
                        "metrics.jsonl is the trainer's; pass --no-append to print the table only, or evaluate "
                        "once training has stopped")
    shape = generator.shape
    names = args.metrics or cfg.eval_metrics or metrics.default_metric_names(points=bool(shape.point_dim),
                                                                             conditional=shape.conditional)
    check_stored_data(cfg.data, loaded.run_dir or run_dir, given=args.data)
    metrics.check_sample_count(metrics.parse_metric_names(names), args.num, "--num")
    ev = metrics.Evaluator(metrics.parse_metric_names(names), dataset=cfg.dataset, data_path=args.data or cfg.data,
                           image_size=cfg.image_size or None, channels=cfg.channels or None, device=device,
                           seed=args.seed, inception_weights=args.inception_weights or cfg.inception_weights,
                           load_options=cfg.load_options)
    if not ev.prepare(points=bool(shape.point_dim), conditional=shape.conditional):
        raise UserError(f"--metrics {names}: none of them applies to this run; see the notes above")
    samples = metrics.generate_samples(generator, args.num, device=device, seed=args.seed)
    results = ev.evaluate(samples)
    if not results:
        raise UserError("no metric could be computed; see the notes above")
    step, run = loaded.step, loaded.run_dir
    averaged = ", the moving average of its weights" if loaded.weights == "ema" else ""
    print(f"{run_dir} (generator at step {step}{averaged}):\n{metrics.format_table(results)}")
    if append:
        values = metrics.flatten_results(results)
        if loaded.weights == "raw" and cfg.ema_halflife_kimg > 0:  # as training logs it beside the average's
            values = rundir.raw_generator_fields(values)
        record = {"step": step, **metrics.run_time_at(run, step), **values, "source": "wgan eval"}
        try:
            with rundir.RunLock(run).held("append to its metrics.jsonl"):
                rundir.append_record(run, record)
        except OSError as exc:
            raise UserError(f"could not append to {run / rundir.METRICS} ({os_reason(exc)}); the table above is "
                            "the evaluation (--no-append prints it alone)") from None
        print(f"appended to {run / rundir.METRICS}")
    return 0


# ---------------------------------------------------------------------------------------------
# wgan eval --neighbours / --truncation-sweep: what a run's samples are near, and what truncation does

TRUNCATION_SWEEP_DEFAULT = "0.25,0.5,0.75,1.0,1.5,2.0,none"
MAX_NEIGHBOUR_ROWS = 256  # samples in the neighbours picture: more is no longer a picture anyone looks at


def _eval_analysis_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--neighbours", type=int, default=None, metavar="N",
                        help="with --run: a picture (neighbours-SPACE.png in the run) of N generated samples, each "
                             "beside its 3 nearest training images; a plot of the distances of --num samples and as "
                             "many held-out test images to their nearest training image, and a verdict on "
                             "memorisation (neighbours-SPACE.json)")
    parser.add_argument("--neighbours-space", default="classifier", metavar="SPACE",
                        help="where --neighbours measures distance: classifier (the domain classifier's features) "
                             "or pixel (default: classifier)")
    parser.add_argument("--truncation-sweep", nargs="?", const=TRUNCATION_SWEEP_DEFAULT, default=None,
                        metavar="PSI,...",
                        help="with --run: FCD, class coverage, precision and recall of --num samples at each "
                             f"truncation psi (numbers > 0, or none), a table and truncation.png in the run "
                             f"(default list: {TRUNCATION_SWEEP_DEFAULT})")


def _analysis_asked(args: argparse.Namespace) -> bool:
    asked = args.neighbours is not None or args.truncation_sweep is not None
    if asked and not args.run:
        raise UserError(f"{'--neighbours' if args.neighbours is not None else '--truncation-sweep'} needs --run DIR")
    return asked


def parse_truncations(text: str) -> list[float | None]:
    """--truncation-sweep's list: numbers > 0 (latents within [-psi, psi]) or none (no truncation)."""
    values: list[float | None] = []
    for item in (t.strip() for t in text.split(",")):
        try:
            psi = None if item.lower() == "none" else float(item)
        except ValueError:
            psi = math.nan
        if psi is not None and not (math.isfinite(psi) and psi > 0):
            raise UserError(f"--truncation-sweep {text}: {item or 'an empty item'} is not a truncation; give numbers "
                            "> 0 (latents kept within [-psi, psi]) or none, comma-separated")
        values.append(psi)
    return list(dict.fromkeys(values))


def _check_neighbours_options(args: argparse.Namespace) -> None:
    if args.neighbours is None:
        return
    if not 1 <= args.neighbours <= MAX_NEIGHBOUR_ROWS:
        raise UserError(f"--neighbours {args.neighbours}: the number of samples to show, 1-{MAX_NEIGHBOUR_ROWS}")
    if args.neighbours > args.num:
        raise UserError(f"--neighbours {args.neighbours}: more than the --num {args.num} samples drawn")
    from wgan.metrics.neighbours import SPACES

    if args.neighbours_space not in SPACES:
        raise UserError(f"--neighbours-space {args.neighbours_space}: choose {' or '.join(SPACES)}")


def _eval_analysis(args: argparse.Namespace) -> int:
    """Everything checked and loaded (data, classifier) before the first sample is drawn or file written."""
    from wgan import metrics
    from wgan.checkpoint import load_generator
    from wgan.distributed import resolve_device
    from wgan.metrics.truncation import SWEEP_METRICS

    truncations = None if args.truncation_sweep is None else parse_truncations(args.truncation_sweep)
    _check_neighbours_options(args)
    if truncations:
        metrics.check_sample_count(SWEEP_METRICS, args.num, "--num")
    device = resolve_device(args.device)
    loaded = load_generator(Path(args.run), device, raw=args.raw_generator)
    if loaded.run_dir is None:
        raise UserError(f"--run {args.run}: not in a run directory, where the pictures go; pass the run's folder")
    cfg, shape = loaded.config, loaded.generator.shape
    if args.neighbours is not None and shape.point_dim:
        raise UserError(f"--neighbours: {cfg.dataset} is drawn at random, not read from disk: it has no training "
                        "images to be near; nearest neighbours are for image datasets")
    check_stored_data(cfg.data, loaded.run_dir, given=args.data)
    ev = metrics.Evaluator(list(SWEEP_METRICS) if truncations else [], dataset=cfg.dataset,
                           data_path=args.data or cfg.data, image_size=cfg.image_size or None,
                           channels=cfg.channels or None, device=device, seed=args.seed,
                           load_options=cfg.load_options)
    ev.train_data(), ev.test_data()  # a dataset missing from disk stops here, before anything is drawn
    if truncations and not ev.prepare(points=bool(shape.point_dim), conditional=shape.conditional):
        raise UserError("--truncation-sweep: none of its metrics applies to this run; see the notes above")
    if args.neighbours is not None:
        from wgan.metrics.neighbours import prepare_space

        prepare_space(ev, args.neighbours_space)  # the classifier, trained now if none is cached
    if args.neighbours is not None:
        _eval_neighbours(args, ev, loaded, device)
    if truncations:
        _eval_truncation_sweep(args, ev, loaded, truncations, device)
    return _rebuild_report(loaded.run_dir)


def _eval_neighbours(args: argparse.Namespace, ev, loaded, device) -> None:
    from wgan import metrics
    from wgan.metrics.neighbours import find_neighbours, write_neighbours

    samples = metrics.generate_samples(loaded.generator, args.num, device=device, seed=args.seed)
    found = find_neighbours(ev, samples, space=args.neighbours_space, shown=args.neighbours)
    files = write_neighbours(loaded.run_dir, found, loaded.step)
    print(f"{args.run} (generator at step {loaded.step}), nearest training images in {args.neighbours_space} space, "
          f"{found.check.samples} samples, {found.check.held_out} held-out test images:\n{found.check.verdict}")
    for path in files.values():
        print(f"wrote {path}")


def _eval_truncation_sweep(args: argparse.Namespace, ev, loaded, truncations, device) -> None:
    from wgan.metrics.truncation import format_sweep, sweep, write_sweep

    rows = sweep(loaded.generator, ev, truncations, num=args.num, device=device, seed=args.seed)
    print(f"{args.run} (generator at step {loaded.step}), truncation sweep, {args.num} samples per psi, against "
          f"the {ev.test_description()}:\n{format_sweep(rows)}")
    for path in write_sweep(loaded.run_dir, rows, num=args.num, step=loaded.step).values():
        print(f"wrote {path}")


def _rebuild_report(run_dir: Path) -> int:
    from wgan.report import build_report

    try:
        print(f"wrote {build_report(run_dir)['html']}")
    except OSError as exc:
        raise UserError(f"--run {run_dir}: cannot write its report ({os_reason(exc)})") from None
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from wgan import rundir
    from wgan.report import build_report, missing_losses_note

    run_dir = Path(args.run)
    if not rundir.is_run_dir(run_dir):
        raise UserError(f"--run {run_dir}: no {rundir.CONFIG} there; pass a run directory (runs/NNNNN-name)")
    notes: list[str] = []
    try:
        written = build_report(run_dir, notes)
    except OSError as exc:
        where = exc.filename or run_dir
        raise UserError(f"--run {run_dir}: cannot write the report's files there ({where}: {os_reason(exc)}); make "
                        "room, or copy the run to a writable folder and report on the copy") from None
    for path in written.values():
        print(f"wrote {path}")
    if "losses" not in written:  # say why, reading the log again only then
        print(f"note: {missing_losses_note(run_dir, rundir.read_records(run_dir))}")
    for note in notes:
        print(f"note: {note}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    wide = max(map(len, PRESETS))
    print(f"{'preset':<{wide}} {'dataset':<15} {'model':<8} {'loss':<5} {'optimizer':<9} {'lr (C/G)':<15} "
          f"{'n_critic':<8} {'batch':<6} {'steps':<7} description")
    for name, (description, _) in PRESETS.items():
        c = preset_config(name)
        reg = f"c={c.clip_value}" if c.loss == "clip" else f"lambda={c.gp_weight}"
        lr = f"{c.lr_critic:g}/{c.lr_generator:g}"
        print(f"{name:<{wide}} {c.dataset:<15} {c.model:<8} {c.loss:<5} {c.optimizer:<9} "
              f"{lr:<15} {c.critic_steps:<8} {c.batch_size:<6} {c.steps:<7} "
              f"{description} ({reg}{', conditional' if c.conditional else ''})")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from wgan.data import DATASETS, load_dataset

    if args.check:
        data = load_dataset(args.check, split=args.split, data_path=args.data, image_size=args.image_size,
                            channels=args.channels, skip_bad_images=args.skip_bad_images,
                            max_image_megapixels=args.max_image_megapixels)
        classes = f"{data.num_classes} classes" if data.num_classes else "no labels"
        print(f"{args.check} ({args.split}): {len(data)} samples of shape {tuple(data.sample_shape)} ({data.x.dtype}), "
              f"{classes}, from {data.source}")
        for note in data.notes:
            print(f"  note: {note}")
        return 0
    print(f"{'dataset':<16} {'shape':<12} {'classes':<8} description")
    for name, entry in DATASETS.items():
        shape = f"{entry.channels}x{entry.image_size}x{entry.image_size}" if entry.image_size else "2-D points"
        classes = "folders" if entry.num_classes < 0 else (entry.num_classes or "-")
        print(f"{name:<16} {shape:<12} {classes:<8} {entry.description}")
        if entry.files:
            print(f"{'':<16} {'':<12} {'':<8} files: {entry.files}")
    print("\nFiles are looked for in --data PATH alone when it is given, else in $WGAN_DATA[/NAME], "
          f"{user_cache_dir() / 'NAME'}, /usr/share/datasets/NAME; then torchvision downloads them (network; "
          "not with $WGAN_OFFLINE) into --data PATH or the user cache.\nImage datasets are resized to the model's --image-size and converted "
          "to its --channels (grayscale <-> RGB).")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from wgan.bench import print_table, run_bench

    if not (math.isfinite(args.seconds) and args.seconds > 0):
        raise UserError(f"--seconds {args.seconds}: must be a finite number > 0")
    if args.batch is not None and args.batch < 1:
        raise UserError(f"--batch {args.batch}: must be >= 1")
    results, cfg, device = run_bench(args.preset, batch_size=args.batch, seconds=args.seconds, device_name=args.device,
                                     precision=args.precision, data_path=args.data)
    print_table(results, cfg, device)
    if args.json:
        Path(args.json).write_text(json.dumps({"preset": cfg.preset, "batch_size": cfg.batch_size,
                                               "device": str(device), "results": results}, indent=2))
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
    from wgan.claims import run_claims, verdict_line

    split = lambda text: [n.strip() for n in text.split(",") if n.strip()]
    out, verdicts = run_claims(datasets=split(args.datasets), loss_names=split(args.losses), steps=args.steps,
                               checks=args.checks, points=args.points, width=args.width, device=args.device,
                               seed=args.seed, runs_dir=Path(args.runs_dir), gp_weight=args.gp_weight,
                               critic_steps_boosted=args.critic_steps_boosted)
    for v in verdicts:
        print(verdict_line(v))
    print(f"results: {out}/claims.md, claims.png, claims.json")
    return 0


COMMANDS = {"train": cmd_train, "claims": cmd_claims, "bench": cmd_bench, "sample": cmd_sample, "export": cmd_export, "eval": cmd_eval,
            "report": cmd_report, "presets": cmd_presets,
            "datasets": cmd_datasets}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    def report(text: str) -> None:
        report_error(f"wgan {args.command}: {text}")  # under torchrun: once, not once per process

    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        report(f"error: {exc}")
        return 2
    except TrainingDiverged as exc:
        report(f"training diverged: {exc}")
        return 3
    except Stopped as exc:  # its checkpoint is written and the stop line printed; exit as the signal asks
        # Under torchrun a worker's non-zero exit is a failure that it reports with a traceback per process:
        # there the agreed, resumable stop exits 0 (the stop line and log.txt say what happened).
        return 0 if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 128 + exc.signum
    except KeyboardInterrupt:
        report("interrupted")
        return 130
    except BrokenPipeError:  # `wgan presets | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
