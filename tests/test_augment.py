"""DiffAugment: each transformation's maths on known inputs, shapes and ranges, gradients through it,
and how the step uses it (every image the critic sees, the penalty's interpolates, the generator)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wgan import augment, losses
from wgan.config import AUGMENTATIONS, TrainConfig
from wgan.data import Data
from wgan.training.state import TrainState
from wgan.training.step import WganStep


def batch(n=6, c=3, h=16, w=12, seed=0) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_the_config_knows_the_augmentations_that_exist():
    assert tuple(augment.AUGMENTATIONS) == AUGMENTATIONS


@pytest.mark.parametrize("names", [["color"], ["translation"], ["cutout"], ["color", "translation", "cutout"]])
def test_shapes_and_dtypes_are_kept_and_draws_are_per_sample(names):
    x = batch()
    torch.manual_seed(1)
    y = augment.diff_augment(x, names)
    assert y.shape == x.shape and y.dtype == x.dtype
    # one image repeated: different samples of it come out differently
    same = x[:1].expand(8, -1, -1, -1).contiguous()
    out = augment.diff_augment(same, names)
    assert len({out[i].numpy().tobytes() for i in range(8)}) > 1


def test_translation_shifts_each_image_by_whole_pixels_with_zeros_shifted_in():
    x = batch()
    drawn = augment.draw(["translation"], x.shape, "cpu")
    y = augment.apply(x, drawn)
    dy, dx = drawn[0][1]["dy"].flatten().tolist(), drawn[0][1]["dx"].flatten().tolist()
    assert max(map(abs, dy)) <= 2 and max(map(abs, dx)) <= 2  # 1/8 of 16 and of 12, rounded
    for i in range(len(x)):
        expected = np.zeros_like(x[i].numpy())
        h, w = x.shape[2:]
        src = x[i].numpy()
        for r in range(h):
            for c in range(w):
                if 0 <= r - dy[i] < h and 0 <= c - dx[i] < w:
                    expected[:, r, c] = src[:, r - dy[i], c - dx[i]]
        np.testing.assert_array_equal(y[i].numpy(), expected)


def test_cutout_zeroes_a_square_of_half_the_side_clipped_at_the_border():
    x = torch.ones(50, 1, 16, 16)
    drawn = augment.draw(["cutout"], x.shape, "cpu")
    y = augment.apply(x, drawn)
    cy, cx = drawn[0][1]["cy"].flatten().tolist(), drawn[0][1]["cx"].flatten().tolist()
    for i in range(len(x)):
        rows = [r for r in range(16) if cy[i] - 4 <= r < cy[i] + 4]
        cols = [c for c in range(16) if cx[i] - 4 <= c < cx[i] + 4]
        expected = torch.ones(16, 16)
        expected[np.ix_(rows, cols)] = 0
        assert torch.equal(y[i, 0], expected)
    assert (y == 0).flatten(1).sum(1).max() == 64  # 8 x 8 where the square lies inside


def test_color_is_brightness_then_saturation_then_contrast_per_sample(float64):
    x = batch(n=4)
    drawn = augment.draw(["color"], x.shape, "cpu")
    p = drawn[0][1]
    b, s, c = (p[k].flatten() for k in ("brightness", "saturation", "contrast"))
    assert (b.abs() <= 0.5).all() and ((0 <= s) & (s <= 2)).all() and ((0.5 <= c) & (c <= 1.5)).all()
    y = augment.apply(x, drawn)
    for i in range(len(x)):
        e = x[i] + b[i]
        e = (e - e.mean(0, keepdim=True)) * s[i] + e.mean(0, keepdim=True)
        e = (e - e.mean()) * c[i] + e.mean()
        torch.testing.assert_close(y[i], e, rtol=1e-12, atol=1e-12)


def test_gradients_flow_through_every_augmentation():
    x = batch().requires_grad_(True)
    drawn = augment.draw(["color", "translation", "cutout"], x.shape, "cpu")
    (grad,) = torch.autograd.grad(augment.apply(x, drawn).pow(2).sum(), x)
    assert grad.abs().sum() > 0
    # translation and cutout alone: the gradient of a sum is 1 on the pixels that are kept, 0 elsewhere
    x = batch().requires_grad_(True)
    drawn = augment.draw(["translation", "cutout"], x.shape, "cpu")
    out = augment.apply(x, drawn)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert set(grad.unique().tolist()) <= {0.0, 1.0} and grad.sum() == (out != 0).sum()


def _step(**overrides) -> WganStep:
    cfg = TrainConfig(**{**dict(model="mlp", image_size=8, width=8, latent_dim=8, batch_size=8, critic_steps=1,
                                loss="gp", device="cpu", tensorboard=False, ema_halflife_kimg=0,
                                augment="translation,cutout"), **overrides})
    x = torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    state = TrainState.build(cfg, data=Data("tiny", x))
    return WganStep(cfg, state.generator, state.critic, state.opt_g, state.opt_c, state.data, state.device)


def test_the_critic_sees_augmented_images_and_the_penalty_sits_between_them(monkeypatch):
    step = _step()
    seen, penalised = [], []
    forward = step.critic.forward
    monkeypatch.setattr(step.critic, "forward", lambda x, labels=None: (seen.append(x.detach()), forward(x, labels))[1])
    penalty = losses.gradient_penalty
    monkeypatch.setattr(losses, "gradient_penalty",
                        lambda critic, real, fake, *a, **kw: (penalised.append((real, fake)), penalty(critic, real, fake, *a, **kw))[1])
    step.critic_step()
    real_in, fake_in = seen[0], seen[1]
    assert ((real_in == 0).flatten(1).sum(1) >= 4).all(), "cut out: at least a 2 x 2 corner of the 4 x 4 square"
    (real_p, fake_p), = penalised
    assert torch.equal(real_p, real_in) and torch.equal(fake_p, fake_in), "interpolates between what the critic saw"


def test_the_generators_gradient_flows_through_the_augmentation(monkeypatch):
    step = _step(batch_size_generator=12)
    seen = []
    forward = step.critic.forward
    monkeypatch.setattr(step.critic, "forward", lambda x, labels=None: (seen.append(x), forward(x, labels))[1])
    before = [p.detach().clone() for p in step.generator.parameters()]
    grads = []
    hooks = [p.register_hook(lambda g: grads.append(g)) for p in step.generator.parameters()]
    step.generator_step()
    for h in hooks:
        h.remove()
    assert seen[0].shape[0] == 12, "the generator batch is --batch-size-generator"
    assert ((seen[0] == 0).flatten(1).sum(1) >= 4).all(), "the generated images were cut out before the critic"
    assert grads and all(g.abs().sum() > 0 for g in grads)
    assert not all(torch.equal(a, b) for a, b in zip(before, step.generator.parameters()))
