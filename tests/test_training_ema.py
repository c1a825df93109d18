"""The generator's moving average: the update against a hand-computed average, the ramp-up, batch-norm
statistics copied, and the average as the generator that grids, metrics and exports use."""

from __future__ import annotations

import math

import torch
from torch import nn

from cli_helpers import TINY, run_cli
from wgan import checkpoint as ckpt
from wgan import exported
from wgan import rundir
from wgan.training.ema import GeneratorEMA


class TinyGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.norm = nn.BatchNorm1d(2)

    def forward(self, z):
        return self.norm(self.linear(z))


def test_the_update_is_the_stylegan_average_with_its_ramp_up(float64):
    """beta_t = 0.5 ** (B / min(H, rampup * images_t)) with images_t = t * B before update t;
    ema_t = beta_t ema_{t-1} + (1 - beta_t) g_t, and the first update copies the generator."""
    torch.manual_seed(0)
    g = TinyGenerator()
    batch, halflife_kimg, rampup = 64, 0.5, 0.5
    ema = GeneratorEMA(g, halflife_kimg=halflife_kimg, rampup=rampup, images_per_step=batch)
    expected = {k: v.clone() for k, v in g.named_parameters()}
    for t in range(40):
        with torch.no_grad():
            for p in g.parameters():
                p.add_(torch.randn_like(p))  # a training step
        images = t * batch
        halflife = min(halflife_kimg * 1000, rampup * images)
        beta = 0.5 ** (batch / max(halflife, 1e-8))
        for k, p in g.named_parameters():
            expected[k] = beta * expected[k] + (1 - beta) * p.detach()
        ema.update()
        if t == 0:
            assert beta == 0.0  # the ramp-up starts from the generator itself
        for k, p in ema.module.named_parameters():
            torch.testing.assert_close(p, expected[k], rtol=1e-12, atol=1e-12, msg=f"step {t} {k}")
    assert float(ema.images) == 40 * batch
    # late in training the ramp-up no longer binds: the half-life is the asked-for one
    assert math.isclose(float(ema.beta()), 0.5 ** (batch / (halflife_kimg * 1000)), rel_tol=1e-12)


def test_without_ramp_up_the_half_life_holds_from_the_first_step(float64):
    g = TinyGenerator()
    ema = GeneratorEMA(g, halflife_kimg=10, rampup=0, images_per_step=100)
    assert math.isclose(float(ema.beta()), 0.5 ** (100 / 10_000), rel_tol=1e-12)


def test_batch_norm_statistics_are_copied_not_averaged():
    g = TinyGenerator()
    ema = GeneratorEMA(g, halflife_kimg=10, rampup=0, images_per_step=8)
    g.train()
    g(torch.randn(8, 3) * 5 + 3)  # moves the running statistics
    ema.update()
    assert torch.equal(ema.module.norm.running_mean, g.norm.running_mean)
    assert torch.equal(ema.module.norm.num_batches_tracked, g.norm.num_batches_tracked)
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())


def test_a_run_samples_exports_and_checkpoints_the_average(tmp_path, fashion_idx_dir):
    runs = tmp_path / "runs"
    code, _, err = run_cli("train", *TINY, "--data", fashion_idx_dir, "--runs-dir", runs, "--steps", "4",
                           "--ema-halflife-kimg", "0.01", "--checkpoint-every-steps", "2")
    assert code == 0, err
    (run,) = runs.iterdir()
    state = ckpt.load_checkpoint(run / rundir.CHECKPOINTS / rundir.checkpoint_name(4))
    assert state["ema"]["images"] == 4 * 8  # 4 generator steps of TINY's batch of 8
    assert not all(torch.equal(state["ema"]["generator"][k], state["generator"][k]) for k in state["generator"])
    loaded = exported.load_generator(run / rundir.GENERATOR)
    assert loaded.weights == "ema"
    assert all(torch.equal(v, state["ema"]["generator"][k]) for k, v in loaded.generator.state_dict().items())
    raw = exported.load_generator(run, raw=True)
    assert raw.weights == "raw"
    assert all(torch.equal(v, state["generator"][k]) for k, v in raw.generator.state_dict().items())
    b = tmp_path / "b.npz"
    code, _, err = run_cli("sample", "--weights", run / rundir.GENERATOR, "--num", "4", "--out", b, "--raw-generator")
    assert code == 2 and "moving average" in err and "--raw-generator" in err and len(err.strip().splitlines()) == 1


def test_halflife_zero_turns_the_average_off(tmp_path, fashion_idx_dir):
    runs = tmp_path / "runs"
    code, _, err = run_cli("train", *TINY, "--data", fashion_idx_dir, "--runs-dir", runs, "--steps", "2",
                           "--ema-halflife-kimg", "0")
    assert code == 0, err
    (run,) = runs.iterdir()
    state = ckpt.load_checkpoint(run / rundir.CHECKPOINTS / rundir.checkpoint_name(2))
    assert state["ema"] is None and exported.load_generator(run).weights == "raw"
