"""The report's latent walk: walk.gif of the run's newest generator, embedded in report.html, made again only
when the generator is newer, and a note (not a failed report) when the generator cannot be loaded."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from cli_helpers import TINY, run_cli
from wgan import checkpoint as ckpt
from wgan import rundir, run_report


def train(runs: Path, *argv) -> Path:
    code, _, err = run_cli("train", *argv, "--runs-dir", runs)
    assert code == 0, err
    (run,) = runs.iterdir()
    return run


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory, fashion_idx_dir_module) -> Path:
    return train(tmp_path_factory.mktemp("runs"), *TINY, "--data", fashion_idx_dir_module, "--steps", "2")


def test_a_finished_run_has_a_walk_in_its_report(plain_run):
    frames = run_report.REPORT_WALK_POINTS * run_report.REPORT_WALK_FRAMES
    with Image.open(plain_run / rundir.WALK) as gif:
        assert gif.format == "GIF" and gif.n_frames == frames and gif.size == (2 * 30 + 2, 2 * 30 + 2)  # 2 x 2 walks
    page = (plain_run / rundir.REPORT).read_text()
    assert base64.b64encode((plain_run / rundir.WALK).read_bytes()).decode() in page, "inlined"
    assert "latent walk: 4 fixed noise points" in page


def test_a_conditional_run_walks_one_noise_through_every_class(tmp_path, fashion_idx_dir):
    run = train(tmp_path / "runs", *TINY, "--conditional", "--data", fashion_idx_dir, "--steps", "1")
    with Image.open(run / rundir.WALK) as gif:
        assert gif.size == (10 * 30 + 2, 30 + 2)


def test_the_walk_is_made_again_only_when_the_generator_is_newer(plain_run, tmp_path):
    run = Path(shutil.copytree(plain_run, tmp_path / plain_run.name))
    walk = run / rundir.WALK
    os.utime(walk, ns=(1, 1))  # older than every checkpoint: made again
    run_report.build_report(run)
    made = walk.stat().st_mtime_ns
    assert made > 1
    run_report.build_report(run)
    assert walk.stat().st_mtime_ns == made, "up to date: left as it is"


def test_a_generator_that_cannot_be_loaded_is_a_note_and_the_report_is_still_written(plain_run, tmp_path):
    run = Path(shutil.copytree(plain_run, tmp_path / plain_run.name))
    (run / rundir.WALK).unlink()
    (run / rundir.REPORT).unlink()
    newest = ckpt.list_checkpoints(run / rundir.CHECKPOINTS)[-1]
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated
    code, out, err = run_cli("report", "--run", run)
    assert code == 0, err
    assert f"note: no {rundir.WALK}: {newest}: truncated" in out
    assert (run / rundir.REPORT).is_file() and not (run / rundir.WALK).exists()


def test_a_run_of_points_has_no_walk(tmp_path):
    run = train(tmp_path / "runs", "--preset", "toy-8gaussians", "--width", "8", "--batch-size", "8", "--critic-steps",
                "1", "--steps", "1", "--sample-every-steps", "0", "--no-tensorboard", "--device", "cpu",
                "--no-progress")
    assert (run / rundir.REPORT).is_file() and not (run / rundir.WALK).exists()
    assert "walk" not in run_report.build_report(run)
