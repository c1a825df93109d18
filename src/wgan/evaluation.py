"""Measuring a trained generator, as `wgan eval` and wgan.evaluate do: the metrics of a run (appended to its
metrics.jsonl), the baselines of a dataset, its domain classifier, and the analyses of a run (nearest training
images, the truncation sweep). What it finds is said through `EvalRequest.say` (print on the command line).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import torch

from wgan import exported, metrics, rundir
from wgan.exported import LoadedGenerator
from wgan.data import load_dataset
from wgan.distributed import memory_bytes, resolve_device
from wgan.errors import UserError, os_reason
from wgan.metrics.neighbours import SPACES, find_neighbours, prepare_space, write_neighbours
from wgan.metrics.truncation import SWEEP_METRICS, format_sweep, sweep, write_sweep
from wgan.run_report import build_report
from wgan.sample_rules import check_count, check_sample_memory, check_seed

MAX_NEIGHBOUR_ROWS = 256  # samples in the neighbours picture: more is no longer a picture anyone looks at


@dataclass
class EvalRequest:
    """What to measure, as `wgan eval`'s options say it (None: not given)."""

    run: str | None = None
    train_classifier: bool = False
    baselines: bool = False
    metrics: str | list[str] | None = None
    num: int = 10000
    dataset: str | None = None
    data: str | None = None
    image_size: int | None = None
    channels: int | None = None
    epochs: int | None = None
    inception_weights: str | None = None
    seed: int = 0
    device: str = "auto"
    no_append: bool = False
    raw_generator: bool = False
    neighbours: int | None = None
    neighbours_space: str = "classifier"
    truncation_sweep: str | None = None
    say: Callable[[str], None] = print
    progress: bool = True  # a progress bar while the samples are drawn


def check_request(req: EvalRequest) -> None:
    """The rules on the numbers of any evaluation, before anything is loaded: --num a whole number of at least 2,
    --seed as `wgan sample` and training take it."""
    check_count(req.num, "--num", 2)
    check_seed(req.seed, "--seed")


def check_samples_fit(num: int, sample_shape, latent_dim: int = 0) -> None:
    """--num samples that this machine cannot hold are refused before a first one is drawn, with what they need."""
    check_sample_memory(num, SimpleNamespace(sample_shape=tuple(sample_shape), latent_dim=latent_dim), "--num",
                        memory_bytes(torch.device("cpu")))


def evaluate_command(req: EvalRequest) -> None:
    """`wgan eval`: the analyses of a run, the metrics of a run, the domain classifier or the baselines."""
    check_request(req)
    if _analysis_asked(req):
        return analyse_run(req)
    device = resolve_device(req.device)
    if req.run:
        evaluate_run(req, device)
        return None
    if not req.dataset:
        flag = "--train-classifier" if req.train_classifier else "--baselines"
        raise UserError(f"{flag} needs --dataset NAME (see `wgan datasets`)")
    if req.train_classifier:
        return train_classifier(req, device)
    return evaluate_baselines(req, device)


def evaluate_baselines(req: EvalRequest, device) -> None:
    """--num training images and as many uniform-noise images (and images of one class) against the test
    split: the floor and the ceiling of each metric."""
    ev = metrics.Evaluator(req.metrics or [], dataset=req.dataset, data_path=req.data, image_size=req.image_size,
                           channels=req.channels, device=device, seed=req.seed,
                           inception_weights=req.inception_weights, note=req.say)
    points = ev.train_data().is_points
    check_samples_fit(req.num, ev.train_data().sample_shape)
    ev.names = ev.names or metrics.default_metric_names(points=points, conditional=False)
    metrics.check_sample_count(ev.names, req.num, "--num")
    if not ev.prepare(points=points, conditional=False):
        raise UserError(f"--metrics {req.metrics}: none of them applies to {req.dataset}; see the notes above")
    for title, samples in metrics.baseline_samples(ev.train_data(), req.num, seed=req.seed).items():
        req.say(f"\n{title}:\n{metrics.format_table(ev.evaluate(samples))}")


def train_classifier(req: EvalRequest, device) -> None:
    """Train and cache the domain classifier of --dataset, FCD's feature extractor."""

    epochs = 3 if req.epochs is None else req.epochs
    if epochs < 1:
        raise UserError(f"--epochs {epochs}: must be >= 1")
    load = dict(data_path=req.data, image_size=req.image_size, channels=req.channels)
    train = load_dataset(req.dataset, split="train", **load)
    test = load_dataset(req.dataset, split="test", **load)
    try:
        clf = metrics.fit_classifier(train, test, device=device, epochs=epochs, seed=req.seed, progress=True)
    except metrics.MetricUnavailable as exc:
        raise UserError(str(exc)) from None
    path = metrics.classifier_path(train)
    metrics.save_classifier(clf, path)
    req.say(f"{train.name}: classifier test accuracy {clf.test_accuracy:.2%} on {len(test)} test images "
            f"(trained {epochs} epochs on {len(train)} images); cached in {path}")


def evaluate_run(req: EvalRequest, device, loaded: LoadedGenerator | None = None) -> dict:
    """The metrics of the generator of run `req.run` (or of `loaded`), printed as a table and, unless
    `req.no_append`, appended to the run's metrics.jsonl; returns them as that record's fields. `req`'s numbers
    are checked at the door it came through (evaluate_command, wgan.evaluate)."""
    loaded = loaded or exported.load_generator(Path(req.run), device, raw=req.raw_generator)
    run_dir = Path(req.run) if req.run else loaded.run_dir or Path(rundir.GENERATOR)  # what the table names
    generator, cfg = loaded.generator, loaded.config
    check_samples_fit(req.num, generator.shape.sample_shape, generator.shape.latent_dim)
    append = not req.no_append and loaded.run_dir is not None
    if append:
        _check_not_training(loaded.run_dir, run_dir)
    shape = generator.shape
    names = req.metrics or cfg.eval_metrics or metrics.default_metric_names(points=bool(shape.point_dim),
                                                                             conditional=shape.conditional)
    rundir.check_stored_data(cfg.data, loaded.run_dir or run_dir, given=req.data)
    metrics.check_sample_count(metrics.parse_metric_names(names), req.num, "--num")
    ev = metrics.evaluator_for(cfg, metrics.parse_metric_names(names), device=device, note=req.say, seed=req.seed,
                               data_path=req.data, inception_weights=req.inception_weights)
    if not ev.prepare(points=bool(shape.point_dim), conditional=shape.conditional):
        raise UserError(f"--metrics {names}: none of them applies to this run; see the notes above")
    samples = metrics.generate_samples(generator, req.num, device=device, seed=req.seed, progress=req.progress)
    results = ev.evaluate(samples)
    if not results:
        raise UserError("no metric could be computed; see the notes above")
    averaged = ", the moving average of its weights" if loaded.weights == "ema" else ""
    req.say(f"{run_dir} (generator at step {loaded.step}{averaged}):\n{metrics.format_table(results)}")
    values = metrics.flatten_results(results)
    if append:
        _append_evaluation(req, loaded, values)
    return values


def _check_not_training(run: Path, given: Path) -> None:
    """A run's metrics.jsonl is its trainer's while it trains: appending is refused before any work."""
    trainer = rundir.lock_holder(run)
    if trainer is not None:
        raise UserError(f"--run {given}: the run is being trained (PID {trainer or 'unknown'}) and its "
                        "metrics.jsonl is the trainer's; pass --no-append to print the table only, or evaluate "
                        "once training has stopped")


def _append_evaluation(req: EvalRequest, loaded: LoadedGenerator, values: dict) -> None:
    step, run = loaded.step, loaded.run_dir
    if loaded.weights == "raw" and loaded.config.ema_halflife_kimg > 0:  # as training logs it beside the average's
        values = rundir.raw_generator_fields(values)
    record = {"step": step, **metrics.run_time_at(run, step), **values, "source": "wgan eval"}
    try:
        with rundir.RunLock(run).held("append to its metrics.jsonl"):
            rundir.append_record(run, record)
    except OSError as exc:
        raise UserError(f"could not append to {run / rundir.METRICS} ({os_reason(exc)}); the table above is "
                        "the evaluation (--no-append prints it alone)") from None
    req.say(f"appended to {run / rundir.METRICS}")


# ---------------------------------------------------------------------------------------------
# wgan eval --neighbours / --truncation-sweep: what a run's samples are near, and what truncation does


def _analysis_asked(req: EvalRequest) -> bool:
    asked = req.neighbours is not None or req.truncation_sweep is not None
    if asked and not req.run:
        raise UserError(f"{'--neighbours' if req.neighbours is not None else '--truncation-sweep'} needs --run DIR")
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


def _check_neighbours_options(req: EvalRequest) -> None:
    if req.neighbours is None:
        return
    if not 1 <= req.neighbours <= MAX_NEIGHBOUR_ROWS:
        raise UserError(f"--neighbours {req.neighbours}: the number of samples to show, 1-{MAX_NEIGHBOUR_ROWS}")
    if req.neighbours > req.num:
        raise UserError(f"--neighbours {req.neighbours}: more than the --num {req.num} samples drawn")
    if req.neighbours_space not in SPACES:
        raise UserError(f"--neighbours-space {req.neighbours_space}: choose {' or '.join(SPACES)}")


def analyse_run(req: EvalRequest) -> None:
    """--neighbours and --truncation-sweep of run `req.run`: their pictures and records in the run, and its
    report rebuilt. Everything checked and loaded (data, classifier) before the first sample is drawn or
    file written."""
    truncations = None if req.truncation_sweep is None else parse_truncations(req.truncation_sweep)
    _check_neighbours_options(req)
    if truncations:
        metrics.check_sample_count(SWEEP_METRICS, req.num, "--num")
    device = resolve_device(req.device)
    loaded = exported.load_generator(Path(req.run), device, raw=req.raw_generator)
    if loaded.run_dir is None:
        raise UserError(f"--run {req.run}: not in a run directory, where the pictures go; pass the run's folder")
    cfg, shape = loaded.config, loaded.generator.shape
    check_samples_fit(req.num, shape.sample_shape, shape.latent_dim)
    if req.neighbours is not None and shape.point_dim:
        raise UserError(f"--neighbours: {cfg.dataset} is drawn at random, not read from disk: it has no training "
                        "images to be near; nearest neighbours are for image datasets")
    rundir.check_stored_data(cfg.data, loaded.run_dir, given=req.data)
    ev = metrics.evaluator_for(cfg, list(SWEEP_METRICS) if truncations else [], device=device, note=req.say,
                               seed=req.seed, data_path=req.data, inception_weights=req.inception_weights)
    ev.train_data(), ev.test_data()  # a dataset missing from disk stops here, before anything is drawn
    if truncations and not ev.prepare(points=bool(shape.point_dim), conditional=shape.conditional):
        raise UserError("--truncation-sweep: none of its metrics applies to this run; see the notes above")
    if req.neighbours is not None:
        prepare_space(ev, req.neighbours_space)  # the classifier, trained now if none is cached
        _eval_neighbours(req, ev, loaded, device)
    if truncations:
        _eval_truncation_sweep(req, ev, loaded, truncations, device)
    _rebuild_report(req, loaded.run_dir)


def _eval_neighbours(req: EvalRequest, ev, loaded, device) -> None:
    samples = metrics.generate_samples(loaded.generator, req.num, device=device, seed=req.seed, progress=req.progress)
    found = find_neighbours(ev, samples, space=req.neighbours_space, shown=req.neighbours)
    files = write_neighbours(loaded.run_dir, found, loaded.step)
    req.say(f"{req.run} (generator at step {loaded.step}), nearest training images in {req.neighbours_space} space, "
            f"{found.check.samples} samples, {found.check.held_out} held-out test images:\n{found.check.verdict}")
    for path in files.values():
        req.say(f"wrote {path}")


def _eval_truncation_sweep(req: EvalRequest, ev, loaded, truncations, device) -> None:
    rows = sweep(loaded.generator, ev, truncations, num=req.num, device=device, seed=req.seed)
    req.say(f"{req.run} (generator at step {loaded.step}), truncation sweep, {req.num} samples per psi, against "
            f"the {ev.test_description()}:\n{format_sweep(rows)}")
    for path in write_sweep(loaded.run_dir, rows, num=req.num, step=loaded.step).values():
        req.say(f"wrote {path}")


def _rebuild_report(req: EvalRequest, run_dir: Path) -> None:
    try:
        req.say(f"wrote {build_report(run_dir)['html']}")
    except OSError as exc:
        raise UserError(f"--run {run_dir}: cannot write its report ({os_reason(exc)})") from None


