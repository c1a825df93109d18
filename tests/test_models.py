"""The model registry: shapes and conditioning on the label (which combinations are refused: test_config.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wgan.models import CRITIC_NORMS, MODELS, ModelShape, build_models

WIDTH, LATENT = 4, 8


def _image_size(name: str) -> int:
    sizes = MODELS[name].image_sizes
    return sizes[0] if sizes else 16  # the mlp takes any size


def _shape(name: str, **kw) -> ModelShape:
    return ModelShape(**{"image_size": _image_size(name), "width": WIDTH, "latent_dim": LATENT, **kw})


def _models(name: str, shape: ModelShape):
    torch.manual_seed(0)
    return build_models(name, shape)


def test_registry_holds_the_papers_models():
    assert {"mlp", "dcgan28", "dcgan32", "dcgan64"} <= set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("num_classes", [0, 5])
def test_every_model_makes_the_right_shapes(name, channels, num_classes):
    shape = _shape(name, channels=channels, num_classes=num_classes)
    generator, critic = _models(name, shape)
    n = 3
    labels = torch.arange(n) % num_classes if num_classes else None
    x = generator(torch.randn(n, LATENT), labels)
    size = shape.image_size
    assert x.shape == (n, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1, "images live in the Tanh range [-1, 1]"
    scores = critic(x, labels)
    assert scores.shape == (n,), "one unbounded score per sample"


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("norm", [n for n in CRITIC_NORMS if n != "batch"])
def test_every_penalty_compatible_critic_norm_builds(name, norm):
    _, critic = _models(name, _shape(name, critic_norm=norm))
    size = _image_size(name)
    assert critic(torch.rand(2, 1, size, size) * 2 - 1).shape == (2,)
    if norm == "layer" and name != "mlp":
        assert any(isinstance(m, nn.GroupNorm) for m in critic.modules())


def test_mlp_makes_points_for_toy_data():
    generator, critic = _models("mlp", ModelShape(point_dim=2, channels=0, image_size=0, width=16, latent_dim=2))
    points = generator(torch.randn(7, 2))
    assert points.shape == (7, 2)
    assert points.abs().max() > 0 and critic(points).shape == (7,)


def test_critics_end_without_a_sigmoid():
    """A Wasserstein critic is not a classifier: its scores must be able to leave (0, 1)."""
    for name in MODELS:
        _, critic = _models(name, _shape(name))
        assert not any(isinstance(m, nn.Sigmoid) for m in critic.modules()), name


# --- conditioning ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_conditional_models_use_the_label(name):
    """Same noise / same images, only the label changes: G's output and the critic's score change."""
    shape = _shape(name, num_classes=4)
    generator, critic = _models(name, shape)
    generator.eval()  # batch norm in G on running statistics: the output depends on each sample alone
    n = 4
    z = torch.randn(n, LATENT)
    size = shape.image_size
    x = torch.rand(n, 1, size, size) * 2 - 1
    a, b = torch.zeros(n, dtype=torch.long), torch.full((n,), 3, dtype=torch.long)
    with torch.no_grad():
        g_a, g_b = generator(z, a), generator(z, b)
        c_a, c_b = critic(x, a), critic(x, b)
    assert (g_a - g_b).abs().amax(dim=(1, 2, 3)).min() > 1e-6, "every sample's image depends on its label"
    assert (c_a - c_b).abs().min() > 1e-7, "every sample's score depends on its label"
    # ... and the same label gives the same output again: the difference is the label, not randomness
    with torch.no_grad():
        torch.testing.assert_close(generator(z, a), g_a)
        torch.testing.assert_close(critic(x, a), c_a)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_conditional_models_ask_for_labels(name):
    shape = _shape(name, num_classes=3)
    generator, critic = _models(name, shape)
    with pytest.raises(ValueError, match="conditional"):
        generator(torch.randn(2, LATENT))
    with pytest.raises(ValueError, match="conditional"):
        critic(torch.zeros(2, 1, shape.image_size, shape.image_size))


@pytest.mark.parametrize("name", ["dcgan28", "dcgan32", "dcgan64"])
def test_batch_norm_conv_critic_without_a_penalty_builds(name):
    """Weight clipping (the WGAN paper's DCGAN) may keep batch norm in the critic."""
    _, critic = _models(name, _shape(name, critic_norm="batch"))
    assert any(isinstance(m, nn.BatchNorm2d) for m in critic.modules())


# --- spectral normalisation (--loss sn) ----------------------------------------------------------


def _largest_singular_values(critic: nn.Module) -> dict[str, float]:
    """sigma_max of every normalised layer's weight as its matrix (out, in * kh * kw), as SN defines it."""
    return {name: float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2))
            for name, m in critic.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


@pytest.mark.parametrize("name", ["mlp", "dcgan28"])
def test_spectral_norm_holds_every_critic_layer_at_one_through_training(name):
    from wgan.config import TrainConfig
    from wgan.data import Data
    from wgan.training.state import TrainState
    from wgan.training.step import WganStep

    size = 28 if name == "dcgan28" else 8
    cfg = TrainConfig(model=name, image_size=size, width=8, latent_dim=8, batch_size=16, critic_steps=5, loss="sn",
                      device="cpu", tensorboard=False, ema_halflife_kimg=0)
    x = torch.randint(0, 256, (64, 1, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    state = TrainState.build(cfg, data=Data("tiny", x))
    layers = [m for m in state.critic.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers and all(nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
    raw = {n: float(torch.linalg.matrix_norm(m.parametrizations.weight.original.detach().flatten(1), ord=2))
           for n, m in state.critic.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert max(abs(s - 1) for s in raw.values()) > 0.1, "the unnormalised weights are not already at 1"
    step = WganStep(cfg, state.generator, state.critic, state.opt_g, state.opt_c, state.data, state.device)
    for _ in range(20):  # 120 power iterations: one per critic and per generator update
        step()
    state.critic.eval()  # read the weights as the last power iteration left them
    sigmas = _largest_singular_values(state.critic)
    # One power iteration per update estimates sigma from below and trails the moving weights, most
    # where the top singular values nearly tie (DCGAN's initial weights): 1 to 1.15 here, against
    # 0.1-0.3 for the unnormalised weights.
    assert all(0.99 < s < 1.15 for s in sigmas.values()), sigmas
    assert step.read_and_reset(20)["penalty"] == 0.0


# --- the ResNets' conditional parts -------------------------------------------------------------


def test_the_acgan_head_adds_class_logits_and_the_projection_head_adds_the_labels_projection(float64):
    from wgan.models.core import CriticHead

    torch.manual_seed(0)
    features, labels = torch.randn(5, 7), torch.tensor([0, 1, 2, 1, 0])
    acgan, projection = CriticHead(7, 3, "acgan"), CriticHead(7, 3, "projection")
    score, logits = acgan(features, labels)
    torch.testing.assert_close(score, features @ acgan.score.weight[0] + acgan.score.bias[0])
    torch.testing.assert_close(logits, features @ acgan.classes.weight.T + acgan.classes.bias)
    score, logits = projection(features, labels)
    expected = features @ projection.score.weight[0] + projection.score.bias[0] + \
        (projection.embed.weight[labels] * features).sum(1)
    torch.testing.assert_close(score, expected)
    assert logits is None


def test_the_acgan_loss_is_the_cross_entropy_of_the_logits():
    from wgan import losses

    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 3.0]]), torch.tensor([0, 0])
    expected = -(torch.log_softmax(logits, 1)[[0, 1], [0, 0]]).mean()
    assert losses.class_loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-9)


def test_conditional_batch_norm_scales_and_shifts_by_class():
    from wgan.models.resnet import ConditionalBatchNorm2d

    norm = ConditionalBatchNorm2d(2, num_classes=3)
    with torch.no_grad():
        norm.gain.weight.copy_(torch.tensor([[1.0, 1.0], [2.0, 3.0], [0.5, 0.5]]))
        norm.shift.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, -1.0], [0.0, 0.0]]))
    x = torch.randn(6, 2, 4, 4)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    plain = torch.nn.functional.batch_norm(x, None, None, training=True)
    out = norm(x, labels)
    for i, y in enumerate(labels.tolist()):
        g, b = norm.gain.weight[y], norm.shift.weight[y]
        torch.testing.assert_close(out[i], plain[i] * g[:, None, None] + b[:, None, None], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model, size, channels, conditioning", [
    ("resnet32", 28, 1, "acgan"), ("resnet32", 32, 3, "projection"), ("resnet64", 64, 3, "input")])
def test_the_resnets_train_end_to_end(model, size, channels, conditioning, tmp_path):
    """A few generator iterations of each ResNet, conditional, through the real step: losses finite, both
    models changed, the AC-GAN critic's class loss part of its loss."""
    from wgan.config import TrainConfig
    from wgan.data import Data
    from wgan.training.fast import make_step
    from wgan.training.state import TrainState

    cfg = TrainConfig(model=model, image_size=size, channels=channels, width=4, latent_dim=8, batch_size=4,
                      critic_steps=2, conditional=True, conditioning=conditioning, critic_norm="layer",
                      device="cpu", tensorboard=False, ema_halflife_kimg=0.01)
    g = torch.Generator().manual_seed(0)
    data = Data("tiny", torch.randint(0, 256, (16, channels, size, size), dtype=torch.uint8, generator=g),
                torch.arange(16) % 3, 3, ["a", "b", "c"])
    state = TrainState.build(cfg, data=data)
    before = [p.detach().clone() for p in (*state.generator.parameters(), *state.critic.parameters())]
    step, _ = make_step(state, fast=False)
    for _ in range(2):
        step()
    stats = step.read_and_reset(2)
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values()) and stats["penalty"] > 0
    after = list(state.generator.parameters()) + list(state.critic.parameters())
    assert sum(not torch.equal(a, b) for a, b in zip(before, after)) > len(before) // 2
    assert state.critic.classifies == (conditioning == "acgan")
    z = torch.randn(3, 8)
    assert state.sampled_generator()(z, torch.tensor([0, 1, 2])).shape == (3, channels, size, size)


def test_dcgan28_takes_dcgans_batch_norm_in_its_generator_on_request():
    plain, _ = _models("dcgan28", _shape("dcgan28"))
    normed, _ = _models("dcgan28", _shape("dcgan28", generator_norm="batch"))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in plain.modules())
    assert sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in normed.modules()) == 3
    assert normed(torch.randn(4, LATENT)).shape == plain(torch.randn(4, LATENT)).shape == (4, 1, 28, 28)
