"""Checkpoints: atomic writes, safe loads of damaged, foreign and malicious files, export and sample.

Every refusal must be one line naming the file, exit code 2, nothing executed and nothing in the
run directory changed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import TINY, run_cli, snapshot
from wgan import checkpoint as ckpt
from wgan import exported
from wgan import rundir
from wgan.errors import UserError


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def data_dir(fashion_idx_dir_module) -> Path:
    return fashion_idx_dir_module


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir) -> Path:
    """A finished width-8 run: checkpoints at steps 2 and 4, generator.safetensors."""
    runs = tmp_path_factory.mktemp("runs")
    code, out, err = run_cli("train", *TINY, "--data", data_dir, "--runs-dir", runs, "--steps", "4",
                             "--checkpoint-every-steps", "2", "--keep-checkpoints", "3")
    assert code == 0, err
    (run,) = runs.iterdir()
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A private copy of the trained run, to damage."""
    return Path(shutil.copytree(trained, tmp_path / trained.name))


def newest(run: Path) -> Path:
    return ckpt.list_checkpoints(run / "checkpoints")[-1]


# ---------------------------------------------------------------------------------------------
# Writing


def test_checkpoint_holds_everything_needed_to_resume(trained):
    paths = ckpt.list_checkpoints(trained / "checkpoints")
    assert [ckpt.checkpoint_step(p) for p in paths] == [2, 4]
    state = ckpt.load_checkpoint(paths[-1])
    assert state["step"] == 4
    assert set(ckpt.REQUIRED_KEYS) <= set(state)
    assert set(state["rng"]) == {"torch", "cuda", "numpy", "python"}
    assert all("exp_avg" in s for s in state["opt_critic"]["state"].values())  # Adam moments, not just weights
    assert state["opt_critic"]["state"] and state["opt_generator"]["state"]
    assert state["pending"]["steps"] == 0  # a checkpoint step always logs, so nothing is pending
    assert json.loads(state["config"])["width"] == 8
    # Only tensors and primitives: a plain weights_only load accepts it.
    torch.load(paths[-1], weights_only=True)


def test_prune_keeps_the_newest_by_step_not_by_name(tmp_path):
    for step in (5, 100, 99_999_999, 100_000_000):
        (tmp_path / rundir.checkpoint_name(step)).write_bytes(b"x")
    ckpt.prune_checkpoints(tmp_path, keep=2)
    assert [ckpt.checkpoint_step(p) for p in ckpt.list_checkpoints(tmp_path)] == [99_999_999, 100_000_000]


# ---------------------------------------------------------------------------------------------
# Damaged checkpoints


def _truncate_half(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _truncate_to_header(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:64])


def _random_bytes(p: Path) -> None:
    p.write_bytes(np.random.default_rng(1).integers(0, 256, p.stat().st_size, dtype=np.uint8).tobytes())


def _flip_mid_file(p: Path) -> None:
    blob = bytearray(p.read_bytes())
    middle = len(blob) // 2
    blob[middle: middle + 64] = bytes(b ^ 0xFF for b in blob[middle: middle + 64])
    p.write_bytes(bytes(blob))


def _empty(p: Path) -> None:
    p.write_bytes(b"")


DAMAGES = {"truncated": _truncate_half, "truncated-to-header": _truncate_to_header, "random-bytes": _random_bytes,
           "corrupted-mid-file": _flip_mid_file, "empty": _empty}


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_checkpoint_is_refused_and_the_previous_good_one_offered(run, damage):
    bad, good = newest(run), ckpt.list_checkpoints(run / "checkpoints")[0]
    DAMAGES[damage](bad)
    before = snapshot(run)
    code, _, err = run_cli("train", "--resume", run, "--no-progress")
    line = one_line(err)
    assert code == 2
    assert str(bad) in line and f"--resume {good}" in line
    assert any(word in line for word in ("truncated", "corrupt", "CRC")), line
    assert snapshot(run) == before


def test_mid_file_damage_is_caught_even_where_torch_would_load_it(run):
    """PyTorch's zip reader ignores CRCs: flipped weight bytes would load silently without the check."""
    bad = newest(run)
    _flip_mid_file(bad)
    with pytest.raises(UserError, match="CRC"):
        ckpt.load_checkpoint(bad)


def test_resuming_from_the_offered_checkpoint_finishes_the_run_and_keeps_the_bad_one(run):
    bad, good = newest(run), ckpt.list_checkpoints(run / "checkpoints")[0]
    _truncate_half(bad)
    damaged = bad.read_bytes()
    code, _, err = run_cli("train", "--resume", good, "--no-progress")
    assert code == 0, err
    assert ckpt.load_checkpoint(run / "checkpoints" / rundir.checkpoint_name(4))["step"] == 4
    assert (run / "checkpoints" / (bad.name + ".superseded")).read_bytes() == damaged  # set aside, not deleted
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # records past the resumed step were replaced, none duplicated


def test_no_earlier_good_checkpoint_is_said_plainly(run):
    for p in ckpt.list_checkpoints(run / "checkpoints"):
        _truncate_half(p)
    code, _, err = run_cli("train", "--resume", run, "--no-progress")
    assert code == 2 and "no earlier good checkpoint" in one_line(err)


# ---------------------------------------------------------------------------------------------
# Malicious pickles


class _ShellPayload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


class _ExecPayload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def _malicious_checkpoint(path: Path, payload) -> None:
    """A file that looks like a wgan checkpoint and runs `payload` when unpickled without weights_only."""
    torch.save({"format": ckpt.FORMAT, "step": 6, "generator": {}, "config": "{}", "payload": payload}, path)


@pytest.mark.parametrize("payload_cls", [_ShellPayload, _ExecPayload])
def test_the_payload_is_live_when_loaded_unsafely(tmp_path, payload_cls):
    """The control: the crafted file really does create the marker under a plain torch.load."""
    marker = tmp_path / "pwned"
    _malicious_checkpoint(tmp_path / "evil.pt", payload_cls(marker))
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("payload_cls", [_ShellPayload, _ExecPayload])
def test_malicious_checkpoint_is_refused_and_never_executed(run, tmp_path, payload_cls):
    marker = tmp_path / "pwned"
    evil = run / "checkpoints" / rundir.checkpoint_name(6)
    _malicious_checkpoint(evil, payload_cls(marker))
    (run / "generator.safetensors").unlink()  # so `sample --run` has to read the checkpoint
    before = snapshot(run)
    for argv in (["train", "--resume", run, "--no-progress"], ["sample", "--run", run, "--out", tmp_path / "s.png"],
                 ["export", "--run", run, "--out", tmp_path / "g.safetensors"]):
        code, _, err = run_cli(*argv)
        line = one_line(err)
        assert code == 2
        assert str(evil) in line and "refused" in line and "nothing was executed" in line
        assert "checkpoints/step-00000004.pt" in line  # the previous good one is offered
    assert not marker.exists()
    assert snapshot(run) == before
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "g.safetensors").exists()


# ---------------------------------------------------------------------------------------------
# Checkpoints of another model or config


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory, data_dir) -> Path:
    runs = tmp_path_factory.mktemp("wide")
    code, _, err = run_cli("train", *TINY, "--width", "16", "--data", data_dir, "--runs-dir", runs, "--steps", "2",
                           "--checkpoint-every-steps", "2")
    assert code == 0, err
    (run,) = runs.iterdir()
    return run


def test_checkpoint_of_another_config_is_refused(run, wide_run):
    foreign = run / "checkpoints" / rundir.checkpoint_name(6)
    shutil.copy(newest(wide_run), foreign)
    before = snapshot(run)
    code, _, err = run_cli("train", "--resume", run, "--no-progress")
    line = one_line(err)
    assert code == 2
    assert str(foreign) in line and "another model/config" in line and "width 16 vs 8" in line
    assert f"--resume {run / 'checkpoints' / rundir.checkpoint_name(4)}" in line
    assert snapshot(run) == before


def test_weights_that_do_not_fit_their_stated_model_are_refused(run, wide_run):
    """A checkpoint whose config claims width 8 while its tensors are width 16."""
    state = ckpt.load_checkpoint(newest(wide_run))
    narrow = ckpt.load_checkpoint(newest(run))
    state["config"], state["shape"] = narrow["config"], narrow["shape"]
    forged = run / "checkpoints" / rundir.checkpoint_name(6)
    ckpt.save_checkpoint(forged, state)
    before = snapshot(run)
    code, _, err = run_cli("train", "--resume", run, "--no-progress")
    line = one_line(err)
    assert code == 2 and str(forged) in line and "does not match" in line
    assert snapshot(run) == before
    code, _, err = run_cli("export", "--run", forged, "--out", run.parent / "g.safetensors")
    assert code == 2 and "do not match" in one_line(err)


def test_resume_refuses_a_missing_run(tmp_path):
    code, _, err = run_cli("train", "--resume", tmp_path / "nope", "--no-progress")
    assert code == 2 and "no such run directory" in one_line(err)


# ---------------------------------------------------------------------------------------------
# Export and sample


@pytest.mark.parametrize("raw", [False, True])
def test_export_writes_the_newest_generator_with_its_config(trained, tmp_path, raw):
    """The moving average of the generator by default (the run keeps one), the trained generator with
    --raw-generator; the metadata says which."""
    from safetensors import safe_open

    out = tmp_path / "G.safetensors"
    code, stdout, err = run_cli("export", "--run", trained, "--out", out, *(["--raw-generator"] if raw else []))
    assert code == 0, err
    assert "step 4" in stdout and ("moving average" in stdout) != raw
    state = ckpt.load_checkpoint(newest(trained))
    expected = state["generator"] if raw else state["ema"]["generator"]
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
        assert set(f.keys()) == set(expected)
        assert all(torch.equal(f.get_tensor(k), expected[k]) for k in f.keys())
    assert not all(torch.equal(state["generator"][k], state["ema"]["generator"][k]) for k in expected)
    assert meta["format"] == exported.GENERATOR_FORMAT and meta["step"] == "4"
    assert meta["weights"] == ("raw" if raw else "ema")
    assert json.loads(meta["config"])["width"] == 8
    assert json.loads(meta["shape"])["latent_dim"] == 16


def test_sample_from_exported_weights_matches_the_run(trained, tmp_path):
    weights = tmp_path / "G.safetensors"
    assert run_cli("export", "--run", trained, "--out", weights)[0] == 0
    code, _, err = run_cli("sample", "--weights", weights, "--num", "6", "--seed", "3", "--out", tmp_path / "a.npz")
    assert code == 0, err
    code, _, err = run_cli("sample", "--run", trained, "--num", "6", "--seed", "3", "--out", tmp_path / "b.npz")
    assert code == 0, err
    a, b = np.load(tmp_path / "a.npz")["images"], np.load(tmp_path / "b.npz")["images"]
    assert a.shape == (6, 1, 28, 28) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    code, _, err = run_cli("sample", "--weights", weights, "--num", "4", "--out", tmp_path / "grid.png")
    assert code == 0, err
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size[0] > 28


def test_export_refuses_a_name_that_is_not_safetensors(trained, tmp_path):
    code, _, err = run_cli("export", "--run", trained, "--out", tmp_path / "G.pt")
    assert code == 2 and ".safetensors" in one_line(err)
    assert not (tmp_path / "G.pt").exists()


def test_sample_refuses_bad_weight_files(trained, wide_run, tmp_path):
    from safetensors.torch import save_file

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(3)}, str(bare))
    mismatched = tmp_path / "mismatched.safetensors"
    state = ckpt.load_checkpoint(newest(wide_run))
    narrow = ckpt.load_checkpoint(newest(trained))
    exported.save_generator(mismatched, state["generator"], json.loads(narrow["config"]), json.loads(narrow["shape"]), 2)
    for path, problem in ((garbage, "not a readable safetensors"), (bare, "without wgan metadata"),
                          (mismatched, "do not match")):
        code, _, err = run_cli("sample", "--weights", path, "--out", tmp_path / "x.png")
        line = one_line(err)
        assert code == 2 and str(path) in line and problem in line
    assert not (tmp_path / "x.png").exists()


def test_an_option_newer_than_the_checkpoint_compares_as_its_default():
    """A run written before an option existed resumes: the missing option counts as its default, and
    any other value is still a difference."""
    from wgan.checkpoint import config_differences
    from wgan.config import TrainConfig

    current = TrainConfig().to_dict()
    older = {k: v for k, v in current.items() if k != "critic_steps_boosted"}
    assert config_differences(older, current) == []
    assert config_differences(older, {**current, "critic_steps_boosted": 100}) == ["critic_steps_boosted 0 vs 100"]


def test_a_toy_run_loads_and_samples_points(tmp_path):
    """The 2-D MLP is built on the meta device to check a weights file before loading it: its layer sizes
    must not need real tensors."""
    code, _, err = run_cli("train", "--preset", "toy-8gaussians", "--width", "8", "--steps", "3",
                           "--eval-metrics", "", "--sample-every-steps", "0", "--no-tensorboard", "--device", "cpu",
                           "--no-progress", "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    (run,) = (tmp_path / "runs").iterdir()
    weights = tmp_path / "G.safetensors"
    assert run_cli("export", "--run", run, "--out", weights)[0] == 0
    outs = []
    for source in (["--run", run], ["--weights", weights]):
        out = tmp_path / f"{source[0][2:]}.npz"
        code, _, err = run_cli("sample", *source, "--num", "5", "--seed", "1", "--out", out)
        assert code == 0, err
        outs.append(np.load(out))
    a, b = (next(iter(o.values())) for o in outs)
    assert a.shape == (5, 2) and np.array_equal(a, b)
