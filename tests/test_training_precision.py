"""--precision: its resolution on each device (the CPU's bf16 detection stood in for, so the tests pass on
any CPU), and bf16 on a CPU: where autocast applies, the fp32 losses and penalty norm, and a step that trains.

bf16 numbers are compared with nothing tight: the tests check dtypes, finiteness and where gradients go."""

from __future__ import annotations

import math

import pytest
import torch

from wgan import losses
from wgan.config import PRECISIONS, TrainConfig
from wgan.data import Data
from wgan.errors import UserError
from wgan.training import precision as prec
from wgan.training.fast import FusedWganStep, describe_step, make_step
from wgan.training.plan import choose_step
from wgan.training.precision import Precision, bf16_in_cpuinfo, resolve_precision
from wgan.training.state import TrainState
from wgan.training.step import WganStep

CPU = torch.device("cpu")
CUDA = torch.device("cuda", 0)  # a device name only: nothing runs on it here


@pytest.fixture
def cpu_bf16(monkeypatch):
    """Stand in for the CPU's bf16 detection: cpu_bf16("AVX512-BF16") or cpu_bf16(None)."""
    def set_to(instructions: str | None, measured_equal: bool = False):
        monkeypatch.setattr(prec, "cpu_bf16_instructions", lambda: instructions)
        monkeypatch.setattr(prec, "CPU_BF16_MEASURED_EQUAL", measured_equal)
    return set_to


# --- resolution ----------------------------------------------------------------------------


def test_auto_is_the_default_and_a_known_precision():
    assert TrainConfig().precision == "auto" and set(PRECISIONS) == {"auto", "fp32", "tf32", "bf16"}


@pytest.mark.parametrize("instructions", [None, "AVX512-BF16", "AMX"])
def test_auto_on_a_cpu_stays_fp32_until_bf16_is_measured_equal(cpu_bf16, instructions):
    cpu_bf16(instructions)
    chosen = resolve_precision("auto", CPU)
    assert chosen.name == "fp32" and chosen.why.startswith("auto: ")
    if instructions:
        assert instructions in chosen.why and "--precision bf16" in chosen.why, "says how to opt in"
    else:
        assert "no native bf16" in chosen.why


def test_auto_on_a_cpu_picks_bf16_only_where_it_is_native_and_measured_equal(cpu_bf16):
    cpu_bf16("AMX", measured_equal=True)
    assert resolve_precision("auto", CPU) == Precision("bf16", "auto: CPU autocast on AMX")
    cpu_bf16(None, measured_equal=True)
    assert resolve_precision("auto", CPU).name == "fp32"


def test_explicit_precisions_on_a_cpu(cpu_bf16):
    cpu_bf16("AVX512-BF16")
    assert resolve_precision("fp32", CPU) == Precision("fp32", "asked for")
    assert resolve_precision("tf32", CPU).name == "fp32" and "CUDA setting" in resolve_precision("tf32", CPU).why
    chosen = resolve_precision("bf16", CPU)
    assert chosen.name == "bf16" and "AVX512-BF16" in chosen.why


def test_bf16_on_a_cpu_without_it_is_refused_in_one_line_but_benchmarked_emulated(cpu_bf16):
    cpu_bf16(None)
    with pytest.raises(UserError) as refused:
        resolve_precision("bf16", CPU)
    message = str(refused.value)
    assert "\n" not in message and message.startswith("--precision bf16: this CPU has no native bf16")
    assert "--precision fp32" in message
    emulated = resolve_precision("bf16", CPU, emulated_ok=True)
    assert emulated.name == "bf16" and emulated.why.startswith("emulated")


def test_precisions_on_cuda(monkeypatch):
    monkeypatch.setattr(prec, "cuda_has_bf16", lambda device: True)
    assert resolve_precision("auto", CUDA).name == "tf32"
    assert [resolve_precision(p, CUDA).name for p in ("fp32", "tf32", "bf16")] == ["fp32", "tf32", "bf16"]
    monkeypatch.setattr(prec, "cuda_has_bf16", lambda device: False)
    with pytest.raises(UserError, match="--precision bf16: cuda:0 has no native bf16"):
        resolve_precision("bf16", CUDA)


# --- detection -------------------------------------------------------------------------------

X86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f {extra}\nbugs\t\t: sysret_ss_attrs\n"
ARM = "processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd sve {extra} i8mm\nCPU implementer\t: 0x41\n"


@pytest.mark.parametrize("text, expected", [
    (X86.format(extra="avx512_bf16 avx512_vnni"), "AVX512-BF16"),
    (X86.format(extra="amx_bf16 amx_tile avx512_bf16"), "AMX"),
    (X86.format(extra="avx512bw avx512_vnni"), None),  # AVX-512 without its bf16 extension
    (ARM.format(extra="bf16"), "Arm BF16"),
    (ARM.format(extra="svebf16x"), None),  # a flag is a whole word
    ("", None),
    ("model name : some CPU\n", None),
])
def test_bf16_instructions_are_read_from_cpuinfo_flags(text, expected):
    assert bf16_in_cpuinfo(text) == expected


def test_detection_without_torchs_probes_or_cpuinfo_says_none(monkeypatch, tmp_path):
    """A torch build without the private probes, and no /proc/cpuinfo (macOS, Windows): no native bf16."""
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: 1 / 0, raising=False)  # a probe that fails
    monkeypatch.setattr(prec, "CPUINFO", tmp_path / "absent")
    prec.cpu_bf16_instructions.cache_clear()
    try:
        assert prec.cpu_bf16_instructions() is None
        monkeypatch.setattr(prec, "CPUINFO", tmp_path / "cpuinfo")
        (tmp_path / "cpuinfo").write_text(X86.format(extra="avx512_bf16"))
        prec.cpu_bf16_instructions.cache_clear()
        assert prec.cpu_bf16_instructions() == "AVX512-BF16"
    finally:
        prec.cpu_bf16_instructions.cache_clear()


# --- bf16 on a CPU ---------------------------------------------------------------------------


def tiny_data(n: int = 64, classes: int = 3) -> Data:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    return Data("tiny", x, torch.randint(0, classes, (n,), generator=g), classes, [str(i) for i in range(classes)],
                source="memory")


def bf16_state(cpu_bf16, **overrides) -> TrainState:
    cpu_bf16("AVX512-BF16")  # on a CPU without it, autocast emulates bf16: slow, but the same dtypes
    cfg = TrainConfig(**{**dict(dataset="fashion-mnist", width=8, batch_size=8, critic_steps=2, device="cpu",
                                precision="bf16", tensorboard=False), **overrides})
    torch.manual_seed(0)
    return TrainState.build(cfg, data=tiny_data())


def record_dtypes(monkeypatch, state: TrainState) -> dict[str, list]:
    """What the critic's layers compute in, what the losses and the penalty norm are given, and whether
    autocast is on when the norm is taken."""
    seen = {"critic": [], "generator": [], "critic_loss": [], "generator_loss": [], "norm": []}
    for name, module in (("critic", state.critic), ("generator", state.generator)):
        first = next(m for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.ConvTranspose2d)))
        first.register_forward_hook(lambda m, i, out, name=name: seen[name].append(out.dtype))
    norm, critic_loss, generator_loss = losses.penalty_from_gradient, losses.critic_loss, losses.generator_loss

    def penalty_from_gradient(grad, **kw):
        seen["norm"].append((grad.dtype, torch.is_autocast_enabled("cpu")))
        return norm(grad, **kw)

    def recording_critic_loss(real, fake):
        seen["critic_loss"].append((real.dtype, fake.dtype))
        return critic_loss(real, fake)

    def recording_generator_loss(scores):
        seen["generator_loss"].append(scores.dtype)
        return generator_loss(scores)

    monkeypatch.setattr(losses, "penalty_from_gradient", penalty_from_gradient)
    monkeypatch.setattr(losses, "critic_loss", recording_critic_loss)
    monkeypatch.setattr(losses, "generator_loss", recording_generator_loss)
    return seen


@pytest.mark.parametrize("step_cls", [WganStep, FusedWganStep])
@pytest.mark.parametrize("conditional", [False, True])
def test_bf16_on_a_cpu_runs_the_models_under_autocast_and_the_losses_and_norm_in_fp32(cpu_bf16, monkeypatch,
                                                                                      step_cls, conditional):
    state = bf16_state(cpu_bf16, conditional=conditional)
    step, _ = make_step(state, fast=step_cls is FusedWganStep)
    assert type(step) is step_cls and step.precision.name == "bf16"
    seen = record_dtypes(monkeypatch, state)
    step()
    assert set(seen["critic"]) == {torch.bfloat16}, "real, fake and interpolate passes all under autocast"
    assert set(seen["generator"]) == {torch.bfloat16}
    assert seen["norm"] == [(torch.float32, False)] * 2, "one penalty per critic step, its norm fp32 outside autocast"
    assert seen["critic_loss"] == [(torch.float32, torch.float32)] * 2 and seen["generator_loss"] == [torch.float32]
    assert all(p.dtype == torch.float32 for p in [*state.critic.parameters(), *state.generator.parameters()])
    assert not torch.is_autocast_enabled("cpu"), "the region closes with the step"


def test_bf16_on_a_cpu_trains_with_finite_losses_and_a_penalty_that_reaches_the_critic(cpu_bf16):
    state = bf16_state(cpu_bf16)
    step, _ = make_step(state, fast=False)
    # The penalty alone, as the step computes it (under its CPU autocast), puts gradients on the critic.
    real, _ = state.data.batch(8)
    with torch.no_grad(), step.autocast:
        fake = state.generator(torch.randn(8, state.cfg.latent_dim))
    state.critic.zero_grad()
    penalty = step._penalty(real, losses.upcast(fake), None)
    assert penalty.dtype == torch.float32 and penalty.item() > 0
    penalty.backward()
    first_weight = next(p for name, p in state.critic.named_parameters() if name.endswith("weight"))
    assert first_weight.grad is not None and first_weight.grad.abs().sum() > 0
    before = [p.detach().clone() for p in state.critic.parameters()]
    for _ in range(3):
        step()
    stats = step.read_and_reset(3)
    assert all(math.isfinite(v) for v in stats.values()) and stats["penalty"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, state.critic.parameters()))


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("overrides", [
    dict(loss="sn"),
    dict(loss="clip", optimizer="rmsprop", critic_norm="batch"),
    dict(loss="lp", model="resnet32", conditional=True),  # an AC-GAN critic: its class loss in fp32 too
    dict(loss="gp", augment="color,translation,cutout", ema_halflife_kimg=0.01),
], ids=["sn", "clip-batchnorm", "lp-resnet32-acgan", "gp-augment-ema"])
def test_bf16_on_a_cpu_runs_every_loss_and_model(cpu_bf16, overrides, fused):
    state = bf16_state(cpu_bf16, **overrides)
    step, _ = make_step(state, fast=fused)
    before = [p.detach().clone() for p in state.critic.parameters()]
    for _ in range(2):
        step()
    stats = step.read_and_reset(2)
    assert all(math.isfinite(v) for v in stats.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, state.critic.parameters()))


def test_fp32_on_a_cpu_opens_no_autocast_region(cpu_bf16, monkeypatch):
    state = bf16_state(cpu_bf16, precision="auto")
    step, _ = make_step(state, fast=False)
    seen = record_dtypes(monkeypatch, state)
    step()
    assert step.precision.name == "fp32" and set(seen["critic"]) == {torch.float32}
    why = choose_step(state.cfg, CPU).why
    assert describe_step(step, why) == "plain eager (fp32; the fast path is for CUDA)"


# --- the command line ------------------------------------------------------------------------

TINY_TRAIN = ["train", "--preset", "quick", "--dry-run", "--width", "8", "--batch-size", "16", "--no-progress",
              "--device", "cpu", "--no-tensorboard"]


def test_train_bf16_on_a_cpu_without_it_is_one_line_and_writes_nothing(cpu_bf16, fashion_idx_dir, tmp_path, capsys):
    from wgan import cli

    cpu_bf16(None)
    rc = cli.main([*TINY_TRAIN, "--precision", "bf16", "--data", str(fashion_idx_dir), "--runs-dir", str(tmp_path / "runs")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "--precision bf16: this CPU has no native bf16" in lines[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("asked, logged", [
    ("bf16", "precision=bf16 (asked for; CPU autocast on AVX512-BF16)"),
    ("auto", "precision=fp32 (auto: bf16 on this CPU's AVX512-BF16 is opt-in until measured equal in quality"),
])
def test_log_names_the_precision_chosen_and_why(cpu_bf16, fashion_idx_dir, tmp_path, asked, logged):
    from wgan import cli

    cpu_bf16("AVX512-BF16")
    runs = tmp_path / "runs"
    assert cli.main([*TINY_TRAIN, "--precision", asked, "--data", str(fashion_idx_dir), "--runs-dir", str(runs)]) == 0
    (run,) = runs.iterdir()
    log = (run / "log.txt").read_text()
    assert logged in log and f"step: plain eager ({logged.split('=')[1].split()[0]};" in log
