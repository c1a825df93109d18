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

import math
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

    With --penalty-every-steps k, only every k-th critic update (counted over the run) computes the
    penalty, weighted by k, so its expectation per update is unchanged (StyleGAN2's lazy regularisation);
    with --penalty-batch-fraction f, the penalty's interpolates are the first f of the batch's pairs.
    The boost schedule's extra critic updates always carry the penalty, at weight 1.

    `precision`: what it computes in (wgan.training.precision), else resolved from cfg.precision.
    `start_step`: the generator iteration the step starts at (a resumed run's)."""

    def __init__(self, cfg: TrainConfig, generator: Generator, critic: Critic, opt_g, opt_c, data: Data,
                 device: torch.device, *, ema: GeneratorEMA | None = None, schedule: LinearDecay | None = None,
                 precision: Precision | None = None, start_step: int = 0):
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
        # The lazy penalty's count of the run's regular critic updates, from the generator iteration it starts
        # at, so that a resumed run penalises the updates an uninterrupted one would.
        self.critic_updates = start_step * cfg.critic_steps

    def _noise(self, n: int | None = None) -> torch.Tensor:
        return torch.randn(n or self.cfg.batch_size, self.generator.shape.latent_dim, device=self.device)

    def _labels(self, n: int) -> torch.Tensor | None:
        if not self.conditional:
            return None
        idx = torch.randint(len(self.data), (n,), device=self.device)
        return self.data.y[idx]

    def _augment_draws(self, shape) -> list:
        return augment.draw(self.augmentations, shape, self.device) if self.augmentations else []

    def penalty_pattern(self) -> tuple[float, ...]:
        """The penalty's weight (a multiple of --gp-weight; 0: not computed) in each critic update of the next
        generator iteration."""
        cfg, k = self.cfg, self.cfg.penalty_every_steps
        if not cfg.uses_penalty:
            return (0.0,) * cfg.critic_steps
        return tuple(float(k) if (self.critic_updates + i) % k == 0 else 0.0 for i in range(cfg.critic_steps))

    def penalty_period(self) -> int:
        """After how many generator iterations penalty_pattern repeats."""
        k = self.cfg.penalty_every_steps if self.cfg.uses_penalty else 1
        return k // math.gcd(k, self.cfg.critic_steps)

    def penalty_batch(self, batch: int) -> int:
        """How many of a critic batch's pairs the penalty interpolates."""
        return max(1, round(batch * self.cfg.penalty_batch_fraction))

    def critic_step(self, penalty_weight: float = 1.0) -> torch.Tensor:
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
        return self._update_critic(real_scores, fake_scores,
                                   self._penalty(real, losses.upcast(fake), labels, weight=penalty_weight),
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
                 eps: torch.Tensor | None = None, *, weight: float = 1.0) -> torch.Tensor:
        """The gradient penalty of a gp/lp critic times `weight` (the lazy penalty's k), on the first
        penalty_batch pairs (eps: their interpolation draws, else drawn here); 0 without a penalty or weight."""
        if not self.cfg.uses_penalty or weight == 0:
            return torch.zeros((), device=self.device)
        m = self.penalty_batch(real.shape[0])
        if m < real.shape[0]:
            real, fake, labels = real[:m], fake[:m], None if labels is None else labels[:m]
        with self.penalty_autocast:
            penalty = losses.gradient_penalty(self.critic, real, fake, labels, one_sided=self.cfg.loss == "lp", eps=eps,
                                              target_norm=self.cfg.penalty_target_norm)
        return penalty if weight == 1 else weight * penalty

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
        weights = self.penalty_pattern()
        self.critic_updates += len(weights)
        critic_stats = torch.stack([self.critic_step(w) for w in weights]).mean(0)
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
