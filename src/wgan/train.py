"""The training loop: one code path for CPU, CUDA and N processes (torchrun; see wgan.distributed).

One *step* is one generator iteration: `critic_steps` critic updates, each on a fresh real batch with
fresh noise (and a fresh per-sample epsilon for the penalty), then one generator update. The step
keeps its running sums of the losses on the device; the loop reads them back every
`log_every_steps`, so no step waits on the host. On CUDA the whole step can be captured in one CUDA
graph and replayed (see `CudaGraphStep`).

In N processes every process runs this same loop on its own batches (its random streams are seeded
with seed + rank), the steps average the gradients over the processes before each optimiser step,
the logged losses are averaged over them, and rank 0 alone writes files.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wgan import checkpoint as ckpt
from wgan import distributed, losses, rundir
from wgan.config import TrainConfig, validate
from wgan.data import Data, load_dataset, to_uint8_images
from wgan.errors import TrainingDiverged, UserError, first_line, os_reason, writing
from wgan.rundir import NullLog, RunLog
from wgan.models import Critic, Generator, ModelShape, build_models

STAT_NAMES = ("loss_critic", "loss_generator", "wasserstein", "penalty")


# ---------------------------------------------------------------------------------------------
# Set-up helpers


def upcast(t: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 (autocast) results as fp32, for losses and the penalty; fp32 and fp64 stay as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def effective_precision(precision: str, device: torch.device) -> str:
    """What a step computes in: tf32 and bf16 are CUDA settings, so on a CPU everything is fp32."""
    return precision if device.type == "cuda" else "fp32"


def set_precision(precision: str, deterministic: bool) -> None:
    tf32 = precision in ("tf32", "bf16")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def model_shape(cfg: TrainConfig, data: Data) -> ModelShape:
    if data.is_points:
        return ModelShape(latent_dim=cfg.latent_dim, width=cfg.width, num_classes=data.num_classes if cfg.conditional else 0,
                          critic_norm=cfg.critic_norm, point_dim=data.sample_shape[0], channels=0, image_size=0)
    c, h, _ = data.sample_shape
    return ModelShape(channels=c, image_size=h, latent_dim=cfg.latent_dim, width=cfg.width,
                      num_classes=data.num_classes if cfg.conditional else 0, critic_norm=cfg.critic_norm)


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


# ---------------------------------------------------------------------------------------------
# The step


class WganStep:
    """One generator iteration; returns nothing and accumulates its losses into `self.sums`."""

    def __init__(self, cfg: TrainConfig, generator: Generator, critic: Critic, opt_g, opt_c, data: Data,
                 device: torch.device):
        self.cfg, self.generator, self.critic, self.opt_g, self.opt_c, self.data = cfg, generator, critic, opt_g, opt_c, data
        self.conditional = generator.shape.conditional
        self.device = device
        self.sums = torch.zeros(len(STAT_NAMES), device=device)
        bf16 = effective_precision(cfg.precision, device) == "bf16"
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else nullcontext()

    def _noise(self) -> torch.Tensor:
        return torch.randn(self.cfg.batch_size, self.generator.shape.latent_dim, device=self.device)

    def _labels(self) -> torch.Tensor | None:
        if not self.conditional:
            return None
        idx = torch.randint(len(self.data), (self.cfg.batch_size,), device=self.device)
        return self.data.y[idx]

    def critic_step(self) -> torch.Tensor:
        cfg = self.cfg
        real, labels = self.data.batch(cfg.batch_size)
        labels = labels if self.conditional else None
        with torch.no_grad(), self.autocast:
            fake = self.generator(self._noise(), labels)
        with self.autocast:
            real_scores = upcast(self.critic(real, labels))
            fake_scores = upcast(self.critic(fake, labels))
        # The penalty's double backward runs in fp32 whatever the precision: bf16 gradients of the
        # critic w.r.t. its input are too coarse for a norm compared with 1.
        return self._update_critic(real_scores, fake_scores, self._penalty(real, upcast(fake), labels))

    def _penalty(self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None,
                 eps: torch.Tensor | None = None) -> torch.Tensor:
        """The gradient penalty of a gp/lp critic (eps: the interpolation draws, else drawn here); 0 otherwise."""
        if not self.cfg.uses_penalty:
            return torch.zeros((), device=self.device)
        return losses.gradient_penalty(self.critic, real, fake, labels, one_sided=self.cfg.loss == "lp", eps=eps)

    def _update_critic(self, real_scores: torch.Tensor, fake_scores: torch.Tensor,
                       penalty: torch.Tensor) -> torch.Tensor:
        """The critic's loss, optimiser step and clipping, from its scores and penalty; returns the
        step's (loss, Wasserstein estimate, penalty)."""
        cfg = self.cfg
        loss = losses.critic_loss(real_scores, fake_scores)
        if cfg.uses_penalty:
            loss = loss + cfg.gp_weight * penalty
        self.opt_c.zero_grad(set_to_none=False)
        loss.backward()
        distributed.average_gradients(self.opt_c)
        self.opt_c.step()
        if cfg.loss == "clip":
            losses.clip_weights(self.critic, cfg.clip_value)  # after the step, as in Algorithm 1
        return torch.stack([loss.detach(), losses.wasserstein_estimate(real_scores, fake_scores).detach(),
                            penalty.detach()])

    def generator_step(self) -> torch.Tensor:
        labels = self._labels()
        self.critic.requires_grad_(False)  # no critic gradients needed: saves a third of the backward
        with self.autocast:
            fake = self.generator(self._noise(), labels)
            loss = losses.generator_loss(upcast(self.critic(fake, labels)))
        self.opt_g.zero_grad(set_to_none=False)
        loss.backward()
        distributed.average_gradients(self.opt_g)
        self.opt_g.step()
        self.critic.requires_grad_(True)
        return loss.detach()

    def extra_critic_steps(self, count: int) -> None:
        """Critic updates before a boosted generator step; their losses are not logged."""
        for _ in range(count):
            self.critic_step()

    def __call__(self) -> None:
        critic_stats = torch.stack([self.critic_step() for _ in range(self.cfg.critic_steps)]).mean(0)
        self._accumulate(critic_stats, self.generator_step())

    def _accumulate(self, critic_stats: torch.Tensor, g_loss: torch.Tensor) -> None:
        # order matches STAT_NAMES
        self.sums.add_(torch.stack([critic_stats[0], g_loss, critic_stats[1], critic_stats[2]]))

    def read_and_reset(self, count: int) -> dict[str, float]:
        # the one host sync per logging interval; in N processes, the mean over all of them
        values = distributed.average_(self.sums / max(count, 1)).tolist()
        self.sums.zero_()
        return dict(zip(STAT_NAMES, values))


# ---------------------------------------------------------------------------------------------
# The trainer


@dataclass
class Trainer:
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

    @classmethod
    def build(cls, cfg: TrainConfig, fast: bool = False, data: Data | None = None) -> "Trainer":
        validate(cfg)
        device = distributed.resolve_device(cfg.device)
        # seed + rank: every process draws its own batches and noise (rank 0's streams are a single
        # process's); the models are made equal below.
        seed_everything(cfg.seed + distributed.rank())
        set_precision(cfg.precision, cfg.deterministic)
        if data is None:
            data = load_dataset(cfg.dataset, split="train", data_path=cfg.data, image_size=cfg.image_size or None,
                                channels=cfg.channels or None, skip_bad_images=cfg.skip_bad_images)
        if cfg.conditional and data.y is None:
            raise UserError(f"--conditional needs a labelled dataset; {cfg.dataset} ({data.source}) has no classes")
        if cfg.conditional and data.num_classes < 2:
            raise UserError(f"--conditional: {cfg.dataset} ({data.source}) has only one class; conditional "
                            "training needs at least 2 (or drop --conditional)")
        data = data.to(device)
        shape = model_shape(cfg, data)
        generator, critic = build_models(cfg.model, shape, penalty=cfg.uses_penalty)
        generator, critic = generator.to(device), critic.to(device)
        distributed.broadcast_modules(generator, critic)
        opt_g, opt_c = make_optimizers(cfg, generator, critic, device, fast=fast)
        fixed_z, fixed_labels = fixed_inputs(cfg, shape, device)
        return cls(cfg, device, data, shape, generator, critic, opt_g, opt_c, fixed_z, fixed_labels)

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
        }
        if distributed.world_size() > 1:
            # Every process's own streams, so a resume with as many processes continues each of them.
            state["rng_ranks"] = distributed.all_gather_object(rng)
        return state

    def load_state_dict(self, state: dict, source: Path) -> None:
        """Restore everything that shapes the rest of the trajectory; a mismatch names `source`."""
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
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            raise UserError(f"{source}: checkpoint does not match this model/config ({first_line(exc, 200)})") from None
        self.fixed_z, self.fixed_labels, self.step, self.elapsed_s = fixed_z, fixed_labels, step, elapsed_s
        self.pending = pending

    # --- samples ----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        was_training = self.generator.training
        self.generator.eval()
        out = self.generator(z, labels).float()
        self.generator.train(was_training)
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


def save_samples(trainer: Trainer, path: Path) -> None:
    """The fixed-noise grid (images) or a scatter of generated vs real points with the critic's contours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fake = trainer.generate(trainer.fixed_z, trainer.fixed_labels)
    if trainer.data.is_points:
        from wgan.report import save_points_figure

        save_points_figure(path, trainer, fake)
        return
    from torchvision.utils import make_grid, save_image

    grid = make_grid(to_uint8_images(fake).cpu(), nrow=grid_columns(trainer.shape, fake.shape[0]), padding=2,
                     pad_value=255)
    save_image(grid.float() / 255.0, path)


def export_generator(trainer: Trainer, path: Path) -> None:
    """generator.safetensors: the generator's weights with the config and shape in its metadata."""
    ckpt.save_generator(path, trainer.generator.state_dict(), trainer.cfg.to_dict(), trainer.shape.__dict__,
                        trainer.step)


# ---------------------------------------------------------------------------------------------
# The loop


def boost_critic_steps(cfg: TrainConfig, step: int) -> int:
    """How many critic updates to add before generator step `step` (counted from 0) under the boost
    schedule: `if gen_iterations < 25 or gen_iterations % 500 == 0: Diters = 100` in the WGAN code."""
    if cfg.critic_steps_boosted <= cfg.critic_steps:
        return 0
    boosted = step < cfg.boost_first_steps or (cfg.boost_every_steps > 0 and step % cfg.boost_every_steps == 0)
    return cfg.critic_steps_boosted - cfg.critic_steps if boosted else 0


def generator_iteration(step_fn, cfg: TrainConfig, step: int) -> int:
    """Run generator step `step` of `step_fn`, after the boost schedule's extra critic updates;
    return how many extra critic updates ran."""
    extra = boost_critic_steps(cfg, step)
    if extra:
        step_fn.extra_critic_steps(extra)
    step_fn()
    return extra


def make_step(trainer: Trainer, fast: bool):
    """The step to run, and a note when the fast path was asked for but cannot be used."""
    def step_args():
        return (trainer.cfg, trainer.generator, trainer.critic, trainer.opt_g, trainer.opt_c, trainer.data,
                trainer.device)

    if not fast:
        return WganStep(*step_args()), None
    from wgan.fast import CudaGraphStep, FusedWganStep, graph_unsupported_reason, use_channels_last

    reason = graph_unsupported_reason(trainer)
    if reason is None:
        use_channels_last(trainer)  # before the step is built: it replaces trainer.data
        return CudaGraphStep(FusedWganStep(*step_args())), None
    return FusedWganStep(*step_args()), f"CUDA graph off: {reason}; using the fused eager step"


def describe_step(step_fn, cfg: TrainConfig, device: torch.device, dry_run: bool) -> str:
    """What runs each generator iteration, for log.txt: the fast path or not, and why not."""
    from wgan.fast import CudaGraphStep, FusedWganStep

    if isinstance(step_fn, CudaGraphStep):
        return f"fast: the fused iteration replayed from one CUDA graph ({cfg.precision})"
    if isinstance(step_fn, FusedWganStep):
        return f"fused eager ({effective_precision(cfg.precision, device)})"
    why = ("the fast path is for CUDA" if device.type != "cuda" else "--no-fast" if not cfg.fast else
           "a dry run" if dry_run else "")
    return f"plain eager ({effective_precision(cfg.precision, device)}{'; ' + why if why else ''})"


def check_finite_losses(stats: dict[str, float], first_step: int, last_step: int) -> None:
    """Raise TrainingDiverged if a loss summed over steps first_step..last_step is NaN or infinite."""
    bad = [k for k, v in stats.items() if not math.isfinite(v)]
    if bad:
        where = f"at step {last_step}" if first_step == last_step else f"between steps {first_step} and {last_step}"
        raise TrainingDiverged(f"{' and '.join(bad)} became {stats[bad[0]]} {where}")


def check_finite_parameters(trainer: Trainer) -> None:
    """A finite loss can still be followed by an update to NaN; never write such weights to a checkpoint."""
    for name, module in (("generator", trainer.generator), ("critic", trainer.critic)):
        if not torch.stack([p.isfinite().all() for p in module.parameters()]).all():  # one sync per checkpoint
            raise TrainingDiverged(f"the {name}'s parameters became NaN or infinite at step {trainer.step}")


def _resume_problem(cfg: TrainConfig, point: ckpt.ResumePoint, total_steps: int) -> str | None:
    diffs = ckpt.config_differences(point.config, cfg.to_dict())
    if diffs:
        allowed = ", ".join("--" + n.replace("_", "-") for n in ckpt.RESUMABLE_OPTIONS)
        return (f"{point.checkpoint}: written with other options ({'; '.join(diffs[:4])}); on resume only "
                f"{allowed} may change")
    if point.step > total_steps:
        return f"{point.checkpoint}: at step {point.step}, past --steps {total_steps}; pass --steps {point.step} or more"
    return None


def train(cfg: TrainConfig, *, resume: Path | ckpt.ResumePoint | None = None, dry_run: bool = False,
          progress: bool = True) -> Path:
    """Train a WGAN as `cfg` says; returns the run directory.

    `resume`: a run directory (its newest checkpoint), one of its checkpoint files, or an opened
    ResumePoint. The checkpoint is verified before anything in the run directory changes.
    Under torchrun every process calls this; they train together and rank 0 writes the run directory.
    """
    validate(cfg)
    with distributed.process_group(distributed.resolve_device(cfg.device)):
        return _train(cfg, resume=resume, dry_run=dry_run, progress=progress)


def _train(cfg: TrainConfig, *, resume: Path | ckpt.ResumePoint | None, dry_run: bool, progress: bool) -> Path:
    from tqdm import tqdm

    from wgan import report

    resume = ckpt.open_checkpoint(Path(resume)) if isinstance(resume, (str, Path)) else resume
    device = distributed.resolve_device(cfg.device)
    fast = cfg.fast and device.type == "cuda" and not dry_run
    total_steps = 2 if dry_run else cfg.steps
    main, world = distributed.is_main(), distributed.world_size()
    # What every machine read must agree before anyone trains or writes (--data may be a local path).
    distributed.require_same(None if resume is None else str(resume.checkpoint), "the checkpoint to resume from",
                             "every machine must see the same --runs-dir (shared storage) to resume")
    options = json.dumps({k: v for k, v in cfg.to_dict().items() if k != "data"}, sort_keys=True)
    distributed.require_same(hashlib.sha256(options.encode()).hexdigest()[:12], "the training options (digest)",
                             "start every process with the same options")
    problem = None if resume is None else _resume_problem(cfg, resume, total_steps)
    if problem:
        raise UserError(problem)
    trainer = Trainer.build(cfg, fast=fast)
    say = print if main else (lambda *args, **kwargs: None)
    # The metrics' shared parts (the classifier, the test split) are built before the run directory, so a
    # missing test split or a mismatched classifier leaves no half-made run behind. Their notes are printed
    # at once (training a classifier takes a minute) and logged once log.txt exists.
    early_notes: list[str] = []
    log = None

    def log_and_say(msg: str) -> None:
        say(msg)
        if log is None:
            early_notes.append(msg)
        else:
            log.line(msg)

    evaluate = None
    if cfg.eval_metrics and not dry_run and main:  # rank 0 alone measures and writes
        from wgan.metrics import training_evaluator

        evaluate = training_evaluator(cfg, trainer.data, trainer.shape, device, note=log_and_say)

    if resume is not None:
        trainer.load_state_dict(resume.state, resume.checkpoint)
        run_dir = resume.run_dir
        superseded = []
        if main:  # only now that the checkpoint has loaded does anything in the run directory change
            ckpt.remove_stale_temp_files(run_dir / rundir.CHECKPOINTS)
            superseded = ckpt.set_aside_newer(run_dir / rundir.CHECKPOINTS, resume.step)
            rundir.write_config(cfg.to_dict(), run_dir)  # the run length may have changed
    else:
        superseded, run_dir = [], None
        if main:
            name = cfg.preset if cfg.preset != "custom" else f"{cfg.dataset}-{cfg.loss}"
            with writing("--runs-dir", cfg.runs_dir):
                run_dir = rundir.next_run_dir(Path(cfg.runs_dir), name)
                rundir.write_config(cfg.to_dict(), run_dir)
        run_dir = Path(distributed.broadcast_object(None if run_dir is None else str(run_dir)))
    log = RunLog(run_dir, cfg.tensorboard, resume_step=trainer.step if resume is not None else None) if main else NullLog()
    batch = f"batch={cfg.batch_size}" if world == 1 else \
        f"batch={cfg.batch_size} per process x {world} processes = {world * cfg.batch_size} (effective)"
    log.line(f"{rundir.RESUMED + ' ' + str(resume.checkpoint) if resume else rundir.STARTED}: preset={cfg.preset} "
             f"dataset={cfg.dataset} ({len(trainer.data)} samples from {trainer.data.source}) model={cfg.model} "
             f"loss={cfg.loss} device={device} precision={effective_precision(cfg.precision, device)} "
             f"{batch}")
    saved_world = len(resume.state.get("rng_ranks") or [None]) if resume is not None else world
    if saved_world != world:
        log.line(f"the checkpoint was written by {saved_world} process(es), this run has {world}: the effective "
                 f"batch is now {world * cfg.batch_size}, and each process's random draws restart from "
                 f"(seed, rank, step)")
    for data_note in trainer.data.notes:
        log.line(data_note)
        say(data_note)
    for early_note in early_notes:
        log.line(early_note)
    for path in superseded:
        log.line(f"{path.name}: set aside, newer than the checkpoint this run resumed from")

    step_fn, note = make_step(trainer, fast)
    if note:
        log.line(note)
        say(note)
    log.line(f"step: {describe_step(step_fn, cfg, device, dry_run)}")

    last_good = {"path": None if resume is None else resume.checkpoint}

    def kept() -> str:
        return (f"the last good checkpoint {last_good['path']} is intact" if last_good["path"] is not None
                else "no checkpoint had been written yet")

    def save_ckpt() -> None:
        check_finite_parameters(trainer)
        if not distributed.parameters_identical(trainer.generator, trainer.critic):
            raise RuntimeError(f"the processes' parameters differ at step {trainer.step}: gradients were not "
                               "averaged alike on every process")
        trainer.elapsed_s = time.perf_counter() - t_start
        trainer.pending = {"steps": steps_since_read, "sums": step_fn.sums.detach().cpu().clone(),
                           "seconds": time.perf_counter() - t_last}
        path = run_dir / rundir.CHECKPOINTS / ckpt.checkpoint_name(trainer.step)
        state = trainer.state_dict()  # on every process: it gathers their random states
        if main:  # rank 0's batch-norm running statistics are the ones saved (each process keeps its own)
            ckpt.save_checkpoint(path, state)
            ckpt.prune_checkpoints(run_dir / rundir.CHECKPOINTS, cfg.keep_checkpoints)
        last_good["path"] = path

    def sample(at: int) -> None:
        path = rundir.sample_path(run_dir, at)
        save_samples(trainer, path)
        log.image(at, path)

    if trainer.step == 0 and cfg.sample_every_steps and main:
        sample(0)

    # "asked": a signal arrived here; "signal": the loop stops. One process stops at the next step; N
    # processes stop together at the next read of the losses, where they agree (a collective).
    stop = {"signal": None, "asked": None}

    def on_signal(signum, frame):
        if stop["asked"] is not None:
            raise KeyboardInterrupt  # asked twice: stop now; the last checkpoint stays as it is
        stop["asked"] = signum
        if world == 1:
            stop["signal"] = signum

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    # Into a log file or a pipe every redraw is another line (tqdm's 0.1 s would add ten a second): once a
    # minute there; log.txt has the losses anyway.
    bar = tqdm(total=total_steps, initial=trainer.step, disable=not progress or not main, unit="it",
               dynamic_ncols=True, mininterval=0.1 if sys.stderr.isatty() else 60)
    t_last, steps_since_read = time.perf_counter(), 0
    extra_critic_images = 0  # from boosted steps (--critic-steps-boosted) since the last read
    t_start = t_last - trainer.elapsed_s
    if trainer.pending is not None:
        step_fn.sums.copy_(trainer.pending["sums"])
        steps_since_read, t_last = trainer.pending["steps"], t_last - trainer.pending["seconds"]

    def read_and_log() -> None:
        """The one host sync per interval: read the summed losses, check them, log them."""
        nonlocal t_last, steps_since_read, extra_critic_images
        stats = step_fn.read_and_reset(steps_since_read)
        now = time.perf_counter()
        elapsed, t_last = now - t_last, now
        check_finite_losses(stats, trainer.step - steps_since_read + 1, trainer.step)
        # a clipping run has no penalty: leave it out rather than log a zero that reads as a measurement
        logged = {k: round(v, 6) for k, v in stats.items() if k != "penalty" or cfg.uses_penalty}
        record = {"step": trainer.step, "time_s": round(now - t_start, 3), **logged,
                  "critic_images_per_s": round((steps_since_read * cfg.critic_steps * cfg.batch_size + extra_critic_images)
                                               * world / elapsed, 1)}
        log.record(record)
        bar.set_postfix(W=f"{stats['wasserstein']:.3f}", loss_c=f"{stats['loss_critic']:.3f}",
                        loss_g=f"{stats['loss_generator']:.3f}", img_s=f"{record['critic_images_per_s']:.0f}")
        steps_since_read = extra_critic_images = 0

    try:
        while trainer.step < total_steps and stop["signal"] is None:
            extra_critic_images += generator_iteration(step_fn, cfg, trainer.step) * cfg.batch_size
            trainer.step += 1
            steps_since_read += 1
            bar.update(1)
            at = trainer.step
            last = at == total_steps
            want_ckpt = cfg.checkpoint_every_steps and (at % cfg.checkpoint_every_steps == 0)
            # Checkpoint steps always read the sums: a resumed run then starts with empty sums, as
            # this one goes on, and no checkpoint follows an unchecked interval.
            if at % cfg.log_every_steps == 0 or last or want_ckpt:
                read_and_log()
                if world > 1:
                    stop["signal"] = distributed.max_over_ranks(stop["asked"] or 0) or None
            if cfg.sample_every_steps and (at % cfg.sample_every_steps == 0 or last) and main:
                sample(at)
            if evaluate and (last or (cfg.eval_every_steps and at % cfg.eval_every_steps == 0)):
                t_eval = time.perf_counter()
                log.record({"step": at, "time_s": round(t_eval - t_start, 3), **evaluate(trainer.generator)})
                t_last += time.perf_counter() - t_eval  # evaluation time is not training throughput
            if want_ckpt or last:
                save_ckpt()
        if stop["signal"] is not None:
            if steps_since_read:  # checked, not logged: the checkpoint carries them to the next record
                pending = dict(zip(STAT_NAMES, (step_fn.sums / steps_since_read).tolist()))
                check_finite_losses(pending, trainer.step - steps_since_read + 1, trainer.step)
            save_ckpt()
            log.line(f"{rundir.STOPPED_BY_SIGNAL} {stop['signal']} at step {trainer.step}; checkpoint written")
            say(f"stopped at step {trainer.step}; checkpoint written. Resume: wgan train --resume {run_dir}")
        trainer.elapsed_s = time.perf_counter() - t_start
    except TrainingDiverged as exc:
        message = f"{exc}; stopped without writing a checkpoint: {kept()}"
        log.line(f"{rundir.DIVERGED} {message}")
        log.close()
        raise TrainingDiverged(message) from None
    except OSError as exc:  # a full disk or a lost mount on a rented machine: say so, and how to go on
        where = f" {exc.filename}" if exc.filename else ""
        resume = f"; make room and resume: wgan train --resume {run_dir}" if last_good["path"] is not None else ""
        message = f"could not write{where} at step {trainer.step} ({os_reason(exc)}); {kept()}{resume}"
        try:
            log.line(f"stopped: {message}")  # "stopped: could not write": rundir.WRITE_FAILED
            log.close()
        except OSError:
            pass  # the log is on the same full disk
        raise UserError(message) from None
    finally:
        bar.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)
    if not main:
        return run_dir
    try:
        export_generator(trainer, run_dir / rundir.GENERATOR)
    except OSError as exc:
        raise UserError(f"could not write {run_dir / rundir.GENERATOR} ({os_reason(exc)}); "
                        f"the checkpoint {last_good['path']} is intact: make room, then "
                        f"wgan export --run {run_dir} --out {run_dir / rundir.GENERATOR}") from None
    agreed = f"; parameters identical on all {world} processes" if world > 1 else ""
    log.line(f"{'stopped at step' if stop['signal'] else rundir.FINISHED} {trainer.step} "
             f"({trainer.elapsed_s:.1f} s of training){agreed}")
    log.close()
    try:
        report.build_report(run_dir)
    except Exception as exc:  # a plot must never cost the user a trained model
        print(f"report: could not build the report ({exc}); run `wgan report --run {run_dir}`")
    return run_dir
