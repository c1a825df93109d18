"""Training configuration: one dataclass whose field names carry their units, the presets, and the
validation that runs before anything else does."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path

from wgan.errors import UserError, file_in_the_way

LOSSES = {
    "clip": "WGAN: weight clipping (Arjovsky et al. 2017)",
    "gp": "WGAN-GP: two-sided gradient penalty (Gulrajani et al. 2017)",
    "lp": "WGAN-LP: one-sided penalty max(0, ||grad|| - 1)^2 (Petzka et al. 2018)",
}
OPTIMIZERS = ("adam", "rmsprop")
PRECISIONS = ("fp32", "tf32", "bf16")


@dataclass
class TrainConfig:
    # What to reproduce
    preset: str = "custom"
    # Data
    dataset: str = "fashion-mnist"
    data: str | None = None  # a path: file or folder, depending on the dataset
    image_size: int = 28
    channels: int = 1
    conditional: bool = False
    skip_bad_images: bool = False  # image folders: skip unreadable/too-small files instead of stopping
    # Model
    model: str = "dcgan28"
    latent_dim: int = 128
    width: int = 64
    critic_norm: str = "none"
    # Objective
    loss: str = "gp"
    clip_value: float = 0.01
    gp_weight: float = 10.0
    # Optimisation
    optimizer: str = "adam"
    lr_critic: float = 1e-4
    lr_generator: float = 1e-4
    adam_beta1: float = 0.5
    adam_beta2: float = 0.9
    batch_size: int = 64
    critic_steps: int = 5  # critic updates per generator update (n_critic)
    # The WGAN reference code's schedule, not in the paper's Algorithm 1: on the first
    # `boost_first_steps` generator steps and on every `boost_every_steps`-th, the critic is updated
    # `critic_steps_boosted` times instead of `critic_steps`, so its estimate starts and stays near
    # the optimal critic's. 0 turns it off (the paper); the reference code uses 100, 25 and 500.
    critic_steps_boosted: int = 0
    boost_first_steps: int = 25
    boost_every_steps: int = 500
    steps: int = 20000  # generator updates
    # Bookkeeping
    log_every_steps: int = 10
    sample_every_steps: int = 250
    checkpoint_every_steps: int = 1000
    keep_checkpoints: int = 3
    eval_every_steps: int = 0  # 0 = only at the end, if metrics are asked for
    eval_metrics: str = ""
    eval_num_samples: int = 10000
    inception_weights: str | None = None  # a file: fid/kid offline
    grid_samples: int = 64
    seed: int = 0
    # Execution
    device: str = "auto"
    precision: str = "tf32"
    fast: bool = True
    deterministic: bool = False
    runs_dir: str = "runs"
    tensorboard: bool = True

    @property
    def uses_penalty(self) -> bool:
        return self.loss in ("gp", "lp")

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
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise UserError(f"{path}: not a readable wgan config ({exc})") from None


# ---------------------------------------------------------------------------------------------
# Presets: the papers' settings. Each entry overrides TrainConfig's defaults.

_CLIP = dict(loss="clip", optimizer="rmsprop", lr_critic=5e-5, lr_generator=5e-5, clip_value=0.01, critic_steps=5,
             batch_size=64)
_GP = dict(loss="gp", optimizer="adam", lr_critic=1e-4, lr_generator=1e-4, adam_beta1=0.5, adam_beta2=0.9,
           gp_weight=10.0, critic_steps=5, batch_size=64, critic_norm="none")
_TOY = dict(_GP, dataset="toy-8gaussians", model="mlp", width=512, latent_dim=2, batch_size=256, gp_weight=0.1,
            image_size=0, channels=0, steps=20000, sample_every_steps=500, eval_metrics="w1-exact",
            eval_every_steps=1000)

PRESETS: dict[str, tuple[str, dict]] = {
    "quick": ("CPU-sized WGAN-GP demo on Fashion-MNIST (minutes on a laptop)",
              dict(_GP, dataset="fashion-mnist", width=32, lr_critic=2e-4, lr_generator=2e-4, batch_size=64,
                   steps=1000, sample_every_steps=100, log_every_steps=10, checkpoint_every_steps=250)),
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
    "toy-8gaussians": ("the WGAN-GP paper's 8 Gaussians (2-D)", dict(_TOY, dataset="toy-8gaussians")),
    "toy-25gaussians": ("the WGAN-GP paper's 25 Gaussians (2-D)", dict(_TOY, dataset="toy-25gaussians")),
    "toy-swissroll": ("the WGAN-GP paper's Swiss roll (2-D)", dict(_TOY, dataset="toy-swissroll")),
}


def preset_config(name: str, **overrides) -> TrainConfig:
    if name not in PRESETS:
        raise UserError(f"unknown preset '{name}': choose one of {', '.join(PRESETS)} (see `wgan presets`)")
    values = dict(PRESETS[name][1], preset=name)
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(TrainConfig)}
    bad = sorted(set(values) - known)
    if bad:
        raise UserError(f"unknown option(s) {bad}")
    return TrainConfig(**values)


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check every option before anything runs; raise UserError naming the option and the fix."""
    from wgan.data import DATASETS
    from wgan.models import CRITIC_NORMS, MODELS

    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise UserError(msg)

    need(cfg.dataset in DATASETS, f"--dataset {cfg.dataset}: unknown dataset; choose one of {', '.join(DATASETS)}")
    need(cfg.model in MODELS, f"--model {cfg.model}: unknown model; choose one of {', '.join(MODELS)}")
    need(cfg.loss in LOSSES, f"--loss {cfg.loss}: unknown loss; choose one of {', '.join(LOSSES)}")
    need(cfg.optimizer in OPTIMIZERS, f"--optimizer {cfg.optimizer}: choose one of {', '.join(OPTIMIZERS)}")
    need(cfg.precision in PRECISIONS, f"--precision {cfg.precision}: choose one of {', '.join(PRECISIONS)}")
    need(cfg.critic_norm in CRITIC_NORMS, f"--critic-norm {cfg.critic_norm}: choose one of {', '.join(CRITIC_NORMS)}")
    for name in ("lr_critic", "lr_generator"):
        v = getattr(cfg, name)
        need(v > 0 and v < 1, f"--{name.replace('_', '-')} {v}: a learning rate must be in (0, 1)")
    for name in ("adam_beta1", "adam_beta2"):
        v = getattr(cfg, name)
        need(0 <= v < 1, f"--{name.replace('_', '-')} {v}: must be in [0, 1)")
    for name in ("critic_steps", "steps", "batch_size", "latent_dim", "width", "grid_samples", "log_every_steps",
                 "eval_num_samples", "keep_checkpoints"):
        v = getattr(cfg, name)
        need(isinstance(v, int) and v >= 1, f"--{name.replace('_', '-')} {v}: must be a whole number >= 1")
    for name in ("sample_every_steps", "checkpoint_every_steps", "eval_every_steps", "boost_first_steps",
                 "boost_every_steps"):
        v = getattr(cfg, name)
        need(isinstance(v, int) and v >= 0, f"--{name.replace('_', '-')} {v}: must be >= 0 (0 turns it off)")
    need(isinstance(cfg.critic_steps_boosted, int) and (cfg.critic_steps_boosted == 0
                                                         or cfg.critic_steps_boosted > cfg.critic_steps),
         f"--critic-steps-boosted {cfg.critic_steps_boosted}: must be 0 (off) or more than --critic-steps "
         f"({cfg.critic_steps}); the WGAN reference code uses 100")
    need(0 < cfg.clip_value < math.inf, f"--clip-value {cfg.clip_value}: must be a finite number > 0")
    need(0 <= cfg.gp_weight < math.inf, f"--gp-weight {cfg.gp_weight}: must be a finite number >= 0")
    need(isinstance(cfg.image_size, int) and cfg.image_size >= 0,
         f"--image-size {cfg.image_size}: must be a whole number of pixels (0 keeps the dataset's size)")
    need(cfg.channels in (0, 1, 3), f"--channels {cfg.channels}: use 1 (grayscale) or 3 (RGB)")
    # Refused here, not when the model is built, so a large dataset is not loaded first.
    fixed_sizes = MODELS[cfg.model].image_sizes or ()
    if cfg.image_size and fixed_sizes and cfg.image_size not in fixed_sizes:
        size = fixed_sizes[0]
        raise UserError(f"--image-size {cfg.image_size}: model '{cfg.model}' makes {size}x{size} images; "
                        f"pass --image-size {size} or choose another model")
    if cfg.uses_penalty:
        need(cfg.critic_norm != "batch",
             f"--critic-norm batch with --loss {cfg.loss}: batch norm couples the samples of a batch, which the "
             "gradient penalty forbids; use --critic-norm layer or none")
    blocker = file_in_the_way(Path(cfg.runs_dir))
    need(blocker is None, f"--runs-dir {cfg.runs_dir}: {blocker} is a file, not a folder; choose another --runs-dir")
    from wgan.metrics import parse_metric_names

    try:
        metric_names = parse_metric_names(cfg.eval_metrics)
    except UserError as exc:
        raise UserError(f"--eval-metrics {cfg.eval_metrics}: {exc}") from None
    need(not metric_names or cfg.eval_num_samples >= 2,
         f"--eval-num-samples {cfg.eval_num_samples}: a distribution needs at least 2 samples (10000 is usual)")
    need(not cfg.inception_weights or Path(cfg.inception_weights).is_file(),
         f"--inception-weights {cfg.inception_weights}: file not found; pass torch-fidelity's Inception-v3 weights "
         "file (weights-inception-2015-12-05-6726825d.pth)")
    if cfg.device not in ("auto", "cpu") and not re.fullmatch(r"cuda(:\d+)?", cfg.device):
        raise UserError(f"--device {cfg.device}: use auto, cpu, cuda or cuda:N")
    return cfg
