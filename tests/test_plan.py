"""A run's plan is made once: one validation of the options per `wgan train`, and one rule for the step that
`wgan train`, `wgan claims` and `wgan bench` all ask."""

from __future__ import annotations

import sys

import pytest
import torch

from cli_helpers import TINY, run_cli, train_tiny
from wgan import bench, claims, config, distributed, launch
from wgan.config import TrainConfig
from wgan.data import Data
from wgan.training import plan as plans
from wgan.training.fast import FusedWganStep, describe_step, make_step
from wgan.training.plan import StepChoice, choose_step, make_plan
from wgan.training.state import TrainState
from wgan.training import step as step_module
from wgan.training.step import WganStep

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture
def validations(monkeypatch) -> list[TrainConfig]:
    """Every call of config.validate from here on, whichever module holds it under whichever name."""
    import wgan.cli  # noqa: F401  (the command's modules, so that every holder of validate is loaded)

    real, calls = config.validate, []

    def counted(cfg):
        calls.append(cfg)
        return real(cfg)

    for module in list(sys.modules.values()):
        for name, value in list(vars(module).items() if module is not None else ()):
            if value is real:
                monkeypatch.setattr(module, name, counted)
    return calls


def test_one_wgan_train_validates_its_options_once(validations, tmp_path, fashion_idx_dir):
    run = train_tiny(tmp_path / "runs", fashion_idx_dir)
    assert len(validations) == 1 and validations[0].steps == 2
    assert "step: plain eager" in (run / "log.txt").read_text()


def test_a_resumed_run_validates_its_options_once(validations, tmp_path, fashion_idx_dir):
    run = train_tiny(tmp_path / "runs", fashion_idx_dir, "--checkpoint-every-steps", "1")
    validations.clear()
    code, _, err = run_cli("train", "--resume", run, "--steps", "3", "--no-progress")
    assert code == 0, err
    assert len(validations) == 1 and validations[0].steps == 3


def test_a_dry_run_validates_once_and_says_why_its_step_is_plain(validations, tmp_path, fashion_idx_dir):
    code, _, err = run_cli("train", *TINY, "--data", fashion_idx_dir, "--runs-dir", tmp_path / "runs", "--dry-run",
                           "--precision", "fp32")
    assert code == 0, err
    assert len(validations) == 1
    (run,) = (tmp_path / "runs").iterdir()
    assert "step: plain eager (fp32; the fast path is for CUDA)" in (run / "log.txt").read_text()


# ---------------------------------------------------------------------------------------------
# The one rule for the step


def toy_options(**over) -> dict:
    return dict(preset="toy-8gaussians", device="cpu", width=8, seed=0, tensorboard=False, **over)


@pytest.fixture
def rule_calls(monkeypatch) -> list[tuple[tuple, StepChoice]]:
    """Every question put to choose_step, with the inputs that matter to it and its answer."""
    real, calls = plans.choose_step, []

    def recorded(cfg, device, *, dry_run=False, fast=None):
        answer = real(cfg, device, dry_run=dry_run, fast=fast)
        calls.append(((cfg.fast, cfg.sync_batch_norm, device.type, dry_run, fast), answer))
        return answer

    monkeypatch.setattr(plans, "choose_step", recorded)
    return calls


def test_train_claims_and_bench_ask_one_rule_and_get_one_answer(rule_calls, tmp_path):
    options = toy_options(runs_dir=str(tmp_path / "runs"))
    trained = launch.plan_run(options, None, False, note=lambda _: None)
    claimed = claims.claims_plan("toy-8gaussians", "gp", width=8, device="cpu", seed=0)
    sites = {"train": len(rule_calls)}
    results, _, _ = bench.run_bench("toy-8gaussians", batch_size=8, seconds=0.01, device_name="cpu", precision="fp32")
    sites["bench"] = len(rule_calls)
    # on a CPU the plain step is the fast one: wgan train and wgan claims run it, for the same reason
    assert trained.step == claimed.step == StepChoice("plain", "the fast path is for CUDA")
    answers: dict[tuple, StepChoice] = {}
    for inputs, answer in rule_calls:
        assert answers.setdefault(inputs, answer) == answer, inputs  # the same question, the same answer
    asked_by_bench = [inputs for inputs, _ in rule_calls[sites["train"]:]]
    assert (True, False, "cpu", False, None) in asked_by_bench  # bench's own options: the question train asks
    assert answers[(True, False, "cpu", False, None)] == trained.step
    # what bench times beside it, asked of the same rule: the fused step, the one a CPU runs fastest
    assert answers[(True, False, "cpu", False, True)] == StepChoice("fused", "CUDA graphs need a CUDA device")
    assert [r["variant"] for r in results] == ["eager (plain)", "eager fused", "eager fused"]
    assert results[1]["note"] == "CUDA graph off: CUDA graphs need a CUDA device; using the fused eager step"


@pytest.mark.parametrize("change, dry_run, why", [
    (dict(fast=False), False, "--no-fast"),
    ({}, True, "a dry run"),
    (dict(sync_batch_norm=True), False, "--sync-batch-norm's collectives are not captured"),
])
def test_on_cuda_the_plain_step_says_why(change, dry_run, why):
    cfg = TrainConfig(**change)
    choice = choose_step(cfg, CUDA, dry_run=dry_run)
    assert choice == StepChoice("plain", why) and not choice.fast


def test_on_cuda_the_options_plan_the_graph_and_a_cpu_the_plain_step():
    assert choose_step(TrainConfig(), CUDA) == StepChoice("graph")
    assert choose_step(TrainConfig(), CPU, dry_run=True).why == "the fast path is for CUDA"  # the first that holds
    assert choose_step(TrainConfig(fast=False), CUDA, fast=True) == StepChoice("graph")  # bench: whatever the options


def test_the_plan_settles_the_config_sizes_paths_device_and_precision(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = make_plan(TrainConfig(dataset="fashion-mnist", image_size=0, channels=0, data="here", device="cpu",
                                 precision="fp32"))
    assert (plan.cfg.image_size, plan.cfg.channels) == (28, 1)
    assert plan.cfg.data == str(tmp_path / "here")
    assert plan.device == CPU and plan.precision.name == "fp32" and plan.step.kind == "plain"
    assert (plan.world_size, plan.rank, plan.resume, plan.total_steps) == (1, 0, None, plan.cfg.steps)
    assert make_plan(TrainConfig(device="cpu"), dry_run=True).total_steps == 2


def test_the_state_and_the_step_take_the_plan_as_it_is(validations, monkeypatch):
    """Nothing below the plan validates or resolves again; the data's own fallback is make_step's alone."""
    plan = make_plan(TrainConfig(dataset="fashion-mnist", width=8, batch_size=8, critic_steps=1, device="cpu",
                                 precision="fp32", tensorboard=False)).variant(fast=True)
    validations.clear()
    resolvers = ((distributed, "resolve_device"), (plans, "resolve_precision"), (step_module, "resolve_precision"))
    for module, name in resolvers:
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("resolved again"))
    x = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)
    state = TrainState.build(plan, data=Data("tiny", x, source="memory"))
    assert state.cfg is plan.cfg and state.precision is plan.precision
    assert not any(g.get("capturable") for g in state.opt_c.param_groups)  # no graph planned on a CPU
    step, note = make_step(state, plan.step.fast)
    assert isinstance(step, FusedWganStep) and "CUDA graphs need a CUDA device" in note
    step, note = make_step(state, False)
    assert type(step) is WganStep and note is None
    assert validations == []
    why = choose_step(plan.cfg, CPU, fast=False).why
    assert describe_step(step, why) == "plain eager (fp32; the plain step asked for)"
