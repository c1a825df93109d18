"""One training step (WganStep): clipping after the optimiser step, the signs of both updates on
fixed batches, and what a generator iteration draws and records."""

from __future__ import annotations

import pytest
import torch

from wgan import losses
from wgan.config import TrainConfig
from wgan.data import Data
from wgan.models import build_models
from wgan.training.state import fixed_inputs, grid_columns, make_optimizers, model_shape
from wgan.training.step import STAT_NAMES, WganStep, boost_critic_steps

CPU = torch.device("cpu")
NUM_CLASSES = 4


def tiny_data(size: int = 8, num: int = 32) -> Data:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (num, 1, size, size), generator=gen, dtype=torch.uint8)
    y = torch.arange(num) % NUM_CLASSES
    return Data("tiny", x, y, NUM_CLASSES, [str(i) for i in range(NUM_CLASSES)], source="memory")


def make_step(model: str = "mlp", **overrides) -> WganStep:
    size = overrides.pop("image_size", 28 if model == "dcgan28" else 8)
    values = dict(model=model, image_size=size, width=8, latent_dim=8, batch_size=8, critic_steps=1,
                  loss="gp", optimizer="adam", device="cpu", precision="fp32")
    values.update(overrides)
    cfg = TrainConfig(**values)
    data = tiny_data(size)
    torch.manual_seed(0)
    shape = model_shape(cfg, data)
    generator, critic = build_models(cfg.model, shape)
    opt_g, opt_c = make_optimizers(cfg, generator, critic, CPU)
    return WganStep(cfg, generator, critic, opt_g, opt_c, data, CPU)


def clip_step(**overrides) -> WganStep:
    return make_step(**{**dict(loss="clip", optimizer="rmsprop", lr_critic=5e-5, lr_generator=5e-5,
                               clip_value=0.01), **overrides})


def fix_inputs(monkeypatch, step: WganStep, seed: int = 1):
    """Every draw of the step returns the same real batch and the same noise."""
    gen = torch.Generator().manual_seed(seed)
    real, labels = step.data.batch(step.cfg.batch_size, generator=gen)
    z = torch.randn(step.cfg.batch_size, step.generator.shape.latent_dim, generator=gen)
    monkeypatch.setattr(step.data, "batch", lambda n, generator=None: (real, labels))
    monkeypatch.setattr(step, "_noise", lambda n=None: z)
    return real, z


@torch.no_grad()
def w_estimate(step: WganStep, real: torch.Tensor, z: torch.Tensor) -> float:
    return losses.wasserstein_estimate(step.critic(real), step.critic(step.generator(z))).item()


@torch.no_grad()
def generator_score(step: WganStep, z: torch.Tensor) -> float:
    return step.critic(step.generator(z)).mean().item()


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


# --- weight clipping --------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["mlp", "dcgan28"])
def test_clip_step_leaves_every_critic_weight_in_range(model):
    step = clip_step(model=model)
    step.critic_step()
    for name, p in step.critic.named_parameters():
        assert p.abs().max() <= 0.01, name


def test_clipping_happens_after_the_optimizer_step():
    """Weights far outside [-c, c] before the step end exactly on +-c after it. Had the clamp run before
    the optimiser step, every weight with a gradient would sit one RMSprop step (~10 lr) away from c."""
    step = clip_step()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in step.critic.parameters():
            p.copy_(torch.where(torch.rand(p.shape, generator=gen) < 0.5, -2.0, 2.0))
    step.critic_step()
    grads = torch.cat([p.grad.flatten() for p in step.critic.parameters()])
    assert (grads != 0).float().mean() > 0.5, "the optimiser moved most weights"
    for name, p in step.critic.named_parameters():
        assert torch.equal(p.abs(), torch.full_like(p, 0.01)), name


def test_clip_follows_each_critic_optimizer_step_and_never_the_generators(monkeypatch):
    step = clip_step(critic_steps=3)
    events: list[str] = []

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            events.append(name)
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(step.opt_c, "step", spy("critic-step", step.opt_c.step))
    monkeypatch.setattr(step.opt_g, "step", spy("generator-step", step.opt_g.step))
    monkeypatch.setattr(losses, "clip_weights", spy("clip", losses.clip_weights))
    step()
    assert events == ["critic-step", "clip"] * 3 + ["generator-step"]


def test_penalty_losses_never_clip(monkeypatch):
    step = make_step(loss="lp")
    calls = []
    monkeypatch.setattr(losses, "clip_weights", lambda *a: calls.append(a))
    step.critic_step()
    assert calls == []


# --- signs of the updates ------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["mlp", "dcgan28"])
@pytest.mark.parametrize("variant", [
    dict(loss="clip", optimizer="rmsprop", lr_critic=5e-5),  # the WGAN paper's settings
    dict(loss="gp", gp_weight=0.0, optimizer="adam", lr_critic=1e-4),  # Adam, the penalty switched off
])
def test_critic_step_increases_the_wasserstein_estimate_on_a_fixed_batch(monkeypatch, model, variant):
    step = make_step(model=model, **variant)
    if variant["loss"] == "clip":
        losses.clip_weights(step.critic, step.cfg.clip_value)  # start feasible: the step is a projected ascent
    real, z = fix_inputs(monkeypatch, step)
    generator_before = params(step.generator)
    before = w_estimate(step, real, z)
    step.critic_step()
    after = w_estimate(step, real, z)
    assert after > before
    assert same(params(step.generator), generator_before), "a critic step leaves the generator alone"


@pytest.mark.parametrize("model", ["mlp", "dcgan28"])
@pytest.mark.parametrize("optimizer, lr", [("adam", 1e-4), ("rmsprop", 5e-5)])
def test_generator_step_increases_the_critics_score_of_fixed_noise(monkeypatch, model, optimizer, lr):
    step = make_step(model=model, optimizer=optimizer, lr_generator=lr)
    _, z = fix_inputs(monkeypatch, step)
    critic_before = params(step.critic)
    before = generator_score(step, z)
    step.generator_step()
    assert generator_score(step, z) > before
    assert same(params(step.critic), critic_before), "a generator step leaves the critic alone"
    assert all(p.requires_grad for p in step.critic.parameters()), "the critic is trainable again afterwards"
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in step.critic.parameters())


def test_critic_step_with_a_penalty_lowers_its_own_loss_on_a_fixed_batch(monkeypatch, float64):
    """With the penalty on, what must fall is the whole objective, penalty included (fixed eps too)."""
    step = make_step(loss="gp", gp_weight=10.0, lr_critic=1e-4)
    real, z = fix_inputs(monkeypatch, step)
    eps = torch.rand(step.cfg.batch_size, generator=torch.Generator().manual_seed(2))
    penalty = losses.gradient_penalty

    monkeypatch.setattr(losses, "gradient_penalty", lambda *a, **kw: penalty(*a, **{**kw, "eps": eps}))

    def objective() -> float:
        fake = step.generator(z).detach()
        base = losses.critic_loss(step.critic(real), step.critic(fake))
        return (base + 10.0 * penalty(step.critic, real, fake, eps=eps)).item()

    before = objective()
    stats = step.critic_step()
    assert stats[0].item() == pytest.approx(before, rel=1e-12), "the step reports the loss it minimised"
    assert objective() < before


# --- what one generator iteration draws and records ----------------------------------------------


def test_each_critic_step_draws_a_fresh_batch_noise_and_epsilon(monkeypatch):
    step = make_step(critic_steps=3)
    counts = {"batch": 0, "noise": 0, "eps": 0}
    batch, noise, interpolate = step.data.batch, step._noise, losses.interpolate

    def counting(key, fn):
        def wrapped(*args, **kwargs):
            counts[key] += 1
            return fn(*args, **kwargs)
        return wrapped

    drawn: list[torch.Tensor] = []

    def keep(fn):
        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            drawn.append(out[0] if isinstance(out, tuple) else out)
            return out
        return wrapped

    monkeypatch.setattr(step.data, "batch", keep(counting("batch", batch)))
    monkeypatch.setattr(step, "_noise", counting("noise", noise))
    monkeypatch.setattr(losses, "interpolate", lambda real, fake, eps=None: counting("eps", interpolate)(real, fake))
    step()
    assert counts == {"batch": 3, "noise": 3 + 1, "eps": 3}
    assert not any(torch.equal(a, b) for i, a in enumerate(drawn) for b in drawn[i + 1:]), "fresh real batches"


@pytest.mark.parametrize("loss, one_sided", [("gp", False), ("lp", True)])
def test_the_loss_option_picks_the_two_or_one_sided_penalty(monkeypatch, loss, one_sided, float64):
    step = make_step(loss=loss, gp_weight=3.0)
    seen = []
    penalty = losses.gradient_penalty

    def spy(*args, **kwargs):
        seen.append(kwargs.get("one_sided", False))
        return penalty(*args, **kwargs)

    monkeypatch.setattr(losses, "gradient_penalty", spy)
    stats = step.critic_step()
    assert seen == [one_sided]
    w, p = stats[1].item(), stats[2].item()
    assert stats[0].item() == pytest.approx(-w + 3.0 * p, rel=1e-12, abs=1e-15), "loss = E[D(fake)] - E[D(real)] + lambda P"


def test_losses_are_summed_on_the_device_and_averaged_when_read():
    step = make_step(critic_steps=2)
    step()
    first = step.sums.clone()
    step()
    total = step.sums.clone()
    assert not torch.equal(first, total), "each iteration adds to the sums"
    stats = step.read_and_reset(2)
    assert list(stats) == list(STAT_NAMES)
    assert [stats[k] for k in STAT_NAMES] == pytest.approx((total / 2).tolist())
    assert stats["penalty"] > 0, "a gp step records its penalty"
    assert torch.equal(step.sums, torch.zeros_like(step.sums)), "reading resets the sums"


def test_conditional_step_trains_the_label_embeddings():
    step = make_step(conditional=True)
    assert step.conditional and step.generator.shape.num_classes == NUM_CLASSES
    g_embed = step.generator.cond.embed.weight.detach().clone()
    c_embed = step.critic.cond.embed.weight.detach().clone()
    step()
    assert not torch.equal(step.generator.cond.embed.weight, g_embed)
    assert not torch.equal(step.critic.cond.embed.weight, c_embed)


# --- set-up functions ------------------------------------------------------------------------------


def test_optimizers_follow_the_papers():
    gp = make_step(loss="gp", optimizer="adam", lr_critic=1e-4, lr_generator=2e-4, adam_beta1=0.0, adam_beta2=0.9)
    assert isinstance(gp.opt_c, torch.optim.Adam) and isinstance(gp.opt_g, torch.optim.Adam)
    assert gp.opt_c.param_groups[0]["lr"] == 1e-4 and gp.opt_g.param_groups[0]["lr"] == 2e-4
    assert gp.opt_c.param_groups[0]["betas"] == (0.0, 0.9)
    clip = clip_step()
    assert isinstance(clip.opt_c, torch.optim.RMSprop) and clip.opt_c.param_groups[0]["lr"] == 5e-5
    critic_ids = {id(p) for p in clip.critic.parameters()}
    assert {id(p) for g in clip.opt_c.param_groups for p in g["params"]} == critic_ids


def test_fixed_grid_inputs_give_one_class_per_column():
    cfg = TrainConfig(grid_samples=20, latent_dim=8)
    step = make_step(conditional=True)
    z, labels = fixed_inputs(cfg, step.generator.shape, CPU)
    assert z.shape == (20, 8) and labels is not None
    assert torch.equal(labels, torch.arange(20) % NUM_CLASSES)
    assert grid_columns(step.generator.shape, 20) == NUM_CLASSES
    z_again, _ = fixed_inputs(cfg, step.generator.shape, CPU)
    assert torch.equal(z, z_again), "the grid noise is fixed by the seed"
    for asked, made in ((NUM_CLASSES * 2 - 1, NUM_CLASSES), (NUM_CLASSES * 2 + 3, NUM_CLASSES * 2), (1, NUM_CLASSES)):
        z, _ = fixed_inputs(TrainConfig(grid_samples=asked, latent_dim=8), step.generator.shape, CPU)
        assert len(z) == made, "whole rows, not more than asked for (but at least one row)"


def test_boost_schedule_is_the_wgan_reference_codes():
    """`Diters = 100 if gen_iterations < 25 or gen_iterations % 500 == 0 else 5`."""
    cfg = TrainConfig(critic_steps=5, critic_steps_boosted=100, boost_first_steps=25, boost_every_steps=500)
    diters = lambda step: cfg.critic_steps + boost_critic_steps(cfg, step)
    assert [diters(s) for s in (0, 1, 24, 25, 26, 499, 500, 501, 1000, 1500, 1501)] == \
        [100, 100, 100, 5, 5, 5, 100, 5, 100, 100, 5]
    assert all(boost_critic_steps(TrainConfig(), s) == 0 for s in range(0, 2000, 7))  # off by default
    only_first = TrainConfig(critic_steps=5, critic_steps_boosted=50, boost_first_steps=3, boost_every_steps=0)
    assert [boost_critic_steps(only_first, s) for s in range(5)] == [45, 45, 45, 0, 0]


def test_boosted_steps_update_the_critic_that_many_more_times(tmp_path, fashion_idx_dir):
    """4 generator steps, 1 critic step each, boosted to 4 on steps 0 and 1 (the first two) and 3
    (every third): 4 + 3 * 3 = 13 critic updates, and the generator's 4."""
    from cli_helpers import run_cli

    rc, _, err = run_cli("train", "--preset", "quick", "--data", fashion_idx_dir, "--width", "8", "--latent-dim", "16",
                         "--batch-size", "8", "--critic-steps", "1", "--critic-steps-boosted", "4",
                         "--boost-first-steps", "2", "--boost-every-steps", "3", "--steps", "4",
                         "--checkpoint-every-steps", "4", "--sample-every-steps", "0", "--no-tensorboard",
                         "--device", "cpu", "--no-progress", "--runs-dir", tmp_path / "runs")
    assert rc == 0, err
    (run,) = (tmp_path / "runs").iterdir()
    state = torch.load(run / "checkpoints" / "step-00000004.pt", weights_only=True)
    assert int(state["opt_critic"]["state"][0]["step"]) == 13
    assert int(state["opt_generator"]["state"][0]["step"]) == 4


def test_an_acgan_critic_minimises_the_class_loss_on_real_images_and_the_generator_on_its_own(monkeypatch, float64):
    """loss_C = E[D(fake)] - E[D(real)] + lambda P + 1 * CE(real); loss_G = -E[D(G(z))] + 0.1 * CE(G(z)),
    the WGAN-GP paper's conditional CIFAR-10 code."""
    step = make_step(model="resnet32", conditional=True, image_size=28, width=4, gp_weight=10.0,
                     acgan_weight_critic=1.0, acgan_weight_generator=0.1)
    assert step.critic.classifies
    gen = torch.Generator().manual_seed(1)
    real, labels = step.data.batch(8, generator=gen)
    z = torch.randn(8, 8, generator=gen)
    eps = torch.rand(8, generator=gen)
    monkeypatch.setattr(step.data, "batch", lambda n, generator=None: (real, labels))
    monkeypatch.setattr(step, "_noise", lambda n=None: z)
    monkeypatch.setattr(step, "_labels", lambda n: labels)
    penalty = losses.gradient_penalty
    monkeypatch.setattr(losses, "gradient_penalty", lambda *a, **kw: penalty(*a, **{**kw, "eps": eps}))
    with torch.no_grad():
        fake = step.generator(z, labels)
    scores_real, logits_real = step.critic(real, labels, with_logits=True)
    expected = (losses.critic_loss(scores_real, step.critic(fake, labels)) + losses.class_loss(logits_real, labels)
                + 10.0 * penalty(step.critic, real, fake, labels, eps=eps)).item()
    assert step.critic_step()[0].item() == pytest.approx(expected, rel=1e-10)
    fake = step.generator(z, labels)
    scores, logits = step.critic(fake, labels, with_logits=True)
    expected = (losses.generator_loss(scores) + 0.1 * losses.class_loss(logits, labels)).item()
    assert step.generator_step().item() == pytest.approx(expected, rel=1e-10)


# --- the penalty's cheaper estimates: lazy, on a fraction of the batch --------------------------------


def test_lazy_penalty_runs_on_every_kth_critic_update_of_the_run_weighted_by_k(monkeypatch):
    """k = 4 with 2 critic updates per iteration: updates 0, 4, 8 of the run carry the penalty, at weight 4;
    a step that starts at iteration 1 (a resumed run) continues the same count."""
    step = make_step(critic_steps=2, penalty_every_steps=4)
    calls = []
    penalty = losses.gradient_penalty
    monkeypatch.setattr(losses, "gradient_penalty", lambda *a, **kw: calls.append(step.critic_updates) or penalty(*a, **kw))
    patterns = []
    for _ in range(5):
        patterns.append(step.penalty_pattern())
        step()
    assert patterns == [(4.0, 0.0), (0.0, 0.0), (4.0, 0.0), (0.0, 0.0), (4.0, 0.0)]
    assert len(calls) == 3, "the penalty's double backward runs only where it is due"
    assert step.penalty_period() == 2
    assert make_step(critic_steps=2, penalty_every_steps=4).penalty_period() == 2
    assert make_step(critic_steps=5, penalty_every_steps=4).penalty_period() == 4
    resumed = WganStep(step.cfg, step.generator, step.critic, step.opt_g, step.opt_c, step.data, CPU, start_step=3)
    assert resumed.penalty_pattern() == patterns[3]


@pytest.mark.parametrize("weight", [4.0, 0.0])
def test_a_lazy_update_is_the_plain_update_with_lambda_times_its_weight(weight, float64):
    """A penalised lazy update (weight k) changes the critic exactly as a plain update with lambda k does; an
    update without the penalty exactly as one with lambda 0 (same draws: same seed, float64)."""
    results = []
    for cfg_over, w in ((dict(penalty_every_steps=4), weight), (dict(gp_weight=10.0 * weight), 1.0)):
        step = make_step(gp_weight=10.0, **cfg_over) if "gp_weight" not in cfg_over else make_step(**cfg_over)
        torch.manual_seed(5)
        stats = step.critic_step(w)
        results.append((stats, [p.detach().clone() for p in step.critic.parameters()]))
    (lazy_stats, lazy_params), (plain_stats, plain_params) = results
    for a, b in zip(lazy_params, plain_params):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    assert lazy_stats[0].item() == pytest.approx(plain_stats[0].item(), rel=1e-12, abs=1e-15)


def test_penalty_on_a_fraction_of_the_batch_is_the_penalty_of_its_first_pairs(monkeypatch, float64):
    step = make_step(batch_size=8, penalty_batch_fraction=0.25)
    assert [step.penalty_batch(n) for n in (8, 32, 3, 1)] == [2, 8, 1, 1]
    gen = torch.Generator().manual_seed(3)
    real, fake = torch.randn(8, 1, 8, 8, generator=gen), torch.randn(8, 1, 8, 8, generator=gen)
    eps = torch.rand(2, generator=gen)
    expected = losses.gradient_penalty(step.critic, real[:2], fake[:2], eps=eps)
    assert step._penalty(real, fake, None, eps).item() == pytest.approx(expected.item(), rel=1e-12)
    seen = []
    interpolate = losses.interpolate
    monkeypatch.setattr(losses, "interpolate", lambda r, f, e=None: seen.append(r.shape[0]) or interpolate(r, f, e))
    step.critic_step()
    assert seen == [2], "the interpolates of a quarter of a batch of 8"


def test_zero_centred_penalty_is_the_squared_gradient_norm_of_a_known_critic(float64):
    """D(x) = w . x has gradient w everywhere: the penalty is (||w|| - t)^2, ||w||^2 at t = 0."""
    w = torch.tensor([3.0, 4.0])
    critic = lambda x: x @ w  # noqa: E731
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    assert losses.gradient_penalty(critic, real, fake).item() == pytest.approx(16.0, rel=1e-9)
    assert losses.gradient_penalty(critic, real, fake, target_norm=0.0).item() == pytest.approx(25.0, rel=1e-12)
    assert losses.gradient_penalty(critic, real, fake, target_norm=2.0).item() == pytest.approx(9.0, rel=1e-9)
    zero = torch.zeros(3, 4, requires_grad=True)
    losses.penalty_from_gradient(zero, target_norm=0.0).backward()
    assert torch.equal(zero.grad, torch.zeros(3, 4)), "finite at a zero gradient (no square root)"
