"""The claims' measurements on critics whose answers are known, and `wgan claims` end to end."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from torch import nn

from wgan import claims, losses
from wgan.claims import Check, ClaimsRun, extreme_weight_share, gradient_norms, judge, kantorovich_bound
from wgan.metrics import exact_w1

from cli_helpers import run_cli


class Linear2d(nn.Module):
    """D(x) = a . x: gradient a everywhere, Lipschitz constant |a|."""

    def __init__(self, a):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def forward(self, x):
        return x @ self.a


def cloud(n=300, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)) * 0.3


def test_optimal_critic_of_a_translation_is_tight(float64):
    """Real = generated + v: W1 = |v|, and D(x) = v/|v| . x is an optimal critic, so estimate / L = W1.
    In float64, so the exact values hold to rounding."""
    fake = cloud()
    v = torch.tensor([3.0, -4.0])
    real = fake + v
    critic = Linear2d((v / v.norm()).tolist())
    estimate, lipschitz, bound = kantorovich_bound(critic(real), critic(fake), real, fake)
    w1 = exact_w1(fake.numpy(), real.numpy())
    assert w1 == pytest.approx(5.0, rel=1e-9)
    assert estimate == pytest.approx(5.0, rel=1e-9)
    assert lipschitz == pytest.approx(1.0, rel=1e-9)  # attained by the pairs (y + v, y)
    assert bound == pytest.approx(w1, rel=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_any_critic_gives_a_lower_bound(seed, float64):
    """Kantorovich-Rubinstein on two point sets: estimate / L <= W1 for an arbitrary (random MLP) critic."""
    torch.manual_seed(seed)
    critic = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1))
    real, fake = cloud(200, seed) + 1.0, cloud(200, seed + 10) * 2
    with torch.no_grad():
        rs, fs = critic(real).squeeze(1), critic(fake).squeeze(1)
    estimate, lipschitz, bound = kantorovich_bound(rs, fs, real, fake)
    w1 = exact_w1(fake.numpy(), real.numpy())
    assert bound <= w1 * (1 + 1e-9)
    # scaling the critic scales the estimate and L alike: the bound does not move
    e2, l2, b2 = kantorovich_bound(rs * 7, fs * 7, real, fake)
    assert (e2, l2) == pytest.approx((7 * estimate, 7 * lipschitz), rel=1e-9) and b2 == pytest.approx(bound, rel=1e-9)


def test_gradient_norms_of_a_linear_critic_are_its_slope():
    critic = Linear2d([0.6, 0.8 * 2])
    real, fake = cloud(50, 1), cloud(50, 2)
    norms = gradient_norms(critic, real, fake, torch.rand(50))
    assert torch.allclose(norms, torch.full((50,), float(np.hypot(0.6, 1.6))))


def test_extreme_weight_share_sees_clipping_saturate():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 1))
    assert extreme_weight_share(critic) < 0.1  # uniform initialisation: few weights near the largest
    with torch.no_grad():
        for p in critic.parameters():
            p.mul_(1000.0)
    losses.clip_weights(critic, 0.01)
    assert extreme_weight_share(critic) > 0.9


def _run(loss, w1s, estimates, share=0.0, grad=1.0, steps=2000, first_share=None):
    """A run checked at step 0 and then up to `steps`, one check per W1 value."""
    schedule = [0] + sorted({int(s) for s in np.linspace(1, steps, len(w1s) - 1).round()})
    assert len(schedule) == len(w1s) and schedule[-1] == steps
    checks = [Check(step=s, w1=w, estimate=e, lipschitz=1.0, bound=min(e, w), grad_norm_mean=grad,
                    grad_norm_std=0.1) for s, w, e in zip(schedule, w1s, estimates)]
    return ClaimsRun("toy-8gaussians", loss, checks, w1_floor=0.05, extreme_weight_share=share,
                     extreme_weight_share_first_step=share if first_share is None else first_share)


FALLING = [1.0, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1]  # step 0 and 8 checks after it, as the minimum asks


def _good(steps=2000, w1s=FALLING):
    return [_run("gp", w1s, [w * 0.95 for w in w1s], share=0.01, grad=1.05, steps=steps),
            _run("clip", w1s, [w * 1e-4 for w in w1s], share=0.8, grad=0.01, steps=steps)]


def test_judge_reads_the_measurements():
    good = judge(_good())
    assert [v.outcome for v in good] == ["holds"] * 7, [v for v in good if not v.holds]
    assert not any(v.reason for v in good)
    flat = [1.0, 1.0, 0.9, 0.95, 0.9, 0.92, 0.9, 0.95, 0.9]
    bad = judge([_run("gp", flat, [0.1, 0.5, 0.2, 0.1, 0.3, 0.2, 0.4, 0.1, 0.3], grad=0.3),
                 _run("clip", flat, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], share=0.2)])
    assert [v.outcome for v in bad] == ["holds"] + ["does not hold"] * 6
    broken = _run("gp", FALLING, FALLING)
    broken.checks[2].bound = broken.checks[2].w1 * 1.01  # a bound above W1 can only be a bug
    assert not judge([broken])[0].holds


def test_short_runs_are_inconclusive_not_negative():
    """The flat, badly estimated runs of the test above, but 30 steps long: too short to tell."""
    flat = [1.0, 1.0, 0.9, 0.95, 0.9, 0.92, 0.9, 0.95, 0.9]
    verdicts = judge([_run("gp", flat, [0.1, 0.5, 0.2, 0.1, 0.3, 0.2, 0.4, 0.1, 0.3], grad=0.3, steps=30),
                      _run("clip", flat, flat, share=0.2, steps=30)])
    bound, *rest = verdicts
    assert bound.holds and not bound.reason  # exact at any length
    assert [v.holds for v in rest] == [None] * 6
    for v in rest:
        assert v.reason.startswith("too short to tell: needs at least") and "(these runs have 30; raise --steps)" in v.reason
    text = claims.format_verdicts(verdicts)
    assert text.count("| inconclusive: too short to tell") == 6 and "does not hold" not in text


def test_a_short_run_still_fails_the_exact_bound():
    broken = _run("gp", FALLING, FALLING, steps=10)
    broken.checks[2].bound = broken.checks[2].w1 * 1.01
    assert judge([broken])[0].outcome == "does not hold"


@pytest.mark.parametrize("steps, expected", [(claims.MIN_STEPS_TRAINING - 1, {}),
                                             (claims.MIN_STEPS_TRAINING, {"tracks", "lowers"}),
                                             (claims.MIN_STEPS_TRAINED - 1, {"tracks", "lowers"}),
                                             (claims.MIN_STEPS_TRAINED, {"tracks", "lowers", "gradient", "close", "clipping"})])
def test_each_verdict_needs_its_minimum_of_steps(steps, expected):
    judged = {v.claim for v in judge(_good(steps)) if v.holds is not None}
    keys = {"tracks": "tracks the Wasserstein", "lowers": "lowers the Wasserstein", "gradient": "gradient norm about 1",
            "close": "close to W1", "clipping": "clipping bounds"}
    assert {k for k, text in keys.items() if any(text in c for c in judged)} == set(expected)
    assert any("lower bound" in c for c in judged)


def test_tracking_needs_its_minimum_of_checks():
    enough = judge(_good())
    fewer = judge(_good(w1s=FALLING[:claims.MIN_TRACKING_CHECKS]))  # one check after step 0 short
    tracking = lambda vs: [v for v in vs if "tracks" in v.claim]
    assert [v.outcome for v in tracking(enough)] == ["holds", "holds"]
    assert [v.outcome for v in tracking(fewer)] == ["inconclusive", "inconclusive"]
    assert all(f"checks after step 0 (these runs have {claims.MIN_TRACKING_CHECKS - 1}; raise --checks)" in v.reason
               and "n/a (too few checks)" in v.measured for v in tracking(fewer))
    # the verdicts that need no run of checks are still given
    assert [v.outcome for v in fewer if "tracks" not in v.claim] == ["holds"] * 5


def test_saturation_is_judged_at_the_end_and_shows_the_first_step():
    gp = _run("gp", FALLING, FALLING, share=0.0, first_share=0.01)
    saturated_from_the_start = _run("clip", FALLING, FALLING, share=0.62, first_share=0.73)
    (v,) = [v for v in judge([gp, saturated_from_the_start]) if "clipping bounds" in v.claim]
    assert v.holds and "8gaussians clip 0.73 -> 0.62" in v.measured and "with the penalty: 8gaussians gp 0.01 -> 0.00" in v.measured
    spread_by_training = _run("clip", FALLING, FALLING, share=0.3, first_share=0.73)
    (v,) = [v for v in judge([spread_by_training]) if "clipping bounds" in v.claim]
    assert v.outcome == "does not hold" and "0.73 -> 0.30" in v.measured


def test_tables_and_lines_show_no_nan_for_short_runs():
    short = _run("gp", [1.0, 0.5, 0.4], [0.0, 0.3, 0.2], steps=4)
    table = claims.format_runs_table([short])
    assert "n/a (too few checks)" in table and "nan" not in table
    assert claims.correlation_text(_good()[0]) == f"{claims.correlation(_good()[0]):.2f}"
    constant = _run("gp", FALLING, [0.5] * len(FALLING))
    assert claims.correlation_text(constant) == "n/a (constant)"
    lines = [claims.verdict_line(v) for v in judge([short])]
    assert lines[0].startswith("holds: any critic's estimate / L")
    assert all(line.startswith("INCONCLUSIVE: ") and line.splitlines()[-1].strip().startswith("too short to tell")
               for line in lines[1:])


def test_clipping_the_default_initialisation_saturates_before_training():
    """PyTorch initialises each weight uniformly within +-1/sqrt(fan_in), +-0.044 at width 512: wider
    than c = 0.01, so the first clip alone puts most weights at +-c."""
    plan = claims.claims_plan("toy-8gaussians", "clip", width=512, device="cpu", seed=0)
    fan_in_512 = 1 - 0.99 * 0.01 * np.sqrt(512)  # the share of U(-1/sqrt(512), 1/sqrt(512)) beyond 0.99 c
    run = claims.train_and_check(plan, steps=1, checks=2, points=50, note=lambda _: None)
    assert run.extreme_weight_share_first_step == run.extreme_weight_share  # one step: the same moment
    assert 0.6 < run.extreme_weight_share_first_step <= fan_in_512 + 0.01


def test_wgan_claims_end_to_end(tmp_path):
    rc, out, err = run_cli("claims", "--datasets", "toy-8gaussians", "--steps", "4",
                                     "--checks", "3", "--points", "100", "--width", "16", "--device", "cpu",
                                     "--runs-dir", str(tmp_path))
    assert rc == 0, err
    (run,) = tmp_path.iterdir()
    assert run.name.endswith("-claims")
    for name in ("claims.json", "claims.md", "claims.png"):
        assert (run / name).stat().st_size > 0, name
    result = json.loads((run / "claims.json").read_text())
    assert result["complete"]
    assert [(r["dataset"], r["loss"]) for r in result["runs"]] == [("toy-8gaussians", "gp"), ("toy-8gaussians", "clip")]
    for r in result["runs"]:
        assert [c["step"] for c in r["checks"]] == [0, 1, 4]
        assert 0 < r["w1_floor"] < r["checks"][0]["w1"]
        assert all(c["bound"] <= c["w1"] for c in r["checks"])
    bound, *rest = result["verdicts"]
    assert bound["holds"] and not bound["reason"]  # the exact inequality holds even for an untrained critic
    assert rest and all(v["holds"] is None and "raise --steps" in v["reason"] for v in rest)
    for r in result["runs"]:
        assert 0 <= r["extreme_weight_share"] <= 1 and 0 <= r["extreme_weight_share_first_step"] <= 1
    md = (run / "claims.md").read_text()
    assert "inconclusive: too short to tell" in md and "n/a (too few checks)" in md and "nan" not in md
    tables = [[line for line in block.splitlines() if line.startswith("|")]
              for block in (run / "claims.md").read_text().split("\n\n")]
    for rows in filter(None, tables):  # every row has its table's columns: a |grad| in a cell is escaped
        assert len({len(re.split(r"(?<!\\)\|", row)) for row in rows}) == 1, rows
    assert "Kantorovich" in out and str(run) in out
    assert "INCONCLUSIVE: " in out and "DOES NOT HOLD" not in out  # 4 steps support no verdict on training


@pytest.mark.parametrize("argv, needle", [(["--datasets", "fashion-mnist"], "--datasets fashion-mnist"),
                                          (["--losses", "hinge"], "--losses hinge"),
                                          (["--steps", "0"], "--steps 0"),
                                          (["--checks", "1"], "--checks 1"),
                                          (["--points", "3"], "--points 3"),
                                          (["--points", "10000000"], "--points 10000000: exact optimal transport"),
                                          (["--width", "1000000000"], "--width 1000000000 / --latent-dim 2"),
                                          (["--gp-weight", "-1"], "--gp-weight -1"),
                                          (["--critic-steps-boosted", "3"], "--critic-steps-boosted 3")])
def test_wgan_claims_refuses_bad_options(tmp_path, argv, needle):
    rc, _, err = run_cli("claims", "--runs-dir", str(tmp_path / "runs"), *argv)
    assert rc == 2 and err.count("\n") == 1 and needle in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("steps, checks", [(2000, 16), (4, 3), (1, 2), (10, 50), (100000, 5)])
def test_check_steps_start_at_zero_and_end_at_the_last_step(steps, checks):
    schedule = claims.check_steps(steps, checks)
    assert schedule[0] == 0 and schedule[-1] == steps
    assert schedule == sorted(set(schedule)) and len(schedule) <= checks + 1
    if steps >= 1000:  # geometric: more checks in the first tenth than in the last half
        assert sum(s <= steps / 10 for s in schedule) > sum(s > steps / 2 for s in schedule)


def test_a_stopped_claims_job_keeps_the_runs_it_finished(tmp_path, monkeypatch):
    real_train = claims.train_and_check
    calls = []

    def train_then_stop(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(claims, "train_and_check", train_then_stop)
    rc, _, _ = run_cli("claims", "--datasets", "toy-8gaussians", "--steps", "2", "--checks", "2", "--points", "50",
                       "--width", "8", "--device", "cpu", "--runs-dir", str(tmp_path))
    assert rc == 130
    (run,) = tmp_path.iterdir()
    result = json.loads((run / "claims.json").read_text())
    assert not result["complete"] and [r["loss"] for r in result["runs"]] == ["gp"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_wgan_claims_refuses_an_absent_device_before_writing(tmp_path):
    rc, _, err = run_cli("claims", "--device", "cuda", "--runs-dir", str(tmp_path / "runs"))
    assert rc == 2 and "--device cuda" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_loss_settings_are_the_papers():
    assert claims.LOSS_SETTINGS["clip"] == dict(loss="clip", optimizer="rmsprop", lr_critic=5e-5, lr_generator=5e-5,
                                                clip_value=0.01)
