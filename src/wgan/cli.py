"""The `wgan` command, a thin door into the library: each command parses its options, calls one library
function (the same the Python API calls, wgan.api) and prints its result. The rules on the options live
in the library, which raises UserError; here each becomes one line.

Every problem the user can cause ends as one line on stderr and exit code 2; a run whose losses
became NaN or infinite ends as one line and exit code 3.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path

# Only what imports no numerical library: `wgan --help` must answer at once. The commands import the rest.
from wgan import __version__
from wgan import claim_options as claims
from wgan.choices import one_of
from wgan.config import PRECISIONS, TrainConfig, flag, preset_config
from wgan.errors import Stopped, TrainingDiverged, UserError, report_error
from wgan.metric_rules import METRIC_SPECS
from wgan.shipped import shipped_names
from wgan.sample_rules import DEFAULT_FRAME_MS, DEFAULT_SAMPLES, DEFAULT_WALK_FRAMES, DEFAULT_WALK_ROWS, DEFAULT_WALKS


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
                _bench_parser, _claims_parser, _datasets_parser, _cache_parser):
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
                        "options that no live process trains, or a new run if there is none. On resume only --steps, --device, --fast, "
                        "--precision, --data and --inception-weights may change")
    p.add_argument("--dry-run", action="store_true", help="build everything and run 2 steps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _sample_parser(sub) -> None:
    p = sub.add_parser("sample", help="sample from a trained generator")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", metavar="DIR|FILE", help="run directory (its newest checkpoint) or one checkpoint")
    src.add_argument("--weights", metavar="FILE", help="generator .safetensors from `wgan export`, or a shipped "
                     f"generator by name ({shipped_names()})")
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
    p.add_argument("--metrics", default=None, help=f"comma-separated, from: {', '.join(METRIC_SPECS)} (default for "
                   "--run: the run's --eval-metrics, else the ones that apply)")
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


TRUNCATION_SWEEP_DEFAULT = "0.25,0.5,0.75,1.0,1.5,2.0,none"


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
    add_config_option(p, "precision", help=f"fast variant's precision: {one_of(PRECISIONS)} (default: the preset's); "
                      "bf16 is timed beside it")
    add_config_option(p, "data", help="dataset files (else the usual search; synthetic if absent)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")


def _claims_parser(sub) -> None:
    p = sub.add_parser("claims", help="check the papers' claims on the 2-D toy data against exact optimal transport")
    p.add_argument("--datasets", default=",".join(claims.DEFAULT_DATASETS),
                   help=f"comma-separated toy datasets, any of {', '.join(claims.TOY_DATASETS)} (default: %(default)s)")
    p.add_argument("--losses", default=",".join(claims.DEFAULT_LOSSES),
                   help=f"comma-separated, any of {', '.join(f'{n} ({what})' for n, what in claims.LOSS_LABELS.items())}: "
                        "the penalty at the toy presets' settings, clipping at WGAN's (default: %(default)s)")
    p.add_argument("--steps", type=int, default=claims.DEFAULT_STEPS,
                   help=f"generator steps per run; verdicts on training need >= {claims.MIN_STEPS_TRAINING}, on the "
                        f"trained critic >= {claims.MIN_STEPS_TRAINED} (default: %(default)s)")
    p.add_argument("--checks", type=int, default=claims.DEFAULT_CHECKS,
                   help="measurements per run: step 0, then spaced geometrically; r(estimate, W1) needs >= "
                        f"{claims.MIN_TRACKING_CHECKS + 1} (default: %(default)s)")
    p.add_argument("--points", type=int, default=claims.DEFAULT_POINTS,
                   help="real and generated points per measurement (default: %(default)s)")
    add_config_option(p, "width", default=claims.DEFAULT_WIDTH,
                      help="MLP width (default: %(default)s, the paper's toy models)")
    add_config_option(p, "gp_weight", help="the penalty's lambda (default: the toy presets' 0.1, from the paper's "
                                           "toy code; its image models use 10)")
    add_config_option(p, "critic_steps_boosted", default=0,
                      help="the WGAN reference code's extra critic updates: this many on the first 25 generator "
                           "steps and every 500th (it uses 100); 0 = off")
    add_config_option(p, "device", default="auto")
    add_config_option(p, "seed", default=claims.DEFAULT_SEED, help="random seed (default: %(default)s)")
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


def _cache_parser(sub) -> None:
    p = sub.add_parser("cache", help="list what the decoded-data and classifier caches hold (source, size, last "
                                     "used); clear or shrink them")
    p.add_argument("--clear", action="store_true", help="remove every entry that no live process maps")
    p.add_argument("--keep-gb", type=float, default=None, metavar="GB",
                   help="remove the least recently used entries until the cache holds at most GB (10^9 bytes); "
                        "entries in use stay")


def cmd_train(args: argparse.Namespace) -> int:
    from wgan.distributed import launched_rank
    from wgan.launch import start_training

    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    run_dir = start_training(options, resume=args.resume, dry_run=args.dry_run, progress=not args.no_progress)
    if launched_rank() == 0:  # under torchrun, once rather than once per process
        print(f"run directory: {run_dir}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from wgan.sampling import sample_file

    print(sample_file(Path(args.run or args.weights), Path(args.out), walk=args.walk, num=args.num, label=args.label,
                      truncation=args.truncation, seed=args.seed, frames=args.frames, frame_ms=args.frame_ms,
                      device=args.device, raw=args.raw_generator, option="--run" if args.run else "--weights"))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from wgan.exported import export_run

    point, weights = export_run(Path(args.run), Path(args.out), raw=args.raw_generator)
    what = "the moving average of the generator" if weights == "ema" else "the generator"
    print(f"wrote {what} of {point.checkpoint} (step {point.step}) to {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from wgan.evaluation import EvalRequest, evaluate_command

    fields = {f.name for f in dataclasses.fields(EvalRequest)} - {"say", "progress"}
    evaluate_command(EvalRequest(**{name: getattr(args, name) for name in fields}))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from wgan.run_report import report_run

    report_run(Path(args.run))
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from wgan.listings import presets_table

    print(presets_table())
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from wgan.listings import check_dataset, datasets_table

    print(check_dataset(args.check, split=args.split, data_path=args.data, image_size=args.image_size,
                        channels=args.channels, skip_bad_images=args.skip_bad_images,
                        max_image_megapixels=args.max_image_megapixels) if args.check else datasets_table())
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from wgan.caches import CacheRequest, cache_command

    print(cache_command(CacheRequest(clear=args.clear, keep_gb=args.keep_gb)))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from wgan.bench import print_table, run_bench

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


COMMANDS = {"train": cmd_train, "claims": cmd_claims, "bench": cmd_bench, "sample": cmd_sample, "export": cmd_export,
            "eval": cmd_eval, "report": cmd_report, "presets": cmd_presets, "datasets": cmd_datasets, "cache": cmd_cache}


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
        # Under torchrun too: a job that stopped before its --steps did not finish, and a script that waits
        # on it must see so. Its restart (--max-restarts) does not resume a stopped run (launch.py).
        return 128 + exc.signum
    except KeyboardInterrupt:
        report("interrupted")
        return 130
    except BrokenPipeError:  # `wgan presets | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
