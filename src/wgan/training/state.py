"""The training state: what a run builds before its first step and what its checkpoints hold.

`TrainState.build` makes the models, optimisers and fixed grid inputs of a config on its data, seeded
per process (seed + rank) with the models made equal across processes; `state_dict` and
`load_state_dict` are the checkpoint's contents, every random stream included, so a resumed run
continues exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wgan import checkpoint as ckpt
from wgan import distributed, exported, legacy
from wgan.classes import names_or_numbers
from wgan.config import TrainConfig
from wgan.data import Data, load_dataset
from wgan.data.shared import share_images
from wgan.data.streamed import PREFETCH_BATCHES, streamed
from wgan.errors import TrainingDiverged, UserError, first_line
from wgan.models import Critic, Generator, ModelShape, build_models, parameter_count, spectral_normalise
from wgan.training.ema import GeneratorEMA
from wgan.training.plan import RunPlan, make_plan
from wgan.training.precision import Precision
from wgan.training.step import STAT_NAMES

# ---------------------------------------------------------------------------------------------
# Set-up


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_precision(precision: str, deterministic: bool) -> None:
    """torch's process-wide flags for a resolved precision (fp32, tf32 or bf16) and --deterministic."""
    tf32 = precision in ("tf32", "bf16")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def model_shape(cfg: TrainConfig, data: Data) -> ModelShape:
    classes = data.num_classes if cfg.conditional else 0
    common = dict(latent_dim=cfg.latent_dim, width=cfg.width, num_classes=classes, critic_norm=cfg.critic_norm,
                  conditioning=cfg.critic_conditioning if classes else "input", generator_norm=cfg.generator_norm)
    if data.is_points:
        return ModelShape(point_dim=data.sample_shape[0], channels=0, image_size=0, **common)
    c, h, _ = data.sample_shape
    return ModelShape(channels=c, image_size=h, **common)


def make_optimizers(cfg: TrainConfig, generator: nn.Module, critic: nn.Module, device: torch.device,
                    fast: bool = False) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """The papers' optimisers. `fast`: CUDA-graph-capturable variants (state on the device)."""
    if cfg.optimizer == "adam":
        # fused: one kernel for all parameters; capturable: step counts on the device, so a CUDA graph can hold it
        extra = dict(capturable=True, fused=True) if fast else {}
        betas = (cfg.adam_beta1, cfg.adam_beta2)
        return (torch.optim.Adam(generator.parameters(), lr=cfg.lr_generator, betas=betas, **extra),
                torch.optim.Adam(critic.parameters(), lr=cfg.lr_critic, betas=betas, **extra))
    extra = dict(capturable=True, foreach=True) if fast else {}
    return (torch.optim.RMSprop(generator.parameters(), lr=cfg.lr_generator, **extra),
            torch.optim.RMSprop(critic.parameters(), lr=cfg.lr_critic, **extra))


def fixed_inputs(cfg: TrainConfig, shape: ModelShape, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fixed noise (and labels: one class per grid column) so successive grids are comparable."""
    gen = torch.Generator().manual_seed(cfg.seed + 12345)
    if shape.point_dim:
        n, labels = 1000, None  # a scatter wants many points
    elif shape.conditional:
        rows = max(1, cfg.grid_samples // shape.num_classes)  # whole rows, never more images than asked for
        n = rows * shape.num_classes
        labels = torch.arange(n) % shape.num_classes
    else:
        n, labels = cfg.grid_samples, None
    z = torch.randn(n, shape.latent_dim, generator=gen)
    return z.to(device), None if labels is None else labels.to(device)


def grid_columns(shape: ModelShape, n: int) -> int:
    return shape.num_classes if shape.conditional else max(1, int(math.sqrt(n)))


TRAINING_COPIES = 5  # of every parameter: the weights, their gradients, Adam's two moments, the generator's average


def check_model_memory(cfg: TrainConfig, shape: ModelShape, device: torch.device) -> None:
    """Models whose parameters, with their gradients and optimiser state, the device cannot hold are refused before
    they are built (counted on the meta device), naming --width and --latent-dim rather than what comes after."""
    memory = distributed.memory_bytes(device)
    params = parameter_count(cfg.model, shape)
    if params is None or params * 4 * TRAINING_COPIES > memory / 2:
        size = "more than torch can build" if params is None else \
            f"{params:,} parameters, {params * 4 * TRAINING_COPIES / 2**30:,.1f} GiB with their gradients and optimiser state"
        raise UserError(f"--width {cfg.width} / --latent-dim {cfg.latent_dim}: the models of {cfg.model} take {size}, "
                        f"more than half the {memory / 2**30:.0f} GiB of {device}; use a smaller --width or --latent-dim")


def check_batch_sizes(cfg: TrainConfig, data: Data, device: torch.device) -> None:
    """Batches the data or the machine cannot hold are refused at once, with the size to use, rather than
    failing in an allocation (or swapping for minutes) after the run directory is made."""
    if cfg.batch_size > len(data):
        raise UserError(f"--batch-size {cfg.batch_size}: more than the {len(data):,} samples of {cfg.dataset} "
                        f"({data.source}); use at most {len(data)}")
    memory = distributed.memory_bytes(device)
    check_model_memory(cfg, model_shape(cfg, data), device)  # first: a --latent-dim past the machine is its to name
    per_sample = 4 * (math.prod(data.sample_shape) + cfg.latent_dim)  # one sample and its noise, in fp32
    for name, n in (("--batch-size", cfg.batch_size), ("--batch-size-generator", cfg.generator_batch_size)):
        if n * per_sample > memory / 4:
            raise UserError(f"{name} {n}: one batch's samples alone take {n * per_sample / 2**30:.1f} GiB, more than "
                            f"a quarter of the {memory / 2**30:.0f} GiB of {device}; use a smaller batch")
    if cfg.eval_metrics:  # measured at the end (or during) of training: refused now, not after the steps are trained
        host = distributed.memory_bytes(torch.device("cpu"))
        need = cfg.eval_num_samples * (math.prod(data.sample_shape) + 4 * cfg.latent_dim)  # uint8 samples, fp32 noise
        if need > host / 4:
            raise UserError(f"--eval-num-samples {cfg.eval_num_samples}: {need / 2**30:,.1f} GiB of samples per "
                            f"evaluation, more than a quarter of this machine's {host / 2**30:.0f} GiB; evaluate fewer")


def synchronised_batch_norm(model: nn.Module, device: torch.device) -> nn.Module:
    """--sync-batch-norm: `model`'s batch norm layers normalise over every process's batch (the generator's,
    and a clipping critic's; the penalised critics have none). Same parameters and buffers, same checkpoints."""
    if device.type != "cuda":
        raise UserError(f"--sync-batch-norm: torch's SyncBatchNorm runs only on CUDA (NCCL), not on {device} (gloo); "
                        "leave it out there: each process then normalises its own batch")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def shared_data(data: Data) -> Data:
    """The processes of a machine map one copy of the images rather than keep one each: the source file
    itself where the loader mapped it, else the decoded cache's file of the images' content."""
    if data.is_points:
        return data
    if data.mapped_from:
        return dataclasses.replace(data, notes=data.notes + [f"the images are mapped from {data.mapped_from} "
                                                             "(shared by the processes, not copied; a bus error below means it was cut or replaced while training)"])
    shared, note = share_images(data.x)
    return dataclasses.replace(data, x=shared, notes=data.notes + ([note] if note else []))


# The share of a GPU's free memory the dataset may take and still be copied there whole: the models, their
# optimisers and a step's activations need the rest.
RESIDENT_SHARE = 0.5


def placed_data(data: Data, device: torch.device, free_bytes: int | None = None) -> Data:
    """The data where the batches are drawn: a GPU holds the whole dataset where it fits in RESIDENT_SHARE of
    its free memory (batches are index draws on the device, no host round trip); where it does not, batches
    are gathered from host memory through pinned buffers ahead of the step (data/streamed.py). On a CPU
    the batches are gathered from the mapped file. The log says which."""
    if device.type != "cuda":
        return data
    size = data.x.numel() * data.x.element_size()
    free = torch.cuda.mem_get_info(device)[0] if free_bytes is None else free_bytes
    if size > RESIDENT_SHARE * free:
        note = (f"the dataset ({size / 2**30:.2f} GiB) is more than {RESIDENT_SHARE:.0%} of the {free / 2**30:.1f} "
                f"GiB free on {device}: batches are gathered in host memory and copied through pinned buffers, "
                f"{PREFETCH_BATCHES} ahead of the step (no CUDA graph)")
        return dataclasses.replace(streamed(data, device), notes=data.notes + [note])
    placed = data.to(device)
    return dataclasses.replace(placed, notes=placed.notes + [f"the dataset ({size / 2**30:.2f} GiB) is copied whole "
                                                             f"to {device} memory"])


# ---------------------------------------------------------------------------------------------
# The state


@dataclass
class TrainState:
    """Everything a checkpoint holds: the data, the models and their optimisers, the step, the fixed
    inputs of the sample grids, the training time so far and the logging interval under way (with the
    process's random streams, gathered when the checkpoint is written)."""

    cfg: TrainConfig
    device: torch.device
    data: Data
    shape: ModelShape
    generator: Generator
    critic: Critic
    opt_g: torch.optim.Optimizer
    opt_c: torch.optim.Optimizer
    fixed_z: torch.Tensor
    fixed_labels: torch.Tensor | None
    step: int = 0
    elapsed_s: float = 0.0  # training time before this process, so metrics' time_s continues on resume
    # Losses summed since the last metrics record: {"steps", "sums", "seconds"}. A checkpoint written
    # between records (on a signal) carries them, so the resumed run logs the records of an unstopped one.
    pending: dict | None = None
    ema: GeneratorEMA | None = None  # the generator's moving average, which is sampled and evaluated
    notes: list[str] = field(default_factory=list)  # what restoring a checkpoint had to say
    precision: Precision = Precision("fp32", "asked for")  # what the steps compute in, and why

    @classmethod
    def build(cls, plan: RunPlan | TrainConfig, fast: bool = False, data: Data | None = None) -> "TrainState":
        """The state of the run `plan` settles, on `data` (else its dataset, loaded). A TrainConfig (a test's, a
        script's) is planned here, at this border, with the fast step if `fast`."""
        plan = plan if isinstance(plan, RunPlan) else make_plan(plan, fast=fast)
        cfg, device, precision = plan.cfg, plan.device, plan.precision
        # seed + rank: every process draws its own batches and noise (rank 0's streams are a single
        # process's); the models are made equal below.
        seed_everything(cfg.seed + distributed.rank())
        set_precision(precision.name, cfg.deterministic)
        if data is None:
            data = load_dataset(cfg.dataset, split="train", data_path=cfg.data, image_size=cfg.image_size or None,
                                channels=cfg.channels or None, **cfg.load_options)
            data = shared_data(data)
        if cfg.conditional and data.y is None:
            raise UserError(f"--conditional needs a labelled dataset; {cfg.dataset} ({data.source}) has no classes")
        if cfg.conditional and data.num_classes < 2:
            raise UserError(f"--conditional: {cfg.dataset} ({data.source}) has only one class; conditional "
                            "training needs at least 2 (or drop --conditional)")
        check_batch_sizes(cfg, data, device)  # before anything of that size is allocated
        data = placed_data(data, device)
        shape = model_shape(cfg, data)
        generator, critic = build_models(cfg.model, shape)
        if cfg.loss == "sn":
            spectral_normalise(critic)
        generator, critic = generator.to(device), critic.to(device)
        if cfg.sync_batch_norm:
            generator, critic = synchronised_batch_norm(generator, device), synchronised_batch_norm(critic, device)
        distributed.broadcast_modules(generator, critic)
        # capturable where a CUDA graph is planned: the graph holds the optimisers' steps
        opt_g, opt_c = make_optimizers(cfg, generator, critic, device, fast=plan.step.kind == "graph")
        fixed_z, fixed_labels = fixed_inputs(cfg, shape, device)
        ema = None
        if cfg.ema_halflife_kimg > 0:  # after the broadcast: every process averages the same weights
            ema = GeneratorEMA(generator, halflife_kimg=cfg.ema_halflife_kimg, rampup=cfg.ema_rampup,
                               images_per_step=cfg.generator_batch_size * distributed.world_size())
        return cls(cfg, device, data, shape, generator, critic, opt_g, opt_c, fixed_z, fixed_labels, ema=ema,
                   precision=precision)

    # --- state for checkpoints -------------------------------------------------------------
    def state_dict(self) -> dict:
        """The checkpoint's contents. In N processes every process must call it (it gathers their
        random states); rank 0 writes it."""
        rng = rng_states()
        state = {
            "format": ckpt.FORMAT,
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "pending": self.pending or {"steps": 0, "sums": torch.zeros(len(STAT_NAMES)), "seconds": 0.0},
            "config": json.dumps(self.cfg.to_dict()),
            "shape": json.dumps(self.shape.__dict__),
            "generator": self.generator.state_dict(),
            "critic": self.critic.state_dict(),
            "opt_generator": self.opt_g.state_dict(),
            "opt_critic": self.opt_c.state_dict(),
            "fixed_z": self.fixed_z.cpu(),
            "fixed_labels": None if self.fixed_labels is None else self.fixed_labels.cpu(),
            "rng": rng,
            "ema": None if self.ema is None else self.ema.state_dict(),
            "class_names": self.class_names,
        }
        if distributed.world_size() > 1:
            # Every process's own streams, so a resume with as many processes continues each of them.
            state["rng_ranks"] = distributed.all_gather_object(rng)
        return state

    def load_state_dict(self, state: dict, source: Path) -> None:
        """Restore everything that shapes the rest of the trajectory from `state`, a checkpoint as
        checkpoint.load_checkpoint reads it (in today's layout); a mismatch names `source`."""
        try:
            self.generator.load_state_dict(state["generator"])
            self.critic.load_state_dict(state["critic"])
            self.opt_g.load_state_dict(state["opt_generator"])
            self.opt_c.load_state_dict(state["opt_critic"])
            fixed_z = state["fixed_z"].to(self.device)
            if fixed_z.shape != self.fixed_z.shape:
                raise ValueError(f"fixed noise of shape {tuple(fixed_z.shape)}, expected {tuple(self.fixed_z.shape)}")
            fixed_labels = None if state["fixed_labels"] is None else state["fixed_labels"].to(self.device)
            restore_rng_states(state, self.cfg.seed, int(state["step"]))
            step, elapsed_s = int(state["step"]), float(state["elapsed_s"])
            saved = state["pending"]
            pending = {"steps": int(saved["steps"]), "sums": saved["sums"].float().reshape(len(STAT_NAMES)),
                       "seconds": float(saved["seconds"])}
            if self.ema is not None:
                self.ema.load_state_dict(state["ema"])
            notes = list(state[legacy.NOTES])  # what upgrading a checkpoint of an earlier format had to say
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            raise UserError(f"{source}: checkpoint does not match this model/config ({first_line(exc, 200)})") from None
        self.fixed_z, self.fixed_labels, self.step, self.elapsed_s = fixed_z, fixed_labels, step, elapsed_s
        self.pending = pending
        self.notes += notes

    @property
    def class_names(self) -> list[str]:
        """What the generator's classes are called (the dataset's names; a folder's subfolders), so that a
        sampler can ask for "Sneaker"; an unconditional generator has none."""
        return names_or_numbers(self.data.class_names, self.shape.num_classes) if self.shape.conditional else []

    # --- samples ----------------------------------------------------------------------------
    def sampled_generator(self, raw: bool = False) -> Generator:
        """The generator that grids, metrics and exports use: the moving average where the run keeps one."""
        return self.ema.module if self.ema is not None and not raw else self.generator

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        generator = self.sampled_generator()
        was_training = generator.training
        generator.eval()
        out = generator(z, labels).float()
        generator.train(was_training)
        return out


def rng_states() -> dict:
    """Every random generator the loop may draw from, as tensors and primitives (weights_only-safe)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss],
    }


def restore_rng_states(state: dict, seed: int, step: int) -> None:
    """This process's random streams from a checkpoint. Written by as many processes as run now
    (one process: its "rng"; N: "rng_ranks"), each continues exactly; otherwise every process
    re-seeds from (seed, rank, step), deterministic but not the unstopped run's draws."""
    saved = state.get("rng_ranks") or [state["rng"]]
    if len(saved) == distributed.world_size():
        set_rng_states(saved[distributed.rank()])
    else:
        mixed = np.random.SeedSequence([seed % 2**63, distributed.rank(), step]).generate_state(1, np.uint64)[0]
        seed_everything(int(mixed % 2**63))


def set_rng_states(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available() and rng["cuda"]:
        # A machine with fewer GPUs than the one that wrote the checkpoint restores the ones it has.
        for index, state in enumerate(rng["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, index)
    kind, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))


def check_finite_parameters(state: TrainState) -> None:
    """A finite loss can still be followed by an update to NaN; never write such weights to a checkpoint."""
    for name, module in (("generator", state.generator), ("critic", state.critic)):
        if not torch.stack([p.isfinite().all() for p in module.parameters()]).all():  # one sync per checkpoint
            raise TrainingDiverged(f"the {name}'s parameters became NaN or infinite at step {state.step}")


def export_generator(state: TrainState, path: Path) -> None:
    """generator.safetensors: the sampled generator's weights (the moving average where the run keeps one)
    with the config and shape in its metadata."""
    exported.save_generator(path, state.sampled_generator().state_dict(), state.cfg.to_dict(), state.shape.__dict__,
                            state.step, weights="raw" if state.ema is None else "ema", class_names=state.class_names)
