"""The run report: metrics logged during training, losses.png, quality.png, timelapse.gif, report.html, and
`wgan report` / `wgan eval --run` on a tiny run."""

from __future__ import annotations

import json

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synth_idx import write_dataset
from wgan import rundir, run_report
from wgan.cli import main
from wgan.config import preset_config
from wgan.training import train
from wgan.training.plan import make_plan

STEPS = 6


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One tiny training run with metrics every 3 steps (the classifier is trained on the fly)."""
    root = tmp_path_factory.mktemp("report")
    data_dir = write_dataset(root / "data", n_train=1000, n_test=400)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        cfg = preset_config("quick", data=str(data_dir), width=8, latent_dim=16, batch_size=16, critic_steps=2,
                            steps=STEPS, sample_every_steps=2, log_every_steps=2, checkpoint_every_steps=3,
                            eval_every_steps=3, eval_metrics="fcd,class-coverage,prc,dc", eval_num_samples=200,
                            device="cpu", tensorboard=False, runs_dir=str(root / "runs"))
        run = train(make_plan(cfg), progress=False)
        yield run


def test_training_logs_metric_records_beside_the_losses(run_dir):
    records = rundir.read_records(run_dir)
    evals = [r for r in records if "fcd" in r]
    assert [r["step"] for r in evals] == [3, 6]
    for r in evals:
        assert "loss_critic" not in r
        # the generator's moving average (sampled by default) and, beside it, the raw generator
        assert r["samples"] == {k + raw: 200 for raw in ("", "_raw") for k in ("fcd", "class_coverage", "classes_covered",
                                                                             "precision", "recall", "density", "coverage")}
        for raw in ("", "_raw"):
            assert r["fcd" + raw] > 0 and 0 <= r["class_coverage" + raw] <= 1 and 1 <= r["classes_covered" + raw] <= 10
            assert isinstance(r["classes_covered" + raw], int)
        assert r["fcd"] != r["fcd_raw"]
        for key in ("precision", "recall", "coverage"):
            assert 0 <= r[key] <= 1 and 0 <= r[key + "_raw"] <= 1
        assert r["density"] >= 0
        assert r["time_s"] > 0 and r["eval_s"] > 0
    # losses every 2 steps, and at each checkpoint (every 3)
    assert [r["step"] for r in records if "loss_critic" in r] == [2, 3, 4, 6]
    assert "training one" in (run_dir / "log.txt").read_text()


def test_the_run_ends_by_saying_its_last_quality(run_dir):
    last = [r for r in rundir.read_records(run_dir) if "fcd" in r][-1]
    line = [t for t in (run_dir / "log.txt").read_text().splitlines() if "quality at step" in t][-1]
    assert f"quality at step {STEPS}: fcd {last['fcd']:.4g} (raw generator {last['fcd_raw']:.4g})" in line
    assert f"class_coverage {last['class_coverage']:.4g}" in line and line.endswith("(200 samples)")


def test_a_mismatched_classifier_stops_training_before_a_run_directory_is_made(run_dir, tmp_path, monkeypatch):
    from wgan.errors import UserError

    import shutil

    from wgan.data import load_dataset
    from wgan.metrics import classifier_path, find_classifier

    monkeypatch.setenv("XDG_CACHE_HOME", str(run_dir.parent.parent / "cache"))  # holds the run's classifier
    other = write_dataset(tmp_path / "other", n_train=300, n_test=100, seed=3)
    # the run's classifier where the other data's belongs (copied there by hand)
    run_data = load_dataset("fashion-mnist", data_path=json.loads((run_dir / "config.json").read_text())["data"])
    shutil.copy(find_classifier(run_data), classifier_path(load_dataset("fashion-mnist", data_path=other)))
    cfg = preset_config("quick", data=str(other), width=8, steps=2, eval_metrics="fcd", device="cpu",
                        tensorboard=False, runs_dir=str(tmp_path / "runs"))
    with pytest.raises(UserError, match=f"does not match the data.*--data {other}"):
        train(make_plan(cfg), progress=False)
    assert not (tmp_path / "runs").exists()


def test_report_has_every_picture_and_the_metric_table(run_dir):
    for name in ("losses.png", "quality.png", "timelapse.gif", "walk.gif", "report.html"):
        assert (run_dir / name).is_file(), name
    frames = rundir.sample_frames(run_dir)
    assert [f.name for f in frames] == [f"step-{s:08d}.png" for s in range(0, STEPS + 1, 2)]
    with Image.open(run_dir / "timelapse.gif") as gif:
        assert gif.n_frames == len(frames)
    page = (run_dir / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 3
    assert page.count('src="data:image/gif;base64,') == 2, "the timelapse and the latent walk"
    assert "fcd (200 samples)" in page and "class_coverage" in page
    assert "precision - higher is better" in page and "density - about 1 for real images" in page
    assert "finished" in page and "generator steps" in page and f"{STEPS} of {STEPS}" in page
    assert "<td>lr_critic</td>" in page  # the config table


def test_wgan_eval_run_prints_a_table_and_appends_to_the_log(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(run_dir.parent.parent / "cache"))
    run = tmp_path / run_dir.name
    shutil.copytree(run_dir, run)
    before = rundir.read_records(run)
    assert main(["eval", "--run", str(run), "--metrics", "fcd,class-coverage", "--num", "300", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "generator at step 6" in out and "fcd" in out and "300" in out
    after = rundir.read_records(run)
    assert after[:-1] == before
    new = after[-1]
    assert new["step"] == STEPS and new["source"] == "wgan eval" and new["samples"]["fcd"] == 300
    assert new["time_s"] == [r for r in before if "loss_critic" in r][-1]["time_s"]


def test_wgan_eval_of_one_checkpoint_names_its_step_and_appends_to_its_run(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(run_dir.parent.parent / "cache"))
    run = tmp_path / run_dir.name
    shutil.copytree(run_dir, run)
    assert main(["eval", "--run", str(run / "checkpoints" / "step-00000003.pt"), "--metrics", "fcd", "--num", "100",
                 "--device", "cpu"]) == 0
    assert "generator at step 3" in capsys.readouterr().out
    new = rundir.read_records(run)[-1]
    assert new["step"] == 3 and new["source"] == "wgan eval" and new["samples"] == {"fcd": 100}


def test_wgan_report_rebuilds_a_killed_run(run_dir, tmp_path, capsys):
    run = tmp_path / "killed"
    shutil.copytree(run_dir, run)
    for name in ("losses.png", "quality.png", "timelapse.gif", "report.html", "generator.safetensors"):
        (run / name).unlink()
    log = run / "log.txt"
    log.write_text("".join(line + "\n" for line in log.read_text().splitlines() if "finished" not in line))
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "time_s": 1.0, "loss_cri')  # a line cut by the kill
    assert main(["report", "--run", str(run)]) == 0
    assert "report.html" in capsys.readouterr().out
    for name in ("losses.png", "quality.png", "timelapse.gif", "walk.gif", "report.html"):
        assert (run / name).is_file(), name
    assert "in progress, or killed" in (run / "report.html").read_text()


def test_wgan_report_says_why_there_is_no_losses_plot(run_dir, tmp_path, capsys):
    run = tmp_path / "garbled"
    shutil.copytree(run_dir, run)
    (run / "losses.png").unlink()
    (run / "metrics.jsonl").write_text("not json\n[1, 2]\n42\n")
    assert main(["report", "--run", str(run)]) == 0
    out = capsys.readouterr().out
    assert "report.html" in out and "holds no loss records (3 of 3 lines are not wgan records)" in out
    assert not (run / "losses.png").exists()


def _frame(path: Path, value: int) -> None:
    Image.fromarray(np.full((30, 30), value, dtype=np.uint8)).save(path)


def test_timelapse_has_one_frame_per_grid_in_order_and_loops(tmp_path):
    frames = []
    for i, step in enumerate((0, 50, 100, 150, 200)):
        frames.append(tmp_path / f"step-{step:08d}.png")
        _frame(frames[-1], 128)  # identical grids still give their own frame: the step number differs
    out = tmp_path / "t.gif"
    assert run_report.make_timelapse(frames, out)
    with Image.open(out) as gif:
        assert gif.n_frames == 5 and gif.info.get("loop") == 0
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
    assert durations[:-1] == [250] * 4 and durations[-1] > 250
    assert not run_report.make_timelapse([], tmp_path / "none.gif")


def test_quality_plot_shows_only_metrics(tmp_path):
    records = [{"step": 10, "time_s": 1.0, "loss_critic": -1.0, "loss_generator": 0.5, "wasserstein": 1.0,
                "penalty": 0.1},
               {"step": 10, "time_s": 1.2, "fcd": 50.0, "class_coverage": 0.8, "samples": {"fcd": 100}, "eval_s": 0.3},
               {"step": 20, "time_s": 2.5, "fcd": 30.0, "class_coverage": 0.9, "samples": {"fcd": 100}, "eval_s": 0.3}]
    assert run_report.metric_keys(records) == ["fcd", "class_coverage"]
    assert run_report.plot_quality(records, tmp_path / "q.png")
    with Image.open(tmp_path / "q.png") as img:
        assert img.height > img.width * 0.4  # two metric rows
    assert not run_report.plot_quality(records[:1], tmp_path / "none.png")


def test_losses_plot_gives_the_penalty_its_own_panel(tmp_path):
    base = [{"step": s, "loss_critic": -s / 10, "loss_generator": s / 20, "wasserstein": 1 / (s + 1)}
            for s in range(1, 40)]
    with_penalty = [dict(r, penalty=0.05) for r in base]
    assert run_report.plot_losses(base, tmp_path / "a.png") and run_report.plot_losses(with_penalty, tmp_path / "b.png")
    with Image.open(tmp_path / "a.png") as a, Image.open(tmp_path / "b.png") as b:
        assert b.height > a.height * 1.3
    assert not run_report.plot_losses([{"step": 1, "fcd": 3.0}], tmp_path / "c.png")


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.skipif(_chromium() is None, reason="needs a chromium browser (Debian: apt-get install chromium)")
def test_report_html_renders_its_images_in_a_headless_browser(run_dir, tmp_path):
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                        f"--screenshot={shot}", "--window-size=1200,4000", "--hide-scrollbars",
                        (run_dir / "report.html").as_uri()], check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)

    def share_near(rgb: tuple[int, int, int]) -> float:
        return float((np.abs(pixels - np.array(rgb)).sum(-1) < 40).mean())

    # matplotlib's blue and red only appear if the plots were decoded and drawn; the page's own CSS is grey
    assert share_near((31, 119, 180)) > 1e-4 and share_near((214, 39, 40)) > 1e-4


def test_a_damaged_analysis_record_leaves_its_section_out(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / rundir.TRUNCATION_RECORD).write_text('{"rows": [{"truncation": 0.5, "fc')  # cut mid-write
    files = rundir.neighbour_files("pixel")
    (run / files["record"]).write_text(json.dumps({"verdict": "no sign of memorisation: ...", "step": 6}))
    _frame(run / files["picture"], 200)
    page = (run / run_report.build_report(run)["html"]).read_text()
    assert "Truncation sweep" not in page
    assert "Nearest training images (pixel space)" in page and "no sign of memorisation" in page


# ---------------------------------------------------------------------------------------------
# Hostile run directories: values that are markup, links out of the run, folders that are not runs


SCRIPT = "<script>alert(1)</script>"


def test_every_value_from_a_runs_files_is_escaped_in_the_page(run_dir, tmp_path):
    run = tmp_path / "<img src=x onerror=alert(2)>"  # the folder's name is the page's title
    shutil.copytree(run_dir, run)
    (run / rundir.TRUNCATION_RECORD).write_text(json.dumps(
        {"samples": SCRIPT, "step": "<iframe src=evil>", "rows": [{"truncation": SCRIPT, "fcd": "<b>1</b>"}]}))
    files = rundir.neighbour_files("pixel")
    (run / files["record"]).write_text(json.dumps({"verdict": SCRIPT, "step": SCRIPT}))
    _frame(run / files["picture"], 200)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(dict(config, preset=SCRIPT, eval_metrics=SCRIPT)))
    page = (run / run_report.build_report(run)["html"]).read_text()
    for markup in ("<script", "<iframe", "<img src=x", "<b>1</b>"):
        assert markup not in page, markup
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5  # samples, psi, verdict, two config values
    assert "&lt;img src=x onerror=alert(2)&gt;" in page and "&lt;iframe src=evil&gt;" in page
    assert "Truncation sweep" in page and "Nearest training images (pixel space)" in page


def test_the_report_never_shows_or_writes_through_a_link_out_of_the_run(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    secret = tmp_path / "secret.png"
    Image.fromarray(np.full((30, 30), 77, dtype=np.uint8)).save(secret)
    secret_bytes = secret.read_bytes()
    import base64

    inlined = base64.b64encode(secret_bytes).decode()
    (run / rundir.TRUNCATION_RECORD).write_text(json.dumps({"samples": 10, "step": 6, "rows": []}))
    (run / rundir.TRUNCATION_PLOT).symlink_to(secret)
    newest = rundir.sample_frames(run)[-1]
    newest.unlink()
    (run / "samples" / "step-99999999.png").symlink_to(secret)  # the newest grid, by its name
    (run / rundir.LOSSES_PLOT).unlink()
    (run / rundir.LOSSES_PLOT).symlink_to(secret)  # rebuilt: the link is replaced, its target left alone
    page = (run / run_report.build_report(run)["html"]).read_text()
    assert inlined not in page
    assert secret.read_bytes() == secret_bytes
    assert not (run / rundir.LOSSES_PLOT).is_symlink() and (run / rundir.LOSSES_PLOT).stat().st_size > 1000


def test_wgan_eval_does_not_append_through_a_linked_metrics_file(run_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    elsewhere = tmp_path / "elsewhere.jsonl"
    shutil.move(run / rundir.METRICS, elsewhere)
    (run / rundir.METRICS).symlink_to(elsewhere)
    before = elsewhere.read_bytes()
    code = main(["eval", "--run", str(run), "--metrics", "fcd", "--num", "100", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "a symbolic link, not a file of its own" in err, err
    assert elsewhere.read_bytes() == before
    # the training log too: a run's log.txt opened to append never follows a link
    (run / "log.txt").unlink()
    (run / "log.txt").symlink_to(elsewhere)
    with pytest.raises(OSError, match="symbolic link"):
        rundir.RunLog(run, tensorboard=False)
    assert elsewhere.read_bytes() == before


@pytest.mark.parametrize("config", ['{"name": "my app", "version": 3}', '[1, 2, 3]',
                                    '{"dataset": "x", "model": "y", "loss": "z", "steps": 1, "theme": "dark"}'])
def test_wgan_report_refuses_a_folder_that_is_no_wgan_run(tmp_path, capsys, config):
    folder = tmp_path / "someone-elses"
    folder.mkdir()
    (folder / "config.json").write_text(config)
    (folder / "report.html").write_text("theirs")
    (folder / "losses.png").write_text("theirs too")
    assert main(["report", "--run", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not the config of a wgan run" in err
    assert (folder / "report.html").read_text() == "theirs" and (folder / "losses.png").read_text() == "theirs too"


def test_a_fifo_config_is_named_as_one(tmp_path, capsys):
    import os

    folder = tmp_path / "run"
    folder.mkdir()
    os.mkfifo(folder / "config.json")
    assert main(["report", "--run", str(folder)]) == 2
    assert "its config.json is not a regular file" in capsys.readouterr().err
