"""The paper's step: one generator iteration of WGAN (Algorithm 1 of Arjovsky et al.) and WGAN-GP
(Algorithm 1 of Gulrajani et al.).

One *step* is one generator iteration: `critic_steps` critic updates, each on a fresh real batch with
fresh noise (and a fresh per-sample epsilon for the penalty), then one generator update. The step
keeps its running sums of the losses on the device; the loop reads them back every
`log_every_steps`, so no step waits on the host (and on CUDA the whole step can be captured in one
CUDA graph: see training/fast.py).

In N processes every process runs the same step on its own batches, and the gradients are averaged
over the processes before each optimiser step (wgan.distributed).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from wgan import augment, distributed, losses
from wgan.config import TrainConfig
from wgan.data import Data
from wgan.models import Critic, Generator, power_iteration_paused
from wgan.training.ema import GeneratorEMA
from wgan.training.precision import Precision, autocast_region, resolve_precision
from wgan.training.schedule import LinearDecay

STAT_NAMES = ("loss_critic", "loss_generator", "wasserstein", "penalty")


class WganStep:
    """One generator iteration; returns nothing and accumulates its losses into `self.sums`.

    After the generator's update it updates the generator's moving average (`ema`) and moves the
    learning rates one iteration on (`schedule`), where the run has them. With --augment, every
    image the critic sees passes through DiffAugment first (wgan.augment), the interpolates of the
    penalty lying between the augmented real and generated images the critic was shown.

    `precision`: what it computes in (wgan.training.precision), else resolved from cfg.precision."""

    def __init__(self, cfg: TrainConfig, generator: Generator, critic: Critic, opt_g, opt_c, data: Data,
                 device: torch.device, *, ema: GeneratorEMA | None = None, schedule: LinearDecay | None = None,
                 precision: Precision | None = None):
        self.cfg, self.generator, self.critic, self.opt_g, self.opt_c, self.data = cfg, generator, critic, opt_g, opt_c, data
        self.conditional = generator.shape.conditional
        self.device = device
        self.ema, self.schedule = ema, schedule
        self.augmentations = cfg.augmentations
        self.sums = torch.zeros(len(STAT_NAMES), device=device)
        self.precision = precision or resolve_precision(cfg.precision, device)
        self.autocast = autocast_region(self.precision, device)
        # On a CPU the penalty's critic passes (a forward and a double backward, most of a critic update's
        # arithmetic) run under autocast too, or bf16 would hardly pay there; its gradient norm stays fp32
        # (losses.gradient_penalty). On CUDA the penalty runs whole in fp32, as benchmarked.
        self.penalty_autocast = self.autocast if device.type == "cpu" else nullcontext()

    def _noise(self, n: int | None = None) -> torch.Tensor:
        return torch.randn(n or self.cfg.batch_size, self.generator.shape.latent_dim, device=self.device)

    def _labels(self, n: int) -> torch.Tensor | None:
        if not self.conditional:
            return None
        idx = torch.randint(len(self.data), (n,), device=self.device)
        return self.data.y[idx]

    def _augment_draws(self, shape) -> list:
        return augment.draw(self.augmentations, shape, self.device) if self.augmentations else []

    def critic_step(self) -> torch.Tensor:
        cfg = self.cfg
        real, labels = self.data.batch(cfg.batch_size)
        labels = labels if self.conditional else None
        with torch.no_grad(), self.autocast:
            fake = self.generator(self._noise(), labels)
        real = augment.apply(real, self._augment_draws(real.shape))
        fake = augment.apply(fake, self._augment_draws(fake.shape))
        with self.autocast:
            real_scores, real_logits = self._scores(real, labels)
            with power_iteration_paused(self.critic) if self.cfg.loss == "sn" else nullcontext():
                fake_scores, _ = self._scores(fake, labels)
        # The penalty is computed outside the models' autocast region (see penalty_autocast): on CUDA its
        # double backward runs in fp32 whatever the precision.
        return self._update_critic(real_scores, fake_scores, self._penalty(real, losses.upcast(fake), labels),
                                   self._class_loss(real_logits, labels))

    def _scores(self, x: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The critic's scores, and its class logits where it has an AC-GAN head (fp32)."""
        if not self.critic.classifies:
            return losses.upcast(self.critic(x, labels)), None
        scores, logits = self.critic(x, labels, with_logits=True)
        return losses.upcast(scores), losses.upcast(logits)

    def _class_loss(self, logits: torch.Tensor | None, labels: torch.Tensor | None) -> torch.Tensor | None:
        return None if logits is None else losses.class_loss(logits, labels)

    def _penalty(self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None,
                 eps: torch.Tensor | None = None) -> torch.Tensor:
        """The gradient penalty of a gp/lp critic (eps: the interpolation draws, else drawn here); 0 otherwise."""
        if not self.cfg.uses_penalty:
            return torch.zeros((), device=self.device)
        with self.penalty_autocast:
            return losses.gradient_penalty(self.critic, real, fake, labels, one_sided=self.cfg.loss == "lp", eps=eps)

    def _update_critic(self, real_scores: torch.Tensor, fake_scores: torch.Tensor, penalty: torch.Tensor,
                       class_loss: torch.Tensor | None = None) -> torch.Tensor:
        """The critic's loss, optimiser step and clipping, from its scores, penalty and (AC-GAN) class loss on
        the real images; returns the step's (loss, Wasserstein estimate, penalty)."""
        cfg = self.cfg
        loss = losses.critic_loss(real_scores, fake_scores)
        if cfg.uses_penalty:
            loss = loss + cfg.gp_weight * penalty
        if class_loss is not None:
            loss = loss + cfg.acgan_weight_critic * class_loss
        self.opt_c.zero_grad(set_to_none=False)
        loss.backward()
        distributed.average_gradients(self.opt_c)
        self.opt_c.step()
        if cfg.loss == "clip":
            losses.clip_weights(self.critic, cfg.clip_value)  # after the step, as in Algorithm 1
        return torch.stack([loss.detach(), losses.wasserstein_estimate(real_scores, fake_scores).detach(),
                            penalty.detach()])

    def generator_step(self) -> torch.Tensor:
        n = self.cfg.generator_batch_size
        labels = self._labels(n)
        self.critic.requires_grad_(False)  # no critic gradients needed: saves a third of the backward
        with self.autocast:
            fake = self.generator(self._noise(n), labels)
            fake = augment.apply(fake, self._augment_draws(fake.shape))  # the gradient flows through it to G
            scores, logits = self._scores(fake, labels)
            loss = losses.generator_loss(scores)
            if logits is not None:  # AC-GAN: the generator also makes images of the class it was asked for
                loss = loss + self.cfg.acgan_weight_generator * losses.class_loss(logits, labels)
        self.opt_g.zero_grad(set_to_none=False)
        loss.backward()
        distributed.average_gradients(self.opt_g)
        self.opt_g.step()
        self.critic.requires_grad_(True)
        if self.ema is not None:
            self.ema.update()
        if self.schedule is not None:
            self.schedule.advance()
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
# The WGAN reference code's critic schedule


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
