"""The fast step computes what the plain step computes; the CUDA graph path where a GPU exists."""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import CROSS_PATH_ATOL as ATOL
from conftest import CROSS_PATH_RTOL as RTOL
from wgan import losses
from wgan.config import TrainConfig
from wgan.data import Data
from wgan.training.fast import CudaGraphStep, FusedWganStep, UnfoldConv2d, unfold_thin_convs
from wgan.training.fast import make_step
from wgan.training.schedule import LinearDecay
from wgan.training.state import TrainState
from wgan.training.step import WganStep


def tiny_data(n: int = 64, classes: int = 3, size: int = 28, channels: int = 1) -> Data:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)
    y = torch.randint(0, classes, (n,), generator=g)
    return Data("tiny", x, y, classes, [str(i) for i in range(classes)], source="memory")


def run_steps(step_cls, cfg: TrainConfig, data: Data, steps: int, sgd: bool = False):
    state = TrainState.build(cfg, data=data)
    if sgd:
        # Adam and RMSprop turn float noise in near-zero gradients (e.g. a conv bias before batch
        # norm, whose true gradient is 0) into full-size steps; SGD keeps noise noise-sized.
        state.opt_c = torch.optim.SGD(state.critic.parameters(), lr=0.01)
        state.opt_g = torch.optim.SGD(state.generator.parameters(), lr=0.01)
    schedule = None
    if cfg.lr_decay == "linear":
        schedule = LinearDecay([(state.opt_g, cfg.lr_generator), (state.opt_c, cfg.lr_critic)], cfg.steps, 0,
                               on_device=False)
    step = step_cls(cfg, state.generator, state.critic, state.opt_g, state.opt_c, state.data, state.device,
                    ema=state.ema, schedule=schedule)
    for _ in range(steps):
        step()
    return state, step.read_and_reset(steps)


CASES = {
    "gp": dict(loss="gp"),
    "lp": dict(loss="lp"),
    "gp-conditional-layernorm": dict(loss="gp", conditional=True, critic_norm="layer"),
    "clip-batchnorm": dict(loss="clip", optimizer="rmsprop", lr_critic=5e-5, lr_generator=5e-5, critic_norm="batch"),
    "clip-dcgan32-batchnorm-generator": dict(loss="clip", optimizer="rmsprop", model="dcgan32", image_size=32,
                                             channels=3, critic_norm="batch"),
    "gp-mlp": dict(loss="gp", model="mlp", width=16),
    # DiffAugment's draws, the moving average, the learning-rate decay and a larger generator batch
    "gp-augment-ema-decay": dict(loss="gp", augment="color,translation,cutout", ema_halflife_kimg=0.01,
                                 lr_decay="linear", steps=5, batch_size_generator=12),
    "sn-augment": dict(loss="sn", augment="translation"),
    "gp-dcgan28-batchnorm-generator": dict(loss="gp", generator_norm="batch"),
    # the lazy penalty (every 2nd of 3 critic updates: patterns that differ between iterations), on half the
    # batch, zero-centred
    "gp-lazy-half-batch-zero-centred": dict(loss="gp", penalty_every_steps=2, penalty_batch_fraction=0.5,
                                            penalty_target_norm=0.0),
    "lp-lazy-conditional": dict(loss="lp", penalty_every_steps=4, conditional=True),
    # the ResNets: conditional batch norm in G (grouped), the AC-GAN loss, a projection head over a batch-norm critic
    "gp-resnet32-28px-acgan": dict(loss="gp", model="resnet32", conditional=True),
    "clip-resnet32-projection-batchnorm": dict(loss="clip", optimizer="rmsprop", model="resnet32", image_size=32,
                                               channels=3, critic_norm="batch", conditional=True,
                                               conditioning="projection"),
}


@pytest.mark.parametrize("case", CASES)
def test_fused_step_matches_plain_step(case, float64):
    """Same losses and parameters up to float64 rounding (batched matrix products round differently;
    a structural slip, such as a different batch or a missed penalty, is off by orders more)."""
    cfg = TrainConfig(**{**dict(dataset="fashion-mnist", width=8, batch_size=8, critic_steps=3, device="cpu",
                                tensorboard=False), **CASES[case]})
    data = tiny_data(size=cfg.image_size, channels=cfg.channels)
    _, plain_stats = run_steps(WganStep, cfg, data, steps=3)
    _, fused_stats = run_steps(FusedWganStep, cfg, data, steps=3)
    for name in plain_stats:
        assert fused_stats[name] == pytest.approx(plain_stats[name], rel=RTOL, abs=ATOL), name
    plain, plain_stats = run_steps(WganStep, cfg, data, steps=3, sgd=True)
    fused, fused_stats = run_steps(FusedWganStep, cfg, data, steps=3, sgd=True)
    for name in plain_stats:
        assert fused_stats[name] == pytest.approx(plain_stats[name], rel=RTOL, abs=ATOL), name
    models = [(name, getattr(plain, name), getattr(fused, name)) for name in ("generator", "critic")]
    if plain.ema is not None:
        models.append(("ema", plain.ema.module, fused.ema.module))
    for model, a, b in models:  # parameters and batch-norm running statistics
        for (key, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            assert p.dtype == torch.float64 or not p.is_floating_point(), f"{model}.{key} is {p.dtype}"
            torch.testing.assert_close(p, q, rtol=RTOL, atol=ATOL, msg=f"{model}.{key}")


def test_boosted_critic_steps_match_between_plain_and_fused_steps(float64):
    """The boost schedule's extra critic updates run the plain critic update in both steps, so the
    fused step still computes what the plain step computes."""
    cfg = TrainConfig(dataset="fashion-mnist", model="dcgan32", image_size=32, channels=3, width=8, batch_size=8,
                      critic_steps=2, critic_steps_boosted=5, loss="clip", optimizer="rmsprop", critic_norm="batch",
                      device="cpu", tensorboard=False)
    data = tiny_data(size=32, channels=3)
    results = []
    for step_cls in (WganStep, FusedWganStep):
        state = TrainState.build(cfg, data=data)
        state.opt_c = torch.optim.SGD(state.critic.parameters(), lr=0.01)
        state.opt_g = torch.optim.SGD(state.generator.parameters(), lr=0.01)
        step = step_cls(cfg, state.generator, state.critic, state.opt_g, state.opt_c, state.data, state.device)
        for _ in range(2):
            step.extra_critic_steps(3)
            step()
        results.append((state, step.read_and_reset(2)))
    (plain, s1), (fused, s2) = results
    assert s1 == pytest.approx(s2, rel=RTOL, abs=ATOL)
    for (key, p), q in zip(plain.critic.state_dict().items(), fused.critic.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=RTOL, atol=ATOL, msg=key)


@pytest.mark.parametrize("in_channels,kernel,stride,padding", [(1, 5, 2, 2), (2, 5, 2, 2), (3, 4, 2, 1), (1, 3, 1, 1)])
def test_unfold_conv_matches_conv_and_its_penalty_gradient(in_channels, kernel, stride, padding, float64):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(in_channels, 6, kernel, stride, padding)
    ref = torch.nn.Sequential(conv, torch.nn.LeakyReLU(0.2), torch.nn.Flatten(), torch.nn.LazyLinear(1))
    x = torch.randn(5, in_channels, 20, 20)
    ref(x)
    fast = copy.deepcopy(ref)
    assert unfold_thin_convs(fast) == 1 and isinstance(fast[0], UnfoldConv2d)
    torch.testing.assert_close(ref(x), fast(x), rtol=RTOL, atol=ATOL)
    eps = torch.rand(5)
    weights = [ref[0].weight, ref[3].weight]
    g_ref = torch.autograd.grad(losses.gradient_penalty(ref, x, 0.5 * x, eps=eps), weights)
    g_fast = torch.autograd.grad(losses.gradient_penalty(fast, x, 0.5 * x, eps=eps), [fast[0].weight, fast[3].weight])
    for a, b in zip(g_ref, g_fast):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL)
    assert fast.state_dict().keys() == ref.state_dict().keys()


@pytest.mark.parametrize("step_cls", [WganStep, FusedWganStep])
def test_penalty_gradient_reaches_the_critic_in_every_step(step_cls):
    """The penalty alone puts gradients on the critic's weights (its double backward is kept), and
    both steps report a positive penalty."""
    cfg = TrainConfig(dataset="fashion-mnist", width=8, batch_size=8, critic_steps=1, device="cpu", gp_weight=10.0,
                      tensorboard=False)
    state = TrainState.build(cfg, data=tiny_data())
    step = step_cls(cfg, state.generator, state.critic, state.opt_g, state.opt_c, state.data, state.device)
    grads = {}
    hooks = [p.register_hook(lambda g, name=name: grads.__setitem__(name, g.clone()))
             for name, p in state.critic.named_parameters()]
    real, _ = state.data.batch(8)
    fake = state.generator(torch.randn(8, cfg.latent_dim)).detach()
    penalty = losses.gradient_penalty(state.critic, real, fake)
    penalty.backward()
    for h in hooks:
        h.remove()
    first_conv = next(name for name in grads if name.endswith("weight"))
    assert grads[first_conv].abs().sum() > 0
    step()
    stats = step.read_and_reset(1)
    assert stats["penalty"] > 0


def test_make_step_on_cpu_falls_back_with_a_note():
    cfg = TrainConfig(dataset="fashion-mnist", width=8, batch_size=8, critic_steps=1, device="cpu", tensorboard=False)
    state = TrainState.build(cfg, data=tiny_data())
    step, note = make_step(state, fast=True)
    assert isinstance(step, FusedWganStep)
    assert "CUDA" in note
    step, note = make_step(state, fast=False)
    assert isinstance(step, WganStep) and note is None


GPU_CASES = {
    "gp": dict(loss="gp"),
    "clip-dcgan32-batchnorm": dict(loss="clip", optimizer="rmsprop", model="dcgan32", image_size=32, channels=3,
                                   critic_norm="batch"),
    # the moving average and the decayed learning rates updated inside the graph (a host sync there fails
    # the capture), DiffAugment's draws, a generator batch of its own
    "gp-ema-decay-augment": dict(loss="gp", ema_halflife_kimg=0.01, lr_decay="linear", steps=10,
                                 augment="color,translation,cutout", batch_size_generator=24),
    "gp-resnet32-acgan": dict(loss="gp", model="resnet32", conditional=True, width=8),
    "sn": dict(loss="sn"),
}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("case", GPU_CASES)
def test_cuda_graph_step_matches_eager_on_gpu(case):
    """The fused step in NCHW and eager against the fused step as training runs it on a GPU:
    channels_last and captured in a CUDA graph (batch norm's grouped calls included)."""
    from wgan.training.fast import make_step

    cfg = TrainConfig(**{**dict(dataset="fashion-mnist", width=16, batch_size=16, critic_steps=2, device="cuda",
                                precision="fp32", tensorboard=False), **GPU_CASES[case]})
    data = tiny_data(size=cfg.image_size, channels=cfg.channels)
    results = []
    for graph in (False, True):
        state = TrainState.build(cfg, fast=True, data=data)
        if graph:
            step, note = make_step(state, fast=True)  # channels_last, the schedule on the device, the graph
            assert isinstance(step, CudaGraphStep), note
        else:
            schedule = None
            if cfg.lr_decay == "linear":
                schedule = LinearDecay([(state.opt_g, cfg.lr_generator), (state.opt_c, cfg.lr_critic)], cfg.steps,
                                       0, on_device=False)
            step = FusedWganStep(cfg, state.generator, state.critic, state.opt_g, state.opt_c, state.data,
                                 state.device, ema=state.ema, schedule=schedule)
        for _ in range(6):
            step()
        assert not graph or step.graph is not None, step.failed
        results.append((state, step.read_and_reset(6)))
    (eager, s1), (graphed, s2) = results
    if eager.ema is not None:  # the average moved inside the graph as it did eagerly
        assert float(graphed.ema.images) == float(eager.ema.images) == 6 * cfg.generator_batch_size
        for (name, p), q in zip(eager.ema.module.state_dict().items(), graphed.ema.module.state_dict().values()):
            assert torch.allclose(p.float(), q.float(), rtol=1e-3, atol=1e-4), f"ema {name}"
    if cfg.lr_decay == "linear":
        lr = float(graphed.opt_c.param_groups[0]["lr"])
        assert lr == pytest.approx(cfg.lr_critic * (1 - 6 / cfg.steps), rel=1e-6)
    # fp32 on the GPU, not float64: the fast path's fused capturable optimisers and cuDNN's autotuned
    # kernels are what is under test, and the two runs may pick different convolution algorithms, so
    # they agree to fp32 rounding amplified over 6 iterations of 2 critic steps. 1e-3 of a loss of
    # order 1 (and 1e-4 of weights of order 0.02-0.1) stays far below a structural slip: a missed
    # penalty or another batch changes the losses in their first digit.
    assert s1 == pytest.approx(s2, rel=1e-3, abs=1e-4)
    for (name, p), q in zip(eager.critic.state_dict().items(), graphed.critic.state_dict().values()):
        assert torch.allclose(p.float(), q.float(), rtol=1e-3, atol=1e-4), name


def test_bench_cpu_prints_its_table(capsys, tmp_path):
    import json

    from wgan.cli import main

    assert main(["bench", "--device", "cpu", "--seconds", "0.5", "--preset", "quick", "--batch", "8",
                 "--json", str(tmp_path / "bench.json")]) == 0
    out = capsys.readouterr().out
    assert "gen it/s" in out and "eager (plain)" in out and "vs eager" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("eager")]
    assert [row[-5] for row in rows] == ["fp32", "fp32", "bf16"]  # no tf32 claim on a CPU; bf16 beside fp32
    assert [row[-2] for row in rows] == ["-", "-", "-"]  # no peak memory figure on a CPU
    fused = [r for r in json.loads((tmp_path / "bench.json").read_text())["results"] if r["variant"] == "eager fused"]
    ratio = fused[1]["iterations_per_s"] / fused[0]["iterations_per_s"]
    assert "bf16 vs fp32 (eager fused): " in out and f"gen it/s = {ratio:.2f}x" in out


def test_bench_timing_ends_near_the_seconds_asked_for():
    import time

    from wgan.bench import time_step

    class SlowStep:  # a step of 40 ms, like a CPU step of a small model
        calls = 0

        def __call__(self):
            self.calls += 1
            time.sleep(0.04)

        def read_and_reset(self, steps):
            pass

    step = SlowStep()
    t0 = time.perf_counter()
    its, count = time_step(step, 0.5, torch.device("cpu"), warmup_steps=1)
    wall = time.perf_counter() - t0
    assert step.calls == count + 1 and 8 <= count <= 13  # 0.5 s of 40 ms steps
    assert wall < 0.5 + 0.04 * 4  # a doubling chunk ran up to 1 s here
    assert its == pytest.approx(25, rel=0.3)


def test_channels_last_leaves_the_callers_dataset_alone():
    from wgan.training.fast import use_channels_last

    cfg = TrainConfig(dataset="fashion-mnist", model="dcgan32", image_size=32, channels=3, width=8, batch_size=8,
                      device="cpu", tensorboard=False)
    data = tiny_data(size=32, channels=3)
    state = TrainState.build(cfg, data=data)
    shared = state.data
    use_channels_last(state)
    assert state.data.x.is_contiguous(memory_format=torch.channels_last)
    assert shared.x.is_contiguous() and not shared.x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(state.data.x, shared.x)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_grouped_batch_norm_is_k_separate_calls(channels_last, momentum, float64):
    """One grouped call on k concatenated batches: the same outputs, input and parameter gradients,
    running statistics and batch count as k separate calls, and the input's memory format kept."""
    from wgan.training.fast import batch_norm_groups, enable_grouped_batch_norm

    torch.manual_seed(0)
    k, n = 3, 4
    separate = torch.nn.BatchNorm2d(5, momentum=momentum)
    torch.nn.init.normal_(separate.weight)
    torch.nn.init.normal_(separate.bias)
    grouped = copy.deepcopy(separate)
    layers = enable_grouped_batch_norm(grouped)
    assert layers == [grouped]
    x = torch.randn(k * n, 5, 6, 6) * 3 + 1
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    upstream = torch.randn(k * n, 5, 6, 6)

    x1 = x.clone().requires_grad_()
    y1 = torch.cat([separate(part) for part in x1.chunk(k)])
    (y1 * upstream).sum().backward()
    x2 = x.clone().requires_grad_()
    with batch_norm_groups(layers, k):
        y2 = grouped(x2)
    (y2 * upstream).sum().backward()

    torch.testing.assert_close(y1, y2, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=RTOL, atol=ATOL)
    for name in ("weight", "bias"):
        torch.testing.assert_close(getattr(separate, name).grad, getattr(grouped, name).grad, rtol=RTOL, atol=ATOL,
                                   msg=name)
    torch.testing.assert_close(separate.running_mean, grouped.running_mean, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(separate.running_var, grouped.running_var, rtol=RTOL, atol=ATOL)
    assert int(grouped.num_batches_tracked) == int(separate.num_batches_tracked) == k
    assert y2.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert grouped.groups == 1  # the context restores ungrouped calls
    with pytest.raises(ValueError, match="equal groups"), batch_norm_groups(layers, 5):
        grouped(x)
