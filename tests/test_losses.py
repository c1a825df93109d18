"""The objectives: signs, the gradient penalty on critics whose gradients are known in closed form,
per-sample interpolation, and weight clipping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wgan import losses

SAMPLE_SHAPE = (2, 3, 3)  # a non-batch shape with several dims: the norm must run over all of them


class LinearCritic(nn.Module):
    """f(x) = w . x + b over every non-batch dimension; its input gradient is w for every x."""

    def __init__(self, w: torch.Tensor, bias: float = 0.3):
        super().__init__()
        self.w = nn.Parameter(w.clone().double())
        self.b = nn.Parameter(torch.tensor(bias, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.flatten() + self.b


class RecordingCritic(LinearCritic):
    """A linear critic that keeps what it was called on."""

    def __init__(self, w: torch.Tensor):
        super().__init__(w)
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return super().forward(x)


def _batch(n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    real = torch.randn(n, *SAMPLE_SHAPE, generator=gen, dtype=torch.float64)
    fake = torch.randn(n, *SAMPLE_SHAPE, generator=gen, dtype=torch.float64)
    return real, fake


def _weight_with_norm(norm: float, seed: int = 0) -> torch.Tensor:
    w = torch.randn(*SAMPLE_SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return w / w.norm() * norm


# --- signs ------------------------------------------------------------------------------------


def test_critic_loss_is_fake_minus_real_and_generator_loss_is_minus_fake():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.0])
    assert losses.critic_loss(real, fake).item() == pytest.approx(-1.0 - 2.0)
    assert losses.wasserstein_estimate(real, fake).item() == pytest.approx(3.0)
    assert losses.generator_loss(fake).item() == pytest.approx(1.0)


def test_minimising_the_losses_moves_the_critic_and_the_generator_the_right_way():
    """One SGD step on each loss: the critic's W estimate and the generator's score both strictly rise."""
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(4, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    generator = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 4))
    real, z = torch.randn(32, 4) + 2.0, torch.randn(32, 3)

    def w_estimate() -> float:
        with torch.no_grad():
            return losses.wasserstein_estimate(critic(real), critic(generator(z))).item()

    before = w_estimate()
    opt_c = torch.optim.SGD(critic.parameters(), lr=1e-2)
    losses.critic_loss(critic(real), critic(generator(z).detach())).backward()
    opt_c.step()
    assert w_estimate() > before

    with torch.no_grad():
        score_before = critic(generator(z)).mean().item()
    opt_g = torch.optim.SGD(generator.parameters(), lr=1e-2)
    losses.generator_loss(critic(generator(z))).backward()
    opt_g.step()
    with torch.no_grad():
        assert critic(generator(z)).mean().item() > score_before


# --- the gradient penalty ----------------------------------------------------------------------


@pytest.mark.parametrize("norm", [0.25, 1.0, 1.7, 4.0])
def test_penalty_on_a_linear_critic_is_norm_minus_one_squared(norm):
    critic = LinearCritic(_weight_with_norm(norm))
    real, fake = _batch()
    penalty = losses.gradient_penalty(critic, real, fake)
    assert penalty.item() == pytest.approx((norm - 1.0) ** 2, abs=1e-9)


@pytest.mark.parametrize("norm", [0.25, 0.999, 1.0, 1.7, 4.0])
def test_one_sided_penalty_on_a_linear_critic_is_positive_part_squared(norm):
    critic = LinearCritic(_weight_with_norm(norm))
    real, fake = _batch()
    penalty = losses.gradient_penalty(critic, real, fake, one_sided=True)
    assert penalty.item() == pytest.approx(max(0.0, norm - 1.0) ** 2, abs=1e-9)


def test_penalty_is_the_mean_of_per_sample_gradient_norms():
    """f(x) = (w.x)^2 / 2 has input gradient (w.x) w, so each interpolate has its own norm |w.x_hat| ||w||;
    with eps given, the expected penalty is computed by hand."""
    w = _weight_with_norm(1.3)

    class Quadratic(nn.Module):
        def forward(self, x):
            return 0.5 * (x.flatten(1) @ w.flatten()) ** 2

    real, fake = _batch(n=6)
    eps = torch.linspace(0.0, 1.0, 6, dtype=torch.float64)
    x_hat = eps.view(-1, 1, 1, 1) * real + (1 - eps.view(-1, 1, 1, 1)) * fake
    norms = (x_hat.flatten(1) @ w.flatten()).abs() * w.norm()
    expected = ((norms - 1.0) ** 2).mean()
    penalty = losses.gradient_penalty(Quadratic(), real, fake, eps=eps)
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-9)


def test_epsilon_is_drawn_per_sample_and_afresh_on_every_call():
    """With real = 0 and fake = 1 the interpolate is 1 - eps: constant within a sample, different across."""
    critic = RecordingCritic(_weight_with_norm(1.0))
    real = torch.zeros(16, *SAMPLE_SHAPE, dtype=torch.float64)
    fake = torch.ones_like(real)
    losses.gradient_penalty(critic, real, fake)
    losses.gradient_penalty(critic, real, fake)
    first, second = (x.flatten(1) for x in critic.inputs)
    for x_hat in (first, second):
        per_sample = x_hat[:, 0]
        assert torch.equal(x_hat, per_sample[:, None].expand_as(x_hat)), "one eps per sample, shared by its pixels"
        assert ((per_sample >= 0) & (per_sample <= 1)).all()
        assert per_sample.unique().numel() == 16, "every sample draws its own eps"
    assert not torch.equal(first, second), "eps is drawn afresh for every penalty"


def test_interpolate_endpoints():
    real, fake = _batch(n=3)
    assert torch.equal(losses.interpolate(real, fake, torch.ones(3, dtype=torch.float64)), real)
    assert torch.equal(losses.interpolate(real, fake, torch.zeros(3, dtype=torch.float64)), fake)


@pytest.mark.parametrize("one_sided, norm", [(False, 0.4), (False, 2.5), (True, 2.5)])
def test_penalty_gradient_reaches_the_critic_and_matches_the_analytic_gradient(one_sided, norm):
    """d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||; the bias does not move the input gradient."""
    w = _weight_with_norm(norm, seed=3)
    critic = LinearCritic(w)
    real, fake = _batch()
    losses.gradient_penalty(critic, real, fake, one_sided=one_sided).backward()
    expected = 2.0 * (norm - 1.0) * w / norm
    assert critic.w.grad is not None and critic.w.grad.abs().min() > 0
    torch.testing.assert_close(critic.w.grad, expected, rtol=1e-7, atol=1e-10)
    assert critic.b.grad is None or critic.b.grad.item() == 0.0


def test_penalty_gradient_reaches_every_conv_weight_of_a_real_critic():
    from wgan.models import ModelShape, build_models

    torch.manual_seed(0)
    _, critic = build_models("dcgan28", ModelShape(width=4, latent_dim=8, critic_norm="layer"))
    real, fake = torch.rand(4, 1, 28, 28) * 2 - 1, torch.rand(4, 1, 28, 28) * 2 - 1
    penalty = losses.gradient_penalty(critic, real, fake)
    assert penalty.requires_grad, "the penalty keeps its graph (create_graph=True)"
    penalty.backward()
    for name, p in critic.named_parameters():
        if p.dim() > 1:  # every conv / linear weight
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_penalty_passes_labels_to_a_conditional_critic():
    from wgan.models import ModelShape, build_models

    torch.manual_seed(0)
    shape = ModelShape(width=4, latent_dim=8, num_classes=3)
    _, critic = build_models("dcgan28", shape)
    real, fake = torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28)
    eps = torch.full((4,), 0.5)
    a = losses.gradient_penalty(critic, real, fake, torch.tensor([0, 0, 0, 0]), eps=eps)
    b = losses.gradient_penalty(critic, real, fake, torch.tensor([2, 2, 2, 2]), eps=eps)
    assert torch.isfinite(a) and a.item() != b.item()


# --- clipping ----------------------------------------------------------------------------------


def test_clip_weights_clamps_every_parameter_and_leaves_small_ones():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(5, 7), nn.LayerNorm(7), nn.Linear(7, 1))
    small = {n: p.detach().clone() for n, p in critic.named_parameters()}
    with torch.no_grad():
        critic[0].weight.mul_(100.0)
    losses.clip_weights(critic, 0.05)
    for name, p in critic.named_parameters():
        assert p.abs().max() <= 0.05, name
        inside = small[name].abs() < 0.05
        if name != "0.weight":
            torch.testing.assert_close(p[inside], small[name][inside], rtol=0, atol=0)
    assert (critic[0].weight.abs() == 0.05).float().mean() > 0.5
