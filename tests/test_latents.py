import math

import pytest
import torch

from wgan.latents import draw_latents


def test_untruncated_draws_are_torch_randn_with_the_same_generator():
    z = draw_latents(5, 7, generator=torch.Generator().manual_seed(3))
    assert torch.equal(z, torch.randn(5, 7, generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("psi", [0.1, 0.5, 1.0, 2.0])
def test_truncated_draws_stay_in_the_box_and_follow_the_truncated_normal(psi):
    z = draw_latents(4000, 16, generator=torch.Generator().manual_seed(0), truncation=psi)
    assert z.shape == (4000, 16) and float(z.abs().max()) <= psi
    # Variance of N(0, 1) restricted to [-psi, psi]: 1 - 2 psi phi(psi) / (2 Phi(psi) - 1).
    phi = math.exp(-psi * psi / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(psi / math.sqrt(2))
    expected = 1 - 2 * psi * phi / mass
    assert float(z.var()) == pytest.approx(expected, rel=0.03)  # 64k draws: sd of the estimate ~0.6%
    assert abs(float(z.mean())) < 0.02 * psi


def test_resampling_not_clamping_leaves_no_mass_on_the_faces():
    z = draw_latents(1000, 8, generator=torch.Generator().manual_seed(1), truncation=0.5)
    assert int((z.abs() == 0.5).sum()) == 0


def test_the_same_seed_gives_the_same_truncated_draws():
    a = draw_latents(64, 8, generator=torch.Generator().manual_seed(9), truncation=0.7)
    b = draw_latents(64, 8, generator=torch.Generator().manual_seed(9), truncation=0.7)
    assert torch.equal(a, b)


@pytest.mark.parametrize("psi", [0, -1, float("nan")])
def test_a_truncation_that_is_not_positive_is_refused(psi):
    with pytest.raises(ValueError, match="truncation"):
        draw_latents(4, 2, truncation=psi)


@pytest.mark.parametrize("psi", [1e-300, 5e-324, 1e-6])
def test_a_truncation_too_small_to_resample_is_drawn_in_bounded_time(psi):
    import time

    started = time.perf_counter()
    z = draw_latents(256, 16, generator=torch.Generator().manual_seed(0), truncation=psi)
    assert time.perf_counter() - started < 5, "the resampling loop is bounded"
    assert z.shape == (256, 16) and bool(torch.isfinite(z).all()) and float(z.abs().max()) <= psi


@pytest.mark.parametrize("psi", [0.002, 0.02])
def test_draws_past_the_resampling_rounds_follow_the_truncated_normal_too(psi):
    # at these psi almost every coordinate outlives the rounds and comes from the inverse CDF: nearly uniform
    # on [-psi, psi], variance 1 - 2 psi phi(psi) / (2 Phi(psi) - 1), about psi^2 / 3
    z = draw_latents(4000, 16, generator=torch.Generator().manual_seed(2), truncation=psi).double()
    phi = math.exp(-psi * psi / 2) / math.sqrt(2 * math.pi)
    expected = 1 - 2 * psi * phi / math.erf(psi / math.sqrt(2))
    assert float(z.abs().max()) <= psi
    assert float(z.var()) == pytest.approx(expected, rel=0.03)
    assert abs(float(z.mean())) < 0.02 * psi
