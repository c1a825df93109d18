"""`wgan claims`' options: the toy datasets and the Lipschitz methods it compares, its defaults and the
shortest runs its verdicts are drawn from, said once for wgan.claims and the command line's help
(torch-free, so that `wgan --help` reads them without loading torch)."""

from __future__ import annotations

TOY_DATASETS = ("toy-8gaussians", "toy-25gaussians", "toy-swissroll")
# The gradient penalty is each toy preset's own setting (the WGAN-GP paper's toy code: lambda 0.1,
# Adam 1e-4, betas (0.5, 0.9)); clipping is the WGAN paper's (RMSprop 5e-5, c = 0.01).
LOSS_SETTINGS: dict[str, dict] = {
    "gp": {},
    "clip": dict(loss="clip", optimizer="rmsprop", lr_critic=5e-5, lr_generator=5e-5, clip_value=0.01),
}
LOSS_LABELS = {"gp": "gradient penalty", "clip": "weight clipping"}
# `wgan claims`' defaults, which its --help shows.
DEFAULT_DATASETS = TOY_DATASETS
DEFAULT_LOSSES = tuple(LOSS_SETTINGS)
DEFAULT_STEPS = 2000
DEFAULT_CHECKS = 16
DEFAULT_POINTS = 2000
DEFAULT_WIDTH = 512  # the paper's toy models
DEFAULT_SEED = 0
# The shortest runs a verdict is drawn from, set by how the default runs behave: W1 falls below half
# of its start after 20-30 steps with the penalty, after 50-150 with clipping, whose W1 first rises;
# the penalised critic's estimate overshoots W1 up to 4x in the first tens of steps and on 8 Gaussians
# is still about 3x W1 at step 200. Unrelated points give a Pearson r >= 0.8 with p = 0.1 from 4 of
# them, under 0.01 from 8.
MIN_STEPS_TRAINING = 500  # for claims about the course of training: W1 falls, the estimate tracks it
MIN_STEPS_TRAINED = 1000  # for claims about the trained critic: its gradient norm, estimate and weights
MIN_TRACKING_CHECKS = 8  # checks after step 0 for a correlation over training
