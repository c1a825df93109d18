"""Resume: kill -9 and SIGTERM at a random step then resume ends bitwise equal to an unstopped run;
NaN guard; --resume auto; which options may change on resume (property-based)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cli_helpers import TINY, finish, run_cli, snapshot, wgan_process
from wgan import checkpoint as ckpt
from wgan import losses, rundir
from wgan.config import TrainConfig


STEPS = 40
# Tiny but complete: GP critic with 2 critic steps, checkpoints every 3 steps, records every 5,
# sample grids every 10, so a kill lands between checkpoints, records and grids.
DETERMINISTIC = ["--preset", "quick", "--width", "8", "--latent-dim", "16", "--batch-size", "16", "--critic-steps", "2",
                 "--checkpoint-every-steps", "3", "--keep-checkpoints", "2", "--log-every-steps", "5",
                 "--sample-every-steps", "10", "--no-tensorboard", "--deterministic", "--device", "cpu",
                 "--no-progress", "--steps", str(STEPS)]


@pytest.fixture(scope="module")
def data_dir(fashion_idx_dir_module) -> Path:
    return fashion_idx_dir_module


# ---------------------------------------------------------------------------------------------
# Kill and resume, in real processes


@pytest.fixture
def torch_flags():
    """--deterministic and --precision set process-wide torch flags: give them back after the test."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) = saved[2:]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir) -> Path:
    """The uninterrupted run. In this process: the state that a resumed run gets comes from disk only,
    so where each part runs does not matter, and this saves starting another interpreter."""
    runs = tmp_path_factory.mktemp("reference")
    saved = torch.are_deterministic_algorithms_enabled()
    code, _, err = run_cli("train", *DETERMINISTIC, "--data", data_dir, "--runs-dir", runs)
    torch.use_deterministic_algorithms(saved)
    assert code == 0, err
    (run,) = runs.iterdir()
    return run


def interrupt_at_random_step(runs: Path, data_dir: Path, sig: int) -> tuple[subprocess.Popen, Path]:
    """Start a run, wait for a checkpoint at a random step in its first half, wait a random while
    more (so the signal lands anywhere between checkpoints, records and grids), then send `sig`."""
    proc = wgan_process("train", *DETERMINISTIC, "--data", data_dir, "--runs-dir", runs)
    first_step = random.choice(range(3, STEPS // 2 + 1, 3))
    deadline = time.monotonic() + 120
    while max(map(ckpt.checkpoint_step, runs.glob("*/checkpoints/step-*.pt")), default=0) < first_step:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    time.sleep(random.uniform(0.0, 0.15))
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    (run,) = runs.iterdir()
    return proc, run


def assert_same_run(run: Path, ref: Path) -> None:
    """Bitwise equal parameters, optimiser states, sample grids and logged losses."""
    from safetensors.torch import load_file

    a, b = load_file(str(run / "generator.safetensors")), load_file(str(ref / "generator.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"generator {k} differs"
    last = rundir.checkpoint_name(STEPS)
    sa, sb = ckpt.load_checkpoint(run / "checkpoints" / last), ckpt.load_checkpoint(ref / "checkpoints" / last)
    for part in ("generator", "critic"):
        for k in sb[part]:
            assert torch.equal(sa[part][k], sb[part][k]), f"{part} {k} differs"
    assert sa["ema"]["images"] == sb["ema"]["images"]  # the generator's moving average, resumed exactly too
    for k in sb["ema"]["generator"]:
        assert torch.equal(sa["ema"]["generator"][k], sb["ema"]["generator"][k]), f"ema {k} differs"
    for part in ("opt_generator", "opt_critic"):
        for index, moments in sb[part]["state"].items():
            for k, v in moments.items():
                assert torch.equal(sa[part]["state"][index][k], v), f"{part} {index} {k} differs"
    assert torch.equal(sa["fixed_z"], sb["fixed_z"])
    grids = sorted(p.name for p in (ref / "samples").iterdir())
    assert sorted(p.name for p in (run / "samples").iterdir()) == grids
    for name in grids:
        assert (run / "samples" / name).read_bytes() == (ref / "samples" / name).read_bytes(), name

    def losses_by_step(r: Path) -> list[dict]:
        records = [json.loads(line) for line in (r / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in rec.items() if k not in ("time_s", "critic_images_per_s")} for rec in records]

    assert losses_by_step(run) == losses_by_step(ref)  # no duplicate, missing or different record


def test_sigkill_at_a_random_step_then_resume_is_bitwise_equal(tmp_path, data_dir, reference, torch_flags):
    proc, run = interrupt_at_random_step(tmp_path / "runs", data_dir, signal.SIGKILL)
    code, _, _ = finish(proc)
    assert code == -signal.SIGKILL
    resumed_from = ckpt.checkpoint_step(ckpt.list_checkpoints(run / "checkpoints")[-1])
    assert 3 <= resumed_from < STEPS
    assert not (run / "generator.safetensors").exists()
    code, out, err = run_cli("train", "--resume", run, "--no-progress")
    assert code == 0, err
    assert_same_run(run, reference)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_writes_a_checkpoint_exits_128_plus_it_and_resumes_bitwise_equal(tmp_path, data_dir, reference,
                                                                                   torch_flags, sig):
    """SIGTERM (a scheduler) and SIGINT (Ctrl-C): the checkpoint of the step reached, exit code 143 or 130 as
    a process killed by the signal would give (so `make demo` stops there), the stop line on its own line."""
    proc, run = interrupt_at_random_step(tmp_path / "runs", data_dir, sig)
    code, out, err = finish(proc)
    assert code == 128 + sig, err
    assert "Traceback" not in err and out.splitlines()[-1].startswith("stopped at step ")
    stopped_at = int(out.split("stopped at step ")[1].split(";")[0])
    state = ckpt.load_checkpoint(run / "checkpoints" / rundir.checkpoint_name(stopped_at))
    assert state["step"] == stopped_at < STEPS
    assert f"--resume {run}" in out
    code, _, err = run_cli("train", "--resume", run, "--no-progress")
    assert code == 0, err
    assert_same_run(run, reference)


# ---------------------------------------------------------------------------------------------
# Bad numbers


def _nan_from_call(real_fn, first_bad_call: int):
    calls = {"n": 0}

    def fn(*args, **kwargs):
        calls["n"] += 1
        out = real_fn(*args, **kwargs)
        return out * float("nan") if calls["n"] >= first_bad_call else out

    return fn


class _NanGradient(torch.autograd.Function):
    """Identity forward, NaN backward: a finite loss whose update ruins the weights."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, data_dir, monkeypatch):
    monkeypatch.setattr(losses, "generator_loss", _nan_from_call(losses.generator_loss, first_bad_call=5))
    code, _, err = run_cli("train", *TINY, "--data", data_dir, "--runs-dir", tmp_path, "--steps", "10",
                           "--checkpoint-every-steps", "2")
    lines = err.strip().splitlines()
    assert code == 3 and len(lines) == 1 and "Traceback" not in err
    (run,) = tmp_path.iterdir()
    good = run / "checkpoints" / rundir.checkpoint_name(4)
    assert "loss_generator became nan at step 5" in lines[0] and str(good) in lines[0]
    assert [p.name for p in ckpt.list_checkpoints(run / "checkpoints")] == [rundir.checkpoint_name(s) for s in (2, 4)]
    state = ckpt.load_checkpoint(good)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for part in ("generator", "critic") for v in state[part].values())
    assert not (run / "generator.safetensors").exists()
    assert max(json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()) == 4
    assert "diverged" in (run / "log.txt").read_text()


def test_nan_weights_behind_a_finite_loss_are_never_checkpointed(tmp_path, data_dir, monkeypatch):
    real = losses.generator_loss
    calls = {"n": 0}

    def poisoned(scores):
        calls["n"] += 1
        return real(_NanGradient.apply(scores) if calls["n"] == 4 else scores)

    monkeypatch.setattr(losses, "generator_loss", poisoned)
    code, _, err = run_cli("train", *TINY, "--data", data_dir, "--runs-dir", tmp_path, "--steps", "10",
                           "--checkpoint-every-steps", "2", "--log-every-steps", "2")
    assert code == 3 and len(err.strip().splitlines()) == 1
    assert "generator's parameters became NaN or infinite at step 4" in err
    (run,) = tmp_path.iterdir()
    assert [ckpt.checkpoint_step(p) for p in ckpt.list_checkpoints(run / "checkpoints")] == [2]


def test_a_full_disk_mid_run_is_one_line_keeps_the_last_checkpoint_and_the_run_resumes(tmp_path, data_dir,
                                                                                       monkeypatch):
    import errno

    real_save, saves = ckpt.save_checkpoint, []

    def full_disk_at_the_second(path, state):
        saves.append(path)
        if len(saves) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_save(path, state)

    monkeypatch.setattr(ckpt, "save_checkpoint", full_disk_at_the_second)
    code, _, err = run_cli("train", *TINY, "--data", data_dir, "--runs-dir", tmp_path, "--steps", "6",
                           "--checkpoint-every-steps", "2")
    lines = err.strip().splitlines()
    (run,) = tmp_path.iterdir()
    good = run / "checkpoints" / rundir.checkpoint_name(2)
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert "No space left on device" in lines[0] and rundir.checkpoint_name(4) in lines[0]
    assert f"{good} is intact" in lines[0] and f"wgan train --resume {run}" in lines[0]
    assert [p.name for p in ckpt.list_checkpoints(run / "checkpoints")] == [good.name]
    assert "stopped: could not write" in (run / "log.txt").read_text()
    monkeypatch.setattr(ckpt, "save_checkpoint", real_save)  # room again
    code, _, err = run_cli("train", "--resume", run)
    assert code == 0, err
    assert ckpt.checkpoint_step(ckpt.list_checkpoints(run / "checkpoints")[-1]) == 6
    assert (run / "generator.safetensors").is_file()


# ---------------------------------------------------------------------------------------------
# --resume auto, run length on resume


def _train(*argv) -> None:
    code, _, err = run_cli("train", *TINY, *argv)
    assert code == 0, err


def test_resume_auto_continues_the_newest_run_of_the_same_options(tmp_path, data_dir):
    runs = tmp_path / "runs"
    same = ["--data", data_dir, "--runs-dir", runs, "--checkpoint-every-steps", "2"]
    _train(*same, "--steps", "2")
    _train(*same, "--steps", "2", "--seed", "7")  # newer, but another seed: not the same run
    older = sorted(runs.iterdir())[0]
    code, out, err = run_cli("train", *TINY, *same, "--steps", "4", "--resume", "auto")
    assert code == 0, err
    assert f"resuming {older}" in out
    assert len(list(runs.iterdir())) == 2  # no new run directory
    assert ckpt.load_checkpoint(older / "checkpoints" / rundir.checkpoint_name(4))["step"] == 4
    assert json.loads((older / "config.json").read_text())["steps"] == 4
    # Nothing of these options yet: a new run starts.
    code, out, err = run_cli("train", *TINY, *same, "--steps", "2", "--seed", "8", "--resume", "auto")
    assert code == 0, err
    assert "starting a new one" in out and len(list(runs.iterdir())) == 3


def _fake_run(runs: Path, number: int, job: str | None) -> Path:
    """A run directory of the default options with one checkpoint (by name: finding a run reads no checkpoint)."""
    run = runs / f"{number:05d}-custom"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / rundir.checkpoint_name(2)).write_bytes(b"")
    rundir.write_config(TrainConfig().to_dict(), run)
    rundir.mark_job(run, job)
    return run


def test_a_restarted_job_finds_its_own_run_never_another_live_jobs(tmp_path):
    runs = tmp_path / "runs"
    ours, other, unmarked = _fake_run(runs, 0, "job-a"), _fake_run(runs, 1, "job-b"), _fake_run(runs, 2, None)
    config = TrainConfig().to_dict()
    with rundir.RunLock(other).held("train it"):  # job B trains its run now
        assert ckpt.find_resumable_run(runs, config, job="job-a") == ours  # not the newer runs of the same options
        assert ckpt.find_resumable_run(runs, config, job="job-b") is None  # live: another process holds it
        assert ckpt.find_resumable_run(runs, config, job="job-c") is None  # a job that made no run yet
        assert ckpt.find_resumable_run(runs, config) == unmarked  # --resume auto: the newest run nobody trains
        with rundir.RunLock(unmarked).held("train it"):
            assert ckpt.find_resumable_run(runs, config) == ours
    assert ckpt.find_resumable_run(runs, config) == unmarked


def test_job_id_is_torchruns_run_id_or_the_address_of_its_store(monkeypatch):
    from wgan import distributed

    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    assert distributed.job_id() is None
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "5f0c")
    assert distributed.job_id() == "5f0c"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")  # static rendezvous without --rdzv-id: one store per live job
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29511")
    assert distributed.job_id() == "none@10.0.0.1:29511"


def test_a_torchrun_restart_resumes_its_own_run_not_the_newer_one_of_another_job(tmp_path, data_dir, monkeypatch):
    runs = tmp_path / "runs"
    same = [*TINY, "--data", data_dir, "--runs-dir", runs, "--checkpoint-every-steps", "2"]
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-a")
    _train(*same, "--steps", "2")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-b")
    _train(*same, "--steps", "2")  # the same options, newer: what --resume auto alone would take
    ours, theirs = sorted(runs.iterdir())
    assert rundir.marked_job(ours) == "job-a" and rundir.marked_job(theirs) == "job-b"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-a")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    code, out, err = run_cli("train", *same, "--steps", "4")
    assert code == 0, err
    assert f"resuming this job's run {ours}" in out
    assert ckpt.list_checkpoints(ours / "checkpoints")[-1].name == rundir.checkpoint_name(4)
    assert ckpt.list_checkpoints(theirs / "checkpoints")[-1].name == rundir.checkpoint_name(2)
    assert "restarted by torchrun (restart 1 of 0) from step 2" in (ours / "log.txt").read_text()
    # A job whose first attempt made no run yet starts one; it never takes job A's or job B's.
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-c")
    code, out, err = run_cli("train", *same, "--steps", "2")
    assert code == 0, err
    assert "this job has no run with a checkpoint" in out and len(list(runs.iterdir())) == 3


def test_a_torchrun_restart_does_not_resume_a_run_a_signal_stopped(tmp_path, data_dir, monkeypatch):
    runs = tmp_path / "runs"
    same = [*TINY, "--data", data_dir, "--runs-dir", runs, "--checkpoint-every-steps", "2"]
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-a")
    _train(*same, "--steps", "2")
    (run,) = runs.iterdir()
    with open(run / "log.txt", "a") as log:  # what the trainer writes when SIGTERM stops it
        log.write(time.strftime(rundir.TIMESTAMP_FORMAT) + f"{rundir.STOPPED_BY_SIGNAL} 15 at step 2; checkpoint written\n")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    for resume in ([], ["--resume", run]):
        before = snapshot(run)
        code, _, err = run_cli("train", *same, "--steps", "4", *resume)
        assert code == 2 and "stopped by a signal before this restart" in err, err
        assert snapshot(run) == before


def test_a_second_resume_keeps_the_longer_run_length(tmp_path, data_dir):
    _train("--data", data_dir, "--runs-dir", tmp_path, "--steps", "2", "--checkpoint-every-steps", "2")
    (run,) = tmp_path.iterdir()
    assert run_cli("train", "--resume", run, "--steps", "4", "--no-progress")[0] == 0
    before = snapshot(run)
    code, _, err = run_cli("train", "--resume", run, "--no-progress")  # --steps 4 is remembered: nothing to do
    assert code == 2 and err.count("\n") == 1
    assert f"already at step 4, the end of its --steps 4; to train it longer: wgan train --resume {run} --steps 8" in err
    assert snapshot(run) == before, "a finished run resumed again: nothing written, not even a TensorBoard file"
    assert ckpt.checkpoint_step(ckpt.list_checkpoints(run / "checkpoints")[-1]) == 4
    code, _, err = run_cli("train", "--resume", run, "--steps", "3", "--no-progress")
    assert code == 2 and "past --steps 3" in err


# ---------------------------------------------------------------------------------------------
# Option validation (property-based)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data_dir) -> Path:
    runs = tmp_path_factory.mktemp("finished")
    _train("--data", data_dir, "--runs-dir", runs, "--steps", "2", "--checkpoint-every-steps", "2")
    (run,) = runs.iterdir()
    return run


POSITIVE = ["steps", "keep-checkpoints", "log-every-steps", "batch-size", "critic-steps", "width", "latent-dim"]
NON_NEGATIVE = ["checkpoint-every-steps", "sample-every-steps", "eval-every-steps"]


@settings(max_examples=25, deadline=None)
@given(option=st.sampled_from(POSITIVE + NON_NEGATIVE), value=st.integers(min_value=-10**6, max_value=0))
def test_out_of_range_counts_are_one_line_errors(tmp_path_factory, option, value):
    if option in NON_NEGATIVE and value == 0:
        value = -1
    runs = tmp_path_factory.mktemp("never")
    code, _, err = run_cli("train", "--preset", "quick", f"--{option}", value, "--runs-dir", runs / "runs")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert f"--{option} {value}" in lines[0]
    assert not (runs / "runs").exists()  # refused before anything was written


CHANGEABLE = {"steps": st.integers(2, 10**6), "device": st.just("cpu"), "fast": st.booleans(),
              "precision": st.sampled_from(["fp32", "tf32", "bf16"])}
FIXED = {"width": st.integers(1, 512), "seed": st.integers(0, 2**31), "critic_steps": st.integers(1, 20),
         "lr_critic": st.floats(1e-6, 0.5), "gp_weight": st.floats(0.0, 100.0), "loss": st.sampled_from(["clip", "lp"]),
         "batch_size": st.integers(1, 4096)}


def _flag(name: str, value) -> list[str]:
    if isinstance(value, bool):
        return [f"--{'' if value else 'no-'}{name.replace('_', '-')}"]
    return [f"--{name.replace('_', '-')}", str(value)]


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_resume_refuses_any_change_of_what_is_trained(finished_run, data):
    stored = json.loads((finished_run / "config.json").read_text())
    name = data.draw(st.sampled_from(sorted(FIXED)))
    value = data.draw(FIXED[name].filter(lambda v: v != stored[name] and str(v) != str(stored[name])))
    before = snapshot(finished_run)
    code, _, err = run_cli("train", "--resume", finished_run, *_flag(name, value))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"wgan train: error: --{name.replace('_', '-')}") and "on resume only" in lines[0]
    assert snapshot(finished_run) == before


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_resume_accepts_run_length_and_execution_options_and_unchanged_ones(finished_run, data):
    point = ckpt.open_checkpoint(finished_run)
    options = {name: None for name in point.config}
    for name in data.draw(st.sets(st.sampled_from(sorted(CHANGEABLE)))):
        options[name] = data.draw(CHANGEABLE[name])
    for name in data.draw(st.sets(st.sampled_from(sorted(FIXED)))):
        options[name] = point.config[name]  # repeating the stored value is fine
    cfg = ckpt.resume_config(point, options)
    for name, value in cfg.to_dict().items():
        expected = options[name] if name in CHANGEABLE and options[name] is not None else point.config[name]
        assert value == expected, name
