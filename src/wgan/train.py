"""The training loop: one code path for CPU and CUDA (and, later, N processes).

One *step* is one generator iteration: `critic_steps` critic updates, each on a fresh real batch with
fresh noise (and a fresh per-sample epsilon for the penalty), then one generator update. The step
keeps its running sums of the losses on the device; the loop reads them back every
`log_every_steps`, so no step waits on the host. On CUDA the whole step can be captured in one CUDA
graph and replayed (see `CudaGraphStep`).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wgan import checkpoint as ckpt
from wgan import losses
from wgan.config import TrainConfig, validate
from wgan.data import Data, load_dataset, to_uint8_images
from wgan.errors import UserError
from wgan.models import Critic, Generator, ModelShape, build_models

STAT_NAMES = ("loss_critic", "loss_generator", "wasserstein", "penalty")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


# ---------------------------------------------------------------------------------------------
# Set-up helpers


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
        extra = dict(capturable=True, foreach=True) if fast else {}
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
        rows = max(1, round(cfg.grid_samples / shape.num_classes))
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
        bf16 = cfg.precision == "bf16" and device.type == "cuda"
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
            real_scores = self.critic(real, labels).float()
            fake_scores = self.critic(fake, labels).float()
        loss = losses.critic_loss(real_scores, fake_scores)
        if cfg.uses_penalty:
            # The penalty's double backward runs in fp32 whatever the precision: bf16 gradients of the
            # critic w.r.t. its input are too coarse for a norm compared with 1.
            penalty = losses.gradient_penalty(self.critic, real, fake.float(), labels, one_sided=cfg.loss == "lp")
            loss = loss + cfg.gp_weight * penalty
        else:
            penalty = torch.zeros((), device=self.device)
        self.opt_c.zero_grad(set_to_none=False)
        loss.backward()
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
            loss = losses.generator_loss(self.critic(fake, labels).float())
        self.opt_g.zero_grad(set_to_none=False)
        loss.backward()
        self.opt_g.step()
        self.critic.requires_grad_(True)
        return loss.detach()

    def __call__(self) -> None:
        critic_stats = torch.stack([self.critic_step() for _ in range(self.cfg.critic_steps)]).mean(0)
        g_loss = self.generator_step()
        # order matches STAT_NAMES
        self.sums.add_(torch.stack([critic_stats[0], g_loss, critic_stats[1], critic_stats[2]]))

    def read_and_reset(self, count: int) -> dict[str, float]:
        values = (self.sums / max(count, 1)).tolist()  # the one host sync per logging interval
        self.sums.zero_()
        return dict(zip(STAT_NAMES, values))


# ---------------------------------------------------------------------------------------------
# Run directory


def next_run_dir(runs_dir: Path, name: str) -> Path:
    runs_dir.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name[:5]) for p in runs_dir.iterdir() if p.is_dir() and p.name[:5].isdigit()]
    run = runs_dir / f"{(max(numbers) + 1) if numbers else 0:05d}-{name}"
    run.mkdir()
    return run


class RunLog:
    """log.txt, metrics.jsonl and TensorBoard, written by one process (rank 0)."""

    def __init__(self, run_dir: Path, tensorboard: bool, resume_step: int | None = None):
        self.run_dir = run_dir
        self.metrics_path = run_dir / "metrics.jsonl"
        if resume_step is not None and self.metrics_path.exists():
            # Drop records past the checkpoint we resume from, so steps are not logged twice.
            kept = []
            for line in self.metrics_path.read_text().splitlines():
                try:
                    if json.loads(line).get("step", 0) <= resume_step:
                        kept.append(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill mid-write
            ckpt.atomic_write(self.metrics_path, lambda f: f.write("".join(k + "\n" for k in kept).encode()))
        self.text = open(run_dir / "log.txt", "a", buffering=1)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step)
            except ImportError:
                self.line("tensorboard is not installed: TensorBoard logging is off")

    def line(self, msg: str) -> None:
        self.text.write(time.strftime("%Y-%m-%d %H:%M:%S ") + msg + "\n")

    def record(self, record: dict) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, record["step"])

    def close(self) -> None:
        self.text.close()
        if self.tb is not None:
            self.tb.close()


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

    @classmethod
    def build(cls, cfg: TrainConfig, fast: bool = False) -> "Trainer":
        validate(cfg)
        device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        set_precision(cfg.precision, cfg.deterministic)
        image_size = cfg.image_size or None
        channels = cfg.channels or None
        data = load_dataset(cfg.dataset, split="train", data_path=cfg.data, image_size=image_size, channels=channels)
        if cfg.conditional and (data.y is None or data.num_classes < 2):
            raise UserError(f"--conditional needs a labelled dataset; {cfg.dataset} ({data.source}) has no classes")
        data = data.to(device)
        shape = model_shape(cfg, data)
        generator, critic = build_models(cfg.model, shape, penalty=cfg.uses_penalty)
        generator, critic = generator.to(device), critic.to(device)
        opt_g, opt_c = make_optimizers(cfg, generator, critic, device, fast=fast)
        fixed_z, fixed_labels = fixed_inputs(cfg, shape, device)
        return cls(cfg, device, data, shape, generator, critic, opt_g, opt_c, fixed_z, fixed_labels)

    # --- state for checkpoints -------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "format": "wgan-checkpoint-1",
            "step": self.step,
            "config": json.dumps(self.cfg.to_dict()),
            "shape": json.dumps(self.shape.__dict__),
            "generator": self.generator.state_dict(),
            "critic": self.critic.state_dict(),
            "opt_generator": self.opt_g.state_dict(),
            "opt_critic": self.opt_c.state_dict(),
            "fixed_z": self.fixed_z.cpu(),
            "fixed_labels": None if self.fixed_labels is None else self.fixed_labels.cpu(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": _numpy_rng_to_tensor(),
                "python": _python_rng_to_tensor(),
            },
        }

    def load_state_dict(self, state: dict, source: Path) -> None:
        try:
            self.generator.load_state_dict(state["generator"])
            self.critic.load_state_dict(state["critic"])
            self.opt_g.load_state_dict(state["opt_generator"])
            self.opt_c.load_state_dict(state["opt_critic"])
        except (KeyError, RuntimeError, ValueError) as exc:
            msg = str(exc).strip().splitlines()[0][:200]
            raise UserError(f"{source}: checkpoint does not match this model/config ({msg})") from None
        self.step = int(state["step"])
        self.fixed_z = state["fixed_z"].to(self.device)
        if state.get("fixed_labels") is not None:
            self.fixed_labels = state["fixed_labels"].to(self.device)
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if torch.cuda.is_available() and rng["cuda"]:
            torch.cuda.set_rng_state_all(rng["cuda"])
        _numpy_rng_from_tensor(rng["numpy"])
        _python_rng_from_tensor(rng["python"])

    # --- samples ----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        was_training = self.generator.training
        self.generator.eval()
        out = self.generator(z, labels).float()
        self.generator.train(was_training)
        return out


def _numpy_rng_to_tensor() -> torch.Tensor:
    # numpy's state as a uint8 tensor of its JSON, so the checkpoint holds tensors and primitives only
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    blob = json.dumps([kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]).encode()
    return torch.frombuffer(bytearray(blob), dtype=torch.uint8)


def _numpy_rng_from_tensor(t: torch.Tensor) -> None:
    kind, keys, pos, has_gauss, cached = json.loads(bytes(t.tolist()).decode())
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def _python_rng_to_tensor() -> torch.Tensor:
    version, internal, gauss = random.getstate()
    return torch.frombuffer(bytearray(json.dumps([version, list(internal), gauss]).encode()), dtype=torch.uint8)


def _python_rng_from_tensor(t: torch.Tensor) -> None:
    version, internal, gauss = json.loads(bytes(t.tolist()).decode())
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
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in trainer.generator.state_dict().items()}
    meta = {"format": "wgan-generator-1", "config": json.dumps(trainer.cfg.to_dict()),
            "shape": json.dumps(trainer.shape.__dict__), "step": str(trainer.step)}
    blob = save(tensors, metadata=meta)
    ckpt.atomic_write(path, lambda f: f.write(blob))


# ---------------------------------------------------------------------------------------------
# The loop


def make_step(trainer: Trainer, fast: bool):
    step = WganStep(trainer.cfg, trainer.generator, trainer.critic, trainer.opt_g, trainer.opt_c, trainer.data,
                    trainer.device)
    if fast:
        from wgan.fast import CudaGraphStep, graph_unsupported_reason

        reason = graph_unsupported_reason(trainer)
        if reason is None:
            return CudaGraphStep(step), None
        return step, f"fast path off: {reason}; using the eager step"
    return step, None


def train(cfg: TrainConfig, *, resume: Path | None = None, dry_run: bool = False, progress: bool = True) -> Path:
    """Train a WGAN as `cfg` says; returns the run directory."""
    from tqdm import tqdm

    from wgan import report

    validate(cfg)
    device = resolve_device(cfg.device)
    fast = cfg.fast and device.type == "cuda" and not dry_run
    trainer = Trainer.build(cfg, fast=fast)
    total_steps = 2 if dry_run else cfg.steps

    if resume is not None:
        run_dir = Path(resume)
        checkpoints = ckpt.list_checkpoints(run_dir / "checkpoints")
        if not checkpoints:
            raise UserError(f"{run_dir}: no checkpoints to resume from")
        state = ckpt.load_checkpoint(checkpoints[-1])
        trainer.load_state_dict(state, checkpoints[-1])
    else:
        run_dir = next_run_dir(Path(cfg.runs_dir), cfg.preset if cfg.preset != "custom" else f"{cfg.dataset}-{cfg.loss}")
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    log = RunLog(run_dir, cfg.tensorboard, resume_step=trainer.step if resume is not None else None)
    log.line(f"{'resumed at step ' + str(trainer.step) if resume else 'started'}: preset={cfg.preset} "
             f"dataset={cfg.dataset} ({len(trainer.data)} samples from {trainer.data.source}) model={cfg.model} "
             f"loss={cfg.loss} device={device} precision={cfg.precision}")

    step_fn, note = make_step(trainer, fast)
    if note:
        log.line(note)
        print(note)

    evaluate = None
    if cfg.eval_metrics and not dry_run:
        from wgan.metrics import training_evaluator

        def say(msg: str) -> None:
            log.line(msg)
            print(msg)

        evaluate = training_evaluator(cfg, trainer.data, trainer.shape, device, note=say)

    def save_ckpt() -> None:
        ckpt.save_checkpoint(run_dir / "checkpoints" / ckpt.checkpoint_name(trainer.step), trainer.state_dict())
        ckpt.prune_checkpoints(run_dir / "checkpoints", cfg.keep_checkpoints)

    if trainer.step == 0 and cfg.sample_every_steps:
        save_samples(trainer, run_dir / "samples" / "step-00000000.png")

    stop = {"signal": None}

    def on_signal(signum, frame):
        stop["signal"] = signum

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    bar = tqdm(total=total_steps, initial=trainer.step, disable=not progress, unit="it", dynamic_ncols=True)
    t_last, steps_since_read = time.perf_counter(), 0
    t_start = t_last
    try:
        while trainer.step < total_steps and stop["signal"] is None:
            step_fn()
            trainer.step += 1
            steps_since_read += 1
            bar.update(1)
            at = trainer.step
            last = at == total_steps
            want_ckpt = cfg.checkpoint_every_steps and (at % cfg.checkpoint_every_steps == 0)
            if at % cfg.log_every_steps == 0 or last or want_ckpt:
                stats = step_fn.read_and_reset(steps_since_read)
                now = time.perf_counter()
                elapsed, t_last = now - t_last, now
                bad = [k for k, v in stats.items() if not math.isfinite(v)]
                if bad:
                    raise TrainingDiverged(f"step {at}: {', '.join(bad)} became {stats[bad[0]]}")
                record = {"step": at, "time_s": round(now - t_start, 3), **{k: round(v, 6) for k, v in stats.items()},
                          "critic_images_per_s": round(steps_since_read * cfg.critic_steps * cfg.batch_size / elapsed, 1)}
                log.record(record)
                bar.set_postfix(W=f"{stats['wasserstein']:.3f}", loss_c=f"{stats['loss_critic']:.3f}",
                                loss_g=f"{stats['loss_generator']:.3f}", img_s=f"{record['critic_images_per_s']:.0f}")
                steps_since_read = 0
            if cfg.sample_every_steps and (at % cfg.sample_every_steps == 0 or last):
                save_samples(trainer, run_dir / "samples" / f"step-{at:08d}.png")
            if evaluate and (last or (cfg.eval_every_steps and at % cfg.eval_every_steps == 0)):
                t_eval = time.perf_counter()
                log.record({"step": at, "time_s": round(t_eval - t_start, 3), **evaluate(trainer.generator)})
                t_last += time.perf_counter() - t_eval  # evaluation time is not training throughput
            if want_ckpt or last:
                save_ckpt()
        if stop["signal"] is not None:
            if steps_since_read:
                step_fn.read_and_reset(steps_since_read)
            save_ckpt()
            log.line(f"stopped by signal {stop['signal']} at step {trainer.step}; checkpoint written")
            print(f"stopped at step {trainer.step}; checkpoint written. Resume: wgan train --resume {run_dir}")
    except TrainingDiverged as exc:
        log.line(f"diverged: {exc}; the last good checkpoint is kept")
        raise
    finally:
        bar.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)
    export_generator(trainer, run_dir / "generator.safetensors")
    log.line(f"finished at step {trainer.step} in {time.perf_counter() - t_start:.1f} s")
    log.close()
    try:
        report.build_report(run_dir)
    except Exception as exc:  # a plot must never cost the user a trained model
        print(f"report: could not build the report ({exc}); run `wgan report --run {run_dir}`")
    return run_dir
