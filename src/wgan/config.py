"""Training configuration: one dataclass whose field names carry their units, the presets, and the
validation that runs before anything else does."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from wgan.choices import (
    CONDITIONINGS, CRITIC_NORMS, GENERATOR_NORMS, LOSSES, default_conditionings, described, model_list, one_of)
from wgan.errors import UserError, file_in_the_way, first_line
from wgan.files import read_small_text
from wgan.metric_rules import check_sample_count, parse_metric_names

CONFIG_LIMIT_BYTES = 1 << 20  # a config (config.json) is a few kB: more is not one wgan wrote, and is never read

# Cheap names of what other modules implement, so that validating them imports no torch (a test keeps
# them in step with the implementations). The losses, models and normalisations are wgan.choices'.
LR_DECAYS = ("none", "linear")
AUGMENTATIONS = ("color", "translation", "cutout")
OPTIMIZERS = ("adam", "rmsprop")
PRECISIONS = ("auto", "fp32", "tf32", "bf16")
TRAIN_CLOCKS = ("wall", "cpu")


def flag(name: str) -> str:
    """The command-line option of a config field: lr_critic -> --lr-critic."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Range:
    """The values an option accepts, and how its refusal says so (after "--option VALUE: ")."""

    accepts: Callable[[Any], bool]
    refusal: str


COUNT = Range(lambda v: isinstance(v, int) and v >= 1, "must be a whole number >= 1")
EVERY = Range(lambda v: isinstance(v, int) and v >= 0, "must be >= 0 (0 turns it off)")
LEARNING_RATE = Range(lambda v: 0 < v < 1, "a learning rate must be in (0, 1)")
BETA = Range(lambda v: 0 <= v < 1, "must be in [0, 1)")
POSITIVE = Range(lambda v: 0 < v < math.inf, "must be a finite number > 0")
NON_NEGATIVE = Range(lambda v: 0 <= v < math.inf, "must be a finite number >= 0")
PIXELS = Range(lambda v: isinstance(v, int) and v >= 0, "must be a whole number of pixels (0 keeps the dataset's size)")
CHANNELS = Range(lambda v: v in (0, 1, 3), "use 1 (grayscale) or 3 (RGB)")
SEED = Range(lambda v: isinstance(v, int) and 0 <= v <= 2**62, "must be a whole number from 0 to 2**62")
GRID = Range(lambda v: isinstance(v, int) and 1 <= v <= 1024, "must be a whole number from 1 to 1024 (a 32 x 32 grid)")
PATH = Range(lambda v: v is None or v.strip() != "", "an empty path; leave the option out instead")
FRACTION = Range(lambda v: 0 < v <= 1, "must be a fraction in (0, 1]")
COUNT_OR_SAME = Range(lambda v: isinstance(v, int) and v >= 0, "must be a whole number >= 0 (0: the same as --batch-size)")


def option(default, help: str, range: Range | None = None):
    """A TrainConfig field: its default, its --help text and the values it accepts, declared once."""
    return field(default=default, metadata={"help": help, "range": range})


@dataclass
class TrainConfig:
    # What to reproduce
    preset: str = option("custom", "start from a preset (see `wgan presets`); other options override it")
    # Data
    dataset: str = option("fashion-mnist", "dataset name (see `wgan datasets`)")
    data: str | None = option(None, "file or folder holding the dataset, the only place searched when given (without "
                              "it: $WGAN_DATA, the user cache, /usr/share/datasets)", PATH)
    image_size: int = option(28, "side of the square images the model makes, in pixels", PIXELS)
    channels: int = option(1, "1 (grayscale) or 3 (RGB)", CHANNELS)
    conditional: bool = option(False, "class-conditional G and critic (label embedding)")
    conditioning: str = option("auto", f"how a conditional critic sees the label: {described(CONDITIONINGS)}; auto: "
                               f"the model's own ({default_conditionings()})")
    acgan_weight_critic: float = option(1.0, "with --conditioning acgan: the critic's classification loss weight "
                                        "(the paper's 1)", NON_NEGATIVE)
    acgan_weight_generator: float = option(0.1, "with --conditioning acgan: the generator's classification loss "
                                           "weight (the paper's 0.1)", NON_NEGATIVE)
    max_image_megapixels: float = option(40.0, "image folders: refuse (or with --skip-bad-images skip) images that "
                                         "decode to more megapixels than this, before decoding them (JPEGs count at "
                                         "the size they decode to for the model)", POSITIVE)
    skip_bad_images: bool = option(False, "image folders: skip unreadable or too-small images (counted in the log) "
                                   "instead of stopping")
    # Model
    model: str = option("dcgan28", f"generator/critic pair: {model_list()} (see `wgan presets`)")
    latent_dim: int = option(128, "size of the noise vector z", COUNT)
    width: int = option(64, "base channel count (conv) or hidden units (mlp)", COUNT)
    critic_norm: str = option("none", f"normalisation in the critic: {', '.join(CRITIC_NORMS)} (batch is refused "
                              "with a penalty)")
    generator_norm: str = option("none", f"dcgan28's generator: {described(GENERATOR_NORMS)}; the other models' "
                                 "generators have theirs built in")
    # Objective
    loss: str = option("gp", f"how the critic is kept Lipschitz: {described(LOSSES)}")
    clip_value: float = option(0.01, "weight clipping bound c", POSITIVE)
    gp_weight: float = option(10.0, "penalty coefficient lambda", NON_NEGATIVE)
    penalty_target_norm: float = option(1.0, "the gradient norm the penalty pulls toward: 1 (Gulrajani et al.) or 0 "
                                        "(the zero-centred penalty of Thanh-Tung et al. 2019)", NON_NEGATIVE)
    penalty_every_steps: int = option(1, "lazy penalty: the gradient penalty on every k-th critic update only, "
                                      "weighted by k (the lazy regularisation of StyleGAN2, Karras et al. 2020); "
                                      "1: on every update", COUNT)
    penalty_batch_fraction: float = option(1.0, "the penalty on this fraction of each critic batch (its first "
                                           "images, at least one): the same expectation, estimated from fewer "
                                           "interpolates, for a fraction of the double backward", FRACTION)
    # Optimisation
    optimizer: str = option("adam", one_of(OPTIMIZERS))
    lr_critic: float = option(1e-4, "critic learning rate", LEARNING_RATE)
    lr_generator: float = option(1e-4, "generator learning rate", LEARNING_RATE)
    adam_beta1: float = option(0.5, "Adam beta1 (0.5 in the code; Algorithm 1 uses 0)", BETA)
    adam_beta2: float = option(0.9, "Adam beta2", BETA)
    batch_size: int = option(64, "images per critic/generator batch", COUNT)
    batch_size_generator: int = option(0, "images per generator batch (0: --batch-size; the WGAN-GP paper's CIFAR-10 "
                                       "ResNet uses 128 with a critic batch of 64)", COUNT_OR_SAME)
    critic_steps: int = option(5, "critic updates per generator update (n_critic)", COUNT)
    # The WGAN reference code's schedule, not in the paper's Algorithm 1: on the first
    # `boost_first_steps` generator steps and on every `boost_every_steps`-th, the critic is updated
    # `critic_steps_boosted` times instead of `critic_steps`, so its estimate starts and stays near
    # the optimal critic's. 0 turns it off (the paper); the reference code uses 100, 25 and 500.
    critic_steps_boosted: int = option(0, "critic updates on boosted generator steps, as the WGAN reference code does "
                                       "(100); 0 = off")
    boost_first_steps: int = option(25, "with --critic-steps-boosted: the first this many generator steps are boosted",
                                    EVERY)
    boost_every_steps: int = option(500, "with --critic-steps-boosted: and every this many-th generator step (0 = only "
                                    "the first ones)", EVERY)
    steps: int = option(20000, "generator updates to train for", COUNT)
    max_train_seconds: float = option(0.0, "stop (as at the last step: log, grid, metrics, checkpoint) once this many "
                                      "seconds of training have passed, evaluations not counted (0: --steps alone)",
                                      NON_NEGATIVE)
    train_clock: str = option("wall", f"what --max-train-seconds and --eval-every-seconds count: "
                              f"{one_of(TRAIN_CLOCKS)} (wall: seconds on the wall's clock; cpu: this process's CPU "
                              "seconds: with one thread, runs that share a machine get equal budgets, as the "
                              "time-to-quality benchmark needs)")
    lr_decay: str = option("none", f"learning-rate schedule of both optimisers: {one_of(LR_DECAYS)} (linear: to 0 at "
                           "--steps, as the WGAN-GP paper's CIFAR-10 code)")
    # The generator that is sampled and evaluated: an exponential moving average of the trained one.
    ema_halflife_kimg: float = option(10.0, "half-life of the generator's exponential moving average, in thousands "
                                      "of generator images (0: off); grids, metrics, sample and export use the "
                                      "average", NON_NEGATIVE)
    ema_rampup: float = option(0.05, "EMA ramp-up: the half-life is at most this fraction of the images seen so far, "
                               "so the average forgets the first steps quickly (0: no ramp-up)", NON_NEGATIVE)
    augment: str = option("", f"DiffAugment of every image the critic sees, real and generated: any of "
                          f"{', '.join(AUGMENTATIONS)}, comma-separated (for small datasets; Zhao et al. 2020)")
    # Bookkeeping
    log_every_steps: int = option(10, "read losses back and log them every N steps", COUNT)
    sample_every_steps: int = option(250, "save a fixed-noise grid every N steps (0: off)", EVERY)
    checkpoint_every_steps: int = option(1000, "write a checkpoint every N steps (0: only at the end)", EVERY)
    keep_checkpoints: int = option(3, "how many checkpoints to keep", COUNT)
    eval_every_steps: int = option(0, "compute --eval-metrics every N steps (0: at the end only)", EVERY)
    eval_every_seconds: float = option(0.0, "also compute --eval-metrics every this many seconds of training (0: off): "
                                       "curves of quality against time", NON_NEGATIVE)
    eval_metrics: str = option("", "comma-separated metrics to log during training (see `wgan eval --help`)")
    eval_num_samples: int = option(10000, "samples per metric evaluation", COUNT)
    inception_weights: str | None = option(None, "Inception-v3 weights file for fid/kid (torch-fidelity's; needed "
                                           "offline)")
    grid_samples: int = option(64, "images in each sample grid (conditional: rounded down to whole rows of one class "
                               "per column, at least one)", GRID)
    seed: int = option(0, "random seed", SEED)
    # Execution
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    precision: str = option("auto", f"{one_of(PRECISIONS)} (auto: tf32 on CUDA; on a CPU bf16 where it has native "
                            "bf16, AVX512-BF16 or AMX, else fp32; bf16: CUDA, or a CPU with native bf16; the losses "
                            "and the penalty's norm stay fp32)")
    fast: bool = option(True, "CUDA graph fast path on GPUs (--no-fast: plain eager step)")
    deterministic: bool = option(False, "deterministic algorithms (bitwise repeatable on CPU)")
    sync_batch_norm: bool = option(False, "under torchrun on GPUs: batch norm's statistics over all processes' "
                                   "batches (torch.nn.SyncBatchNorm; not on CPUs); default: each process's own")
    runs_dir: str = option("runs", "where numbered run directories are created")
    tensorboard: bool = option(True, "write TensorBoard event files")

    @property
    def uses_penalty(self) -> bool:
        return self.loss in ("gp", "lp")

    @property
    def critic_conditioning(self) -> str:
        """--conditioning with auto resolved: the model's own way (from the registry)."""
        from wgan.models import MODELS  # imports torch: here, so that `wgan --help` does not

        return MODELS[self.model].conditionings[0] if self.conditioning == "auto" else self.conditioning

    @property
    def generator_batch_size(self) -> int:
        return self.batch_size_generator or self.batch_size

    @property
    def load_options(self) -> dict:
        """What load_dataset needs of the run besides the dataset, its path and the model's size."""
        return dict(skip_bad_images=self.skip_bad_images, max_image_megapixels=self.max_image_megapixels)

    @property
    def augmentations(self) -> list[str]:
        return [a.strip() for a in self.augment.split(",") if a.strip()]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"config has unknown keys {unknown}: it was written by another version of wgan")
        return cls(**d)

    @classmethod
    def from_json(cls, path: Path) -> "TrainConfig":
        text = read_small_text(Path(path), CONFIG_LIMIT_BYTES)
        if text is None:
            raise UserError(f"{path}: not a readable wgan config (missing, not a regular file, or over "
                            f"{CONFIG_LIMIT_BYTES >> 20} MiB)")
        try:
            return cls.from_dict(json.loads(text))
        except (json.JSONDecodeError, RecursionError, TypeError) as exc:
            raise UserError(f"{path}: not a readable wgan config ({first_line(exc)})") from None


# ---------------------------------------------------------------------------------------------
# Presets: the papers' settings. Each entry overrides TrainConfig's defaults.

_CLIP = dict(loss="clip", optimizer="rmsprop", lr_critic=5e-5, lr_generator=5e-5, clip_value=0.01, critic_steps=5,
             batch_size=64)
_GP = dict(loss="gp", optimizer="adam", lr_critic=1e-4, lr_generator=1e-4, adam_beta1=0.5, adam_beta2=0.9,
           gp_weight=10.0, critic_steps=5, batch_size=64, critic_norm="none")
_TOY = dict(_GP, dataset="toy-8gaussians", model="mlp", width=512, latent_dim=2, batch_size=256, gp_weight=0.1,
            image_size=0, channels=0, steps=20000, sample_every_steps=500, eval_metrics="w1-exact",
            eval_every_steps=1000)

# gan_cifar_resnet.py: Adam 2e-4, betas (0, 0.9), both rates decayed linearly to 0 over 100k generator steps,
# 5 critic steps of 64 images per generator step of 128, lambda 10, width 128, no critic normalisation.
_RESNET32 = dict(_GP, dataset="cifar10", model="resnet32", image_size=32, channels=3, width=128, latent_dim=128,
                 lr_critic=2e-4, lr_generator=2e-4, adam_beta1=0.0, adam_beta2=0.9, batch_size_generator=128,
                 lr_decay="linear", steps=100000, sample_every_steps=1000, checkpoint_every_steps=2000,
                 eval_every_steps=5000)

PRESETS: dict[str, tuple[str, dict]] = {
    # Measured on a 2-core CPU (docs/levers.md): 2 critic steps of 32 images, batch norm in the generator, class
    # labels, Adam at 8e-4 and a 2k-image half-life of the average beat the paper's settings in five minutes;
    # the zero-centred penalty (and bf16 where the CPU has it, by --precision auto) reach their FCD sooner.
    "quick": ("CPU-sized conditional WGAN-GP demo on Fashion-MNIST (five minutes on a laptop)",
              dict(_GP, dataset="fashion-mnist", conditional=True, width=32, lr_critic=8e-4, lr_generator=8e-4,
                   ema_halflife_kimg=2.0, batch_size=32, penalty_target_norm=0.0,
                   # the five minutes end the demo; the step cap only a run given --max-train-seconds 0
                   critic_steps=2, generator_norm="batch", steps=100000, max_train_seconds=300.0,
                   sample_every_steps=250, log_every_steps=10, checkpoint_every_steps=500,
                   # with --eval-metrics (make demo passes them): a quality curve of five points, not one
                   eval_every_seconds=60.0)),
    "mnist-clip": ("WGAN with weight clipping on MNIST", dict(_CLIP, dataset="mnist", critic_norm="batch")),
    "fashion-clip": ("WGAN with weight clipping on Fashion-MNIST",
                     dict(_CLIP, dataset="fashion-mnist", critic_norm="batch")),
    "celeba-clip": ("DCGAN-architecture WGAN with clipping on 64x64 faces",
                    dict(_CLIP, dataset="celeba", model="dcgan64", image_size=64, channels=3, latent_dim=100,
                         critic_norm="batch", steps=50000, sample_every_steps=500)),
    "letters-cond-gp": ("conditional WGAN-GP on handwritten A-Z letters",
                        dict(_GP, dataset="letters-csv", conditional=True, eval_metrics="fcd,cond-accuracy")),
    "paper-gp": ("WGAN-GP with the paper's hyper-parameters on MNIST", dict(_GP, dataset="mnist", steps=200000)),
    "fashion-gp": ("WGAN-GP with the paper's hyper-parameters on Fashion-MNIST",
                   dict(_GP, dataset="fashion-mnist", eval_metrics="fcd,class-coverage", eval_every_steps=1000)),
    "cifar10-resnet-gp": ("the WGAN-GP paper's CIFAR-10 ResNet (Inception score 7.86), its settings exactly",
                          dict(_RESNET32, eval_metrics="fcd,class-coverage")),
    "cifar10-resnet-cond-gp": ("the WGAN-GP paper's conditional CIFAR-10 ResNet with an AC-GAN critic (8.42)",
                               dict(_RESNET32, conditional=True, eval_metrics="fcd,class-coverage,cond-accuracy")),
    "celeba-resnet-gp": ("the WGAN-GP paper's 64x64 ResNet on faces (its ImageNet 64x64 settings)",
                         dict(_GP, dataset="celeba", model="resnet64", image_size=64, channels=3, width=64,
                              latent_dim=128, adam_beta1=0.0, critic_norm="layer", steps=200000,
                              sample_every_steps=500, checkpoint_every_steps=2000)),
    "toy-8gaussians": ("the WGAN-GP paper's 8 Gaussians (2-D)", dict(_TOY, dataset="toy-8gaussians")),
    "toy-25gaussians": ("the WGAN-GP paper's 25 Gaussians (2-D)", dict(_TOY, dataset="toy-25gaussians")),
    "toy-swissroll": ("the WGAN-GP paper's Swiss roll (2-D)", dict(_TOY, dataset="toy-swissroll")),
}


def preset_config(name: str, **overrides) -> TrainConfig:
    if not isinstance(name, str) or name not in PRESETS:
        raise UserError(f"unknown preset '{name}': choose one of {', '.join(PRESETS)} (see `wgan presets`)")
    values = dict(PRESETS[name][1], preset=name)
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(TrainConfig)}
    bad = sorted(set(values) - known)
    if bad:
        raise UserError(f"unknown option(s) {bad}")
    return TrainConfig(**values)


def resolve_sizes(cfg: TrainConfig) -> TrainConfig:
    """--image-size 0 and --channels 0 (the dataset's own) as the numbers they stand for, so that config.json
    says what the model makes (2-D point data keep 0: they have neither)."""
    from wgan.data import DATASETS  # imports torch: here, so that `wgan --help` does not

    entry = DATASETS[cfg.dataset]
    if entry.image_size == 0:
        return cfg
    return dataclasses.replace(cfg, image_size=cfg.image_size or entry.image_size, channels=cfg.channels or entry.channels)


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check every option before anything runs (a dataset is loaded, a model built, a folder made);
    raise UserError naming the option and the fix."""
    validate_model(cfg)
    blocker = file_in_the_way(Path(cfg.runs_dir))
    if blocker is not None:
        raise UserError(f"--runs-dir {cfg.runs_dir}: {blocker} is a file, not a folder; choose another --runs-dir")
    try:
        metric_names = parse_metric_names(cfg.eval_metrics)
    except UserError as exc:
        raise UserError(f"--eval-metrics {cfg.eval_metrics}: {exc}") from None
    if metric_names and cfg.eval_num_samples < 2:
        raise UserError(f"--eval-num-samples {cfg.eval_num_samples}: a distribution needs at least 2 samples "
                        "(10000 is usual)")
    check_sample_count(metric_names, cfg.eval_num_samples, "--eval-num-samples")
    if cfg.inception_weights and not Path(cfg.inception_weights).is_file():
        raise UserError(f"--inception-weights {cfg.inception_weights}: file not found; pass torch-fidelity's "
                        "Inception-v3 weights file (weights-inception-2015-12-05-6726825d.pth)")
    return cfg


def _need(ok: bool, msg: str) -> None:
    if not ok:
        raise UserError(msg)


def validate_model(cfg: TrainConfig) -> TrainConfig:
    """The options that decide what is trained: types, names, numbers, and the model's fit to its data and loss.
    Also what a stored config (a checkpoint's, an exported generator's) must pass before a model is built."""
    _check_types(cfg)
    _check_names(cfg)
    _check_numbers(cfg)
    _check_model_fit(cfg)
    return cfg


# What each annotated type of a field accepts, and how a refusal names it. A bool is no number (True is 1 to
# Python), and a string is no bool ("no" would be true): each option's value is of its own type.
_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "bool": (lambda v: isinstance(v, bool), "True or False"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "str | None": (lambda v: v is None or isinstance(v, str), "a string (or None)"),
}
_TYPE_NAMES = {str: "string", list: "list", dict: "dict", tuple: "tuple", bool: "bool", type(None): "None"}


def _check_types(cfg: TrainConfig) -> None:
    """Each field's value of the field's type, before any rule compares or parses it."""
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        accepts, wanted = _TYPES[str(f.type)]
        if not accepts(value):
            given = _TYPE_NAMES.get(type(value), type(value).__name__)
            raise UserError(f"{flag(f.name)} {value!r}: must be {wanted}, not {'an' if given[0] in 'aeiou' else 'a'} "
                            f"{given}")


def _check_names(cfg: TrainConfig) -> None:
    # The registries import torch: here, not at the top, so that `wgan --help` does not.
    from wgan.data import DATASETS
    from wgan.models import MODELS

    _need(cfg.dataset in DATASETS, f"--dataset {cfg.dataset}: unknown dataset; choose one of {', '.join(DATASETS)}")
    _need(cfg.model in MODELS, f"--model {cfg.model}: unknown model; choose one of {', '.join(MODELS)}")
    _need(cfg.loss in LOSSES, f"--loss {cfg.loss}: unknown loss; choose one of {', '.join(LOSSES)}")
    _need(cfg.optimizer in OPTIMIZERS, f"--optimizer {cfg.optimizer}: choose one of {', '.join(OPTIMIZERS)}")
    _need(cfg.precision in PRECISIONS, f"--precision {cfg.precision}: choose one of {', '.join(PRECISIONS)}")
    _need(cfg.critic_norm in CRITIC_NORMS,
          f"--critic-norm {cfg.critic_norm}: choose one of {', '.join(CRITIC_NORMS)}")
    _need(cfg.generator_norm in GENERATOR_NORMS,
          f"--generator-norm {cfg.generator_norm}: choose {one_of(GENERATOR_NORMS)}")
    _need(cfg.train_clock in TRAIN_CLOCKS, f"--train-clock {cfg.train_clock}: choose one of {', '.join(TRAIN_CLOCKS)}")
    _need(cfg.lr_decay in LR_DECAYS, f"--lr-decay {cfg.lr_decay}: choose one of {', '.join(LR_DECAYS)}")
    unknown = [a for a in cfg.augmentations if a not in AUGMENTATIONS]
    _need(not unknown, f"--augment {cfg.augment}: unknown augmentation {', '.join(unknown)}; choose from "
          f"{', '.join(AUGMENTATIONS)} (comma-separated)")
    _need(cfg.device in ("auto", "cpu") or re.fullmatch(r"cuda(:\d+)?", cfg.device) is not None,
          f"--device {cfg.device}: use auto, cpu, cuda or cuda:N")


def _check_numbers(cfg: TrainConfig) -> None:
    """Each field's range, and the one rule between two numbers."""
    for f in fields(cfg):
        value, accepted = getattr(cfg, f.name), f.metadata.get("range")
        shown = repr(value) if isinstance(value, str) and not value.strip() else value
        _need(accepted is None or accepted.accepts(value), f"{flag(f.name)} {shown}: {accepted and accepted.refusal}")
    _need(isinstance(cfg.critic_steps_boosted, int) and (cfg.critic_steps_boosted == 0
                                                          or cfg.critic_steps_boosted > cfg.critic_steps),
          f"--critic-steps-boosted {cfg.critic_steps_boosted}: must be 0 (off) or more than --critic-steps "
          f"({cfg.critic_steps}); the WGAN reference code uses 100")


def _check_model_fit(cfg: TrainConfig) -> None:
    """The model against its data, normalisation, conditioning and loss: refused here, not when the model
    is built, so a large dataset is not loaded first."""
    from wgan.data import DATASETS
    from wgan.models import MODELS

    points = DATASETS[cfg.dataset].image_size == 0
    _need(not points or cfg.model == "mlp", f"--model {cfg.model}: model '{cfg.model}' makes images; 2-D point data "
          f"({cfg.dataset}) needs --model mlp")
    fixed_sizes = MODELS[cfg.model].image_sizes or ()
    size = cfg.image_size or DATASETS[cfg.dataset].image_size  # 0: the dataset's own size
    if not points and fixed_sizes and size not in fixed_sizes:
        made = fixed_sizes[0]
        raise UserError(f"--image-size {cfg.image_size}: model '{cfg.model}' makes {made}x{made} images; "
                        f"pass --image-size {made} or choose another model")
    _need(cfg.generator_norm == "none" or cfg.model == "dcgan28",
          f"--generator-norm {cfg.generator_norm}: for --model dcgan28 only (model '{cfg.model}' has its own)")
    allowed = MODELS[cfg.model].conditionings
    _need(cfg.conditioning == "auto" or cfg.conditioning in allowed,
          f"--conditioning {cfg.conditioning}: model '{cfg.model}' takes {', '.join(allowed)} (or auto)")
    if cfg.critic_norm == "batch" and cfg.loss == "sn":
        raise UserError("--loss sn with --critic-norm batch: spectral normalisation bounds each layer's Lipschitz "
                        "constant, batch norm rescales by the batch's statistics and undoes it; use --critic-norm none "
                        "or layer")
    if cfg.critic_norm == "batch" and cfg.uses_penalty:
        raise UserError(f"--critic-norm batch with --loss {cfg.loss}: batch norm couples the samples of a batch, "
                        "which the gradient penalty forbids; use --critic-norm layer or none")
    _need(cfg.critic_norm != "batch" or cfg.model != "mlp",
          "--critic-norm batch: the mlp critic supports none or layer; use --critic-norm layer")
