"""The `wgan` command end to end: train a tiny run and sample from it, dry runs, and the one-line refusal
(exit code 2) of every option a user can get wrong (validate()'s own checks: test_config.py)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wgan import cli
from wgan.config import PRESETS, TrainConfig, preset_config
from wgan.errors import UserError
from wgan.training.precision import resolve_precision
from wgan.training.step import STAT_NAMES

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = ["--width", "8", "--batch-size", "16", "--no-progress", "--device", "cpu"]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """cli.main in-process; argparse's own refusals (SystemExit) count as return codes too."""
    try:
        rc = cli.main(list(argv))
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {err!r}"
    assert "error" in lines[0] and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


def only_run_dir(runs: Path) -> Path:
    dirs = [p for p in runs.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


@pytest.fixture(autouse=True)
def _no_user_data(monkeypatch, tmp_path):
    """Nothing but --data may feed a test: no $WGAN_DATA, an empty user cache."""
    monkeypatch.delenv("WGAN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


# --- end to end -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_run(fashion_idx_dir_module, tmp_path_factory) -> Path:
    """`wgan train --preset quick` for 20 steps on the tiny IDX files, TensorBoard on."""
    runs = tmp_path_factory.mktemp("runs")
    rc = cli.main(["train", "--preset", "quick", "--no-conditional", "--data", str(fashion_idx_dir_module), "--steps", "20",
                   "--sample-every-steps", "10", "--log-every-steps", "5", "--runs-dir", str(runs), *TINY])
    assert rc == 0
    return only_run_dir(runs)


@pytest.fixture(scope="module")
def conditional_dry_run(fashion_idx_dir_module, tmp_path_factory) -> Path:
    """`wgan train --conditional --dry-run`: a conditional generator trained for 2 steps."""
    runs = tmp_path_factory.mktemp("runs-cond")
    rc = cli.main(["train", "--preset", "quick", "--conditional", "--dry-run", "--data", str(fashion_idx_dir_module),
                   "--no-tensorboard", "--runs-dir", str(runs), *TINY])
    assert rc == 0
    return only_run_dir(runs)


def test_train_writes_a_self_describing_run_directory(quick_run):
    assert quick_run.name == "00000-quick"
    cfg = json.loads((quick_run / "config.json").read_text())
    assert cfg["preset"] == "quick" and cfg["steps"] == 20 and cfg["width"] == 8 and cfg["batch_size"] == 16
    assert cfg["loss"] == "gp" and cfg["critic_steps"] == 2, "the preset's own settings stay"
    assert TrainConfig.from_dict(cfg).to_dict() == cfg

    log = (quick_run / "log.txt").read_text()
    assert "started" in log and "finished at step 20" in log
    auto = resolve_precision("auto", torch.device("cpu")).name  # bf16 on a CPU with native bf16, else fp32
    assert f"precision={auto} (auto: " in log and f"step: plain eager ({auto}; the fast path is for CUDA)" in log

    records = [json.loads(line) for line in (quick_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    for r in records:
        assert all(math.isfinite(r[k]) for k in STAT_NAMES) and r["penalty"] > 0 and r["critic_images_per_s"] > 0

    frames = sorted(p.name for p in (quick_run / "samples").glob("step-*.png"))
    assert frames == ["step-00000000.png", "step-00000010.png", "step-00000020.png"]
    with Image.open(quick_run / "samples" / frames[-1]) as grid:
        assert grid.format == "PNG" and grid.width == 8 * (28 + 2) + 2, "64 fixed-noise images, 8 per row"

    assert [p.name for p in (quick_run / "checkpoints").iterdir()] == ["step-00000020.pt"]
    assert (quick_run / "generator.safetensors").stat().st_size > 0
    with Image.open(quick_run / "losses.png") as plot:
        assert plot.format == "PNG"
    with Image.open(quick_run / "timelapse.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == len(frames)


def test_train_writes_tensorboard_scalars_and_sample_grids(quick_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((quick_run / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(quick_run / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    assert set(STAT_NAMES) <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("wasserstein")] == [5, 10, 15, 20]
    grids = acc.Images("samples")
    assert [e.step for e in grids] == [0, 10, 20]
    with Image.open(quick_run / "samples" / "step-00000020.png") as png:
        assert (grids[-1].width, grids[-1].height) == png.size


def test_sample_npz_has_the_requested_shape_and_dtype(quick_run, tmp_path, capsys):
    out = tmp_path / "x.npz"
    rc, stdout, _ = run_cli(capsys, "sample", "--run", str(quick_run), "--num", "10", "--out", str(out),
                            "--device", "cpu")
    assert rc == 0 and str(out) in stdout
    with np.load(out) as f:
        assert set(f.files) == {"images"}, "an unconditional model has no labels to save"
        images = f["images"]
    assert images.shape == (10, 1, 28, 28) and images.dtype == np.uint8
    assert images.std() > 0, "samples differ from one another"


def test_sample_is_repeatable_by_seed(quick_run, tmp_path, capsys):
    def sample(name: str, seed: str) -> np.ndarray:
        run_cli(capsys, "sample", "--run", str(quick_run), "--num", "4", "--seed", seed, "--out", str(tmp_path / name))
        with np.load(tmp_path / name) as f:
            return f["images"]

    a, b, c = sample("a.npz", "1"), sample("b.npz", "1"), sample("c.npz", "2")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_sample_from_the_exported_weights_matches_the_run(quick_run, tmp_path, capsys):
    for source, name in (("--run", "run.npz"), ("--weights", "weights.npz")):
        target = quick_run if source == "--run" else quick_run / "generator.safetensors"
        rc, _, _ = run_cli(capsys, "sample", source, str(target), "--num", "5", "--out", str(tmp_path / name))
        assert rc == 0
    with np.load(tmp_path / "run.npz") as a, np.load(tmp_path / "weights.npz") as b:
        assert np.array_equal(a["images"], b["images"])


def test_sample_png_is_a_grid(quick_run, tmp_path, capsys):
    out = tmp_path / "grid.png"
    rc, _, _ = run_cli(capsys, "sample", "--run", str(quick_run), "--num", "10", "--out", str(out))
    assert rc == 0
    with Image.open(out) as grid:
        # 10 images, 3 per row (floor of sqrt), 2-pixel padding: 3 x 4 cells of 30 pixels
        assert grid.format == "PNG" and grid.size == (3 * 30 + 2, 4 * 30 + 2)


def test_sample_label_is_refused_on_an_unconditional_run_without_touching_the_output(quick_run, tmp_path, capsys):
    out = tmp_path / "mine.npz"
    out.write_bytes(b"the user's own file")
    rc, _, err = run_cli(capsys, "sample", "--run", str(quick_run), "--num", "4", "--label", "3", "--out", str(out))
    assert_one_line_error(rc, err, "--label", "not class-conditional")
    assert out.read_bytes() == b"the user's own file"


def test_dry_run_runs_two_steps(conditional_dry_run):
    records = [json.loads(line) for line in (conditional_dry_run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 2
    assert [p.name for p in (conditional_dry_run / "checkpoints").iterdir()] == ["step-00000002.pt"]
    assert "finished at step 2" in (conditional_dry_run / "log.txt").read_text()
    assert not (conditional_dry_run / "tensorboard").exists(), "--no-tensorboard writes no event files"


def test_conditional_sample_with_a_label(conditional_dry_run, tmp_path, capsys):
    out = tmp_path / "threes.npz"
    rc, _, _ = run_cli(capsys, "sample", "--run", str(conditional_dry_run), "--num", "6", "--label", "3",
                       "--out", str(out))
    assert rc == 0
    with np.load(out) as f:
        assert f["images"].shape == (6, 1, 28, 28) and f["images"].dtype == np.uint8
        assert f["labels"].tolist() == [3] * 6


def test_conditional_sample_without_a_label_cycles_the_classes(conditional_dry_run, tmp_path, capsys):
    out = tmp_path / "all.npz"
    rc, _, _ = run_cli(capsys, "sample", "--run", str(conditional_dry_run), "--num", "12", "--out", str(out))
    assert rc == 0
    with np.load(out) as f:
        assert f["labels"].tolist() == [i % 10 for i in range(12)]
    rc, _, err = run_cli(capsys, "sample", "--run", str(conditional_dry_run), "--num", "2", "--label", "10",
                         "--out", str(tmp_path / "bad.npz"))
    assert_one_line_error(rc, err, "--label 10", "0-9")
    rc, _, err = run_cli(capsys, "sample", "--run", str(conditional_dry_run), "--num", "2", "--label", "A",
                         "--out", str(tmp_path / "bad.npz"))
    assert_one_line_error(rc, err, "--label A: not a class of this generator; its classes are T-shirt/top, Trouser")
    assert not (tmp_path / "bad.npz").exists()


def test_a_letter_names_its_class_for_the_letter_datasets():
    from wgan.data import dataset_class_names
    from wgan.sample_rules import label_index

    for dataset in ("letters-csv", "emnist-letters"):
        names = dataset_class_names(dataset, 26)
        assert [label_index(t, names, "--label") for t in ("A", "b", "Z", "7")] == [0, 1, 25, 7]
    with pytest.raises(UserError, match="--label AB: not a class of this generator; its classes are A, B, C"):
        label_index("AB", dataset_class_names("letters-csv", 26), "--label")


def test_conditional_sample_by_class_name(conditional_dry_run, tmp_path, capsys):
    for label in ("Sneaker", "sneaker", "7"):
        out = tmp_path / f"{label}.npz"
        rc, _, err = run_cli(capsys, "sample", "--run", str(conditional_dry_run), "--num", "3", "--label", label,
                             "--out", str(out))
        assert rc == 0, err
        with np.load(out) as f:
            assert f["labels"].tolist() == [7, 7, 7]
    with np.load(tmp_path / "Sneaker.npz") as a, np.load(tmp_path / "7.npz") as b:
        assert np.array_equal(a["images"], b["images"])


def test_truncated_samples_are_repeatable_and_differ_from_untruncated_ones(quick_run, tmp_path, capsys):
    def sample(name: str, *extra: str) -> np.ndarray:
        rc, _, err = run_cli(capsys, "sample", "--run", str(quick_run), "--num", "4", "--out", str(tmp_path / name),
                             *extra)
        assert rc == 0, err
        with np.load(tmp_path / name) as f:
            return f["images"]

    a, b, c = sample("a.npz", "--truncation", "0.5"), sample("b.npz", "--truncation", "0.5"), sample("c.npz")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_sample_walk_writes_a_gif_of_every_frame(quick_run, tmp_path, capsys):
    out = tmp_path / "walk.gif"
    rc, stdout, err = run_cli(capsys, "sample", "--run", str(quick_run), "--walk", "3", "--frames", "2", "--num", "4",
                              "--out", str(out))
    assert rc == 0, err
    assert f"wrote a latent walk to {out}: 6 frames (3 points x 2), 4 walks" in stdout
    with Image.open(out) as gif:
        assert gif.format == "GIF" and gif.n_frames == 6 and gif.size == (2 * 30 + 2, 2 * 30 + 2)
        assert gif.info["loop"] == 0 and gif.info["duration"] == 80


def test_sample_walk_writes_an_mp4_that_imageio_reads_back(quick_run, tmp_path, capsys):
    import imageio.v2 as imageio

    out = tmp_path / "walk.mp4"
    rc, stdout, err = run_cli(capsys, "sample", "--run", str(quick_run), "--walk", "3", "--frames", "2", "--num", "4",
                              "--out", str(out), "--frame-ms", "100")
    assert rc == 0, err
    assert f"wrote a latent walk to {out}: 6 frames (3 points x 2), 4 walks" in stdout
    with imageio.get_reader(out, format="FFMPEG") as reader:
        fps = reader.get_meta_data()["fps"]
        frames = list(reader.iter_data())
    assert len(frames) == 6 and frames[0].shape == (2 * 30 + 2, 2 * 30 + 2, 3) and fps == pytest.approx(10.0)
    assert not np.array_equal(frames[0], frames[1]), "the walk moves"


def test_a_conditional_walk_is_one_row_per_walk_and_one_column_per_class(conditional_dry_run, tmp_path, capsys):
    out = tmp_path / "walk.gif"
    rc, stdout, err = run_cli(capsys, "sample", "--run", str(conditional_dry_run), "--walk", "2", "--frames", "2",
                              "--num", "2", "--out", str(out), "--frame-ms", "120")
    assert rc == 0, err
    assert "2 walks, each in every class" in stdout
    with Image.open(out) as gif:
        assert gif.n_frames == 4 and gif.size == (10 * 30 + 2, 2 * 30 + 2) and gif.info["duration"] == 120
    rc, _, err = run_cli(capsys, "sample", "--run", str(conditional_dry_run), "--walk", "2", "--frames", "2",
                         "--label", "bag", "--num", "4", "--out", str(tmp_path / "bags.gif"))
    assert rc == 0, err
    with Image.open(tmp_path / "bags.gif") as gif:
        assert gif.size == (2 * 30 + 2, 2 * 30 + 2), "one class: the walks in a square grid"


SAMPLE_ERRORS = [
    (["--truncation", "0"], "--truncation 0.0: must be a number > 0"),
    (["--truncation", "-1"], "--truncation -1.0"),
    (["--truncation", "nan"], "--truncation nan"),
    (["--walk", "1"], "--walk 1: must be >= 2 (a walk loops through at least 2 points)"),
    (["--walk", "3", "--frames", "0"], "--frames 0: must be >= 1"),
    (["--walk", "3", "--frame-ms", "0"], "--frame-ms 0: must be >= 10"),
    (["--walk", "3", "--num", "0"], "--num 0: must be >= 1"),
    (["--walk", "3", "--truncation", "0"], "--truncation 0.0"),
    (["--walk", "3", "--out", "walk.avi"], "--out", "walk.avi: an animation is a .gif or .mp4 file; name it so"),
    (["--walk", "3", "--out", "walk.png"], "walk.png: an animation is a .gif or .mp4 file"),
    (["--walk", "3", "--out", "walk.mp4"], "needs imageio's ffmpeg plugin", "pip install imageio[ffmpeg]", ".gif"),
    (["--out", "walk.gif"], "walk.gif: an animation is a latent walk; add --walk N"),
    (["--frames", "4"], "--frames: only for a latent walk; add --walk N"),
    (["--walk", "2", "--label", "3"], "--label: this generator is not class-conditional"),
]


@pytest.mark.parametrize("argv, needles", [(e[0], e[1:]) for e in SAMPLE_ERRORS],
                         ids=[" ".join(e[0]) for e in SAMPLE_ERRORS])
def test_sample_refuses_bad_walk_and_truncation_options_with_one_line(quick_run, tmp_path, capsys, monkeypatch,
                                                                         argv, needles):
    from wgan import animation

    monkeypatch.setattr(animation, "_mp4_plugin_missing", lambda: True)  # as where imageio-ffmpeg is not installed
    out_dir = tmp_path / "out"
    out = [] if "--out" in argv else ["--out", str(out_dir / "walk.gif" if "--walk" in argv else out_dir / "x.npz")]
    argv = [str(out_dir / a) if a.startswith("walk.") else a for a in argv]
    rc, _, err = run_cli(capsys, "sample", "--run", str(quick_run), *argv, *out)
    assert_one_line_error(rc, err, *needles)
    assert not out_dir.exists(), "nothing written"


@pytest.mark.parametrize("walk", [[], ["--walk", "2"]])
def test_an_unknown_class_name_lists_the_classes(conditional_dry_run, tmp_path, capsys, walk):
    out = tmp_path / ("w.gif" if walk else "x.npz")
    rc, _, err = run_cli(capsys, "sample", "--run", str(conditional_dry_run), "--label", "Hat", *walk,
                         "--out", str(out))
    assert_one_line_error(rc, err, "--label Hat: not a class of this generator; its classes are T-shirt/top, Trouser",
                          "Ankle boot (a name in any case, or a number 0-9)")
    assert not out.exists()


@pytest.mark.parametrize("num, out, needle", [("0", "x.npz", "--num 0"), ("4", "x.jpg", ".png")])
def test_sample_option_errors(quick_run, tmp_path, capsys, num, out, needle):
    rc, _, err = run_cli(capsys, "sample", "--run", str(quick_run), "--num", num, "--out", str(tmp_path / out))
    assert_one_line_error(rc, err, needle)
    assert not (tmp_path / out).exists()


def test_sample_from_a_folder_that_is_not_a_run(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "sample", "--run", str(tmp_path), "--num", "2", "--out", str(tmp_path / "x.npz"))
    assert_one_line_error(rc, err, str(tmp_path))


@pytest.mark.parametrize("command", ["sample", "export"])
def test_an_output_path_under_a_file_is_one_line(quick_run, tmp_path, capsys, command):
    (tmp_path / "grid.png").write_bytes(b"a picture")
    out = tmp_path / "grid.png" / ("x.npz" if command == "sample" else "G.safetensors")
    rc, _, err = run_cli(capsys, command, "--run", str(quick_run), "--out", str(out))
    assert_one_line_error(rc, err, f"--out {out}", "grid.png is a file, not a folder")
    assert (tmp_path / "grid.png").read_bytes() == b"a picture"


def test_train_help_shows_the_values_a_bare_train_uses(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    quick = preset_config("quick")
    for name in ("steps", "lr_critic", "width", "sample_every_steps"):
        assert f"(default: the preset's; quick: {getattr(quick, name)})" in text, name


def test_a_dry_run_never_resumes_into_a_run(quick_run, capsys):
    before = sorted((p.name, p.stat().st_mtime_ns) for p in quick_run.rglob("*"))
    rc, _, err = run_cli(capsys, "train", "--resume", str(quick_run), "--dry-run")
    assert_one_line_error(rc, err, "--dry-run with --resume")
    assert sorted((p.name, p.stat().st_mtime_ns) for p in quick_run.rglob("*")) == before


def test_a_runs_dir_that_is_a_file_is_one_line(fashion_idx_dir, tmp_path, capsys):
    (tmp_path / "runs").write_text("notes")
    rc, _, err = run_cli(capsys, "train", "--data", str(fashion_idx_dir), "--runs-dir", str(tmp_path / "runs"),
                         "--dry-run", *TINY)
    assert_one_line_error(rc, err, "--runs-dir", "is a file, not a folder")
    assert (tmp_path / "runs").read_text() == "notes"


# --- refusals: exit code 2, one line, nothing written ----------------------------------------------

TRAIN_ERRORS = [
    (["--lr-critic", "-0.001"], "--lr-critic -0.001"),
    (["--lr-generator", "0"], "--lr-generator 0"),
    (["--critic-steps", "0"], "--critic-steps 0"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--dataset", "nope"], "--dataset nope"),
    (["--model", "resnet9"], "--model resnet9"),
    (["--critic-norm", "batch"], "--critic-norm batch"),
    (["--loss", "lp", "--critic-norm", "batch"], "--critic-norm batch with --loss lp"),
    (["--critic-norm", "group"], "--critic-norm group"),
    (["--precision", "fp8"], "--precision fp8"),
    (["--loss", "hinge"], "--loss hinge"),
    (["--optimizer", "sgd"], "--optimizer sgd"),
    (["--batch-size", "0"], "--batch-size 0"),
    (["--steps", "-3"], "--steps -3"),
    (["--adam-beta2", "1.5"], "--adam-beta2 1.5"),
    (["--loss", "clip", "--clip-value", "0"], "--clip-value 0"),
    (["--gp-weight", "-1"], "--gp-weight -1"),
    (["--gp-weight", "inf"], "--gp-weight inf"),
    (["--channels", "2"], "--channels 2"),
    (["--image-size", "-1"], "--image-size -1"),
    (["--sample-every-steps", "-1"], "--sample-every-steps -1"),
    (["--device", "tpu"], "--device tpu"),
    (["--model", "dcgan32"], "--image-size 32"),
    (["--image-size", "32"], "--image-size 28"),
    (["--image-size", "0", "--model", "dcgan32"], "--image-size 32"),  # 0: the dataset's 28 pixels
    (["--ema-halflife-kimg", "-1"], "--ema-halflife-kimg -1"),
    (["--ema-rampup", "nan"], "--ema-rampup nan"),
    (["--augment", "color,rotate"], "--augment color,rotate: unknown augmentation rotate"),
    (["--loss", "sn", "--critic-norm", "batch"], "--loss sn with --critic-norm batch"),
    (["--lr-decay", "cosine"], "--lr-decay cosine"),
    (["--lr-decay", "linear", "--steps", "0"], "--steps 0"),
    (["--batch-size-generator", "-1"], "--batch-size-generator -1"),
    (["--model", "resnet64"], "--image-size 64"),  # quick's 28 pixels
    (["--model", "resnet32", "--image-size", "64"], "--image-size 32"),
    (["--conditioning", "projection"], "--conditioning projection: model 'dcgan28' takes input"),
    (["--generator-norm", "layer"], "--generator-norm layer: choose none or batch"),
    (["--generator-norm", "batch", "--model", "mlp"], "--generator-norm batch: for --model dcgan28 only"),
    (["--model", "mlp", "--loss", "clip", "--generator-norm", "none", "--critic-norm", "batch"], "--critic-norm batch"),
    (["--critic-steps-boosted", "2"], "--critic-steps-boosted 2"),  # not more than --critic-steps 2
    (["--boost-every-steps", "-1"], "--boost-every-steps -1"),
    (["--eval-metrics", "fcd,bogus"], "--eval-metrics fcd,bogus"),
    (["--eval-metrics", "fcd", "--eval-num-samples", "1"], "--eval-num-samples 1"),
    (["--eval-metrics", "fcd,prc", "--eval-num-samples", "3"], "--eval-num-samples 3: prc needs at least 4 samples"),
    (["--eval-metrics", "dc", "--eval-num-samples", "5"], "--eval-num-samples 5: dc needs at least 6 samples"),
    (["--eval-metrics", "fid", "--inception-weights", "missing.pth"], "--inception-weights missing.pth"),
    (["--critic-steps", "x"], "--critic-steps"),  # argparse's own refusals are one line too
    (["--no-such-option"], "--no-such-option"),
]


@pytest.mark.parametrize("argv, needle", TRAIN_ERRORS, ids=[" ".join(a) for a, _ in TRAIN_ERRORS])
def test_train_refuses_bad_options_with_one_line_and_writes_nothing(fashion_idx_dir, tmp_path, capsys, argv, needle):
    runs = tmp_path / "runs"
    rc, out, err = run_cli(capsys, "train", "--data", str(fashion_idx_dir), "--runs-dir", str(runs), "--dry-run",
                           *TINY, *argv)
    assert_one_line_error(rc, err, needle)
    assert not runs.exists(), "no run directory for a refused run"


def test_the_installed_entry_point_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "wgan", "train", "--critic-steps", "0", "--runs-dir",
                           str(tmp_path / "runs")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["wgan train: error: --critic-steps 0: must be a whole number >= 1"]
    assert not (tmp_path / "runs").exists()



@pytest.mark.parametrize("argv, needle", [(["--critic-steps", "0"], "--critic-steps 0"), (["--steps", "x"], "--steps")])
def test_under_torchrun_other_processes_wait_before_printing_their_error(tmp_path, capsys, monkeypatch, argv, needle):
    """torchrun starts one process per GPU and each meets the same bad option. The first process on a
    machine prints at once; the others wait first (torchrun ends them meanwhile when the first one
    failed), then print with their rank. Every process exits with code 2."""
    import time

    from wgan.errors import OTHER_PROCESS_GRACE_S

    waits = []
    monkeypatch.setattr(time, "sleep", waits.append)
    train = ["train", "--runs-dir", str(tmp_path / "runs"), "--dry-run", *TINY, *argv]
    for local_rank, rank, prefix, waited in (("0", "0", "", []), ("1", "1", "rank 1: ", [OTHER_PROCESS_GRACE_S]), ("0", "4", "rank 4: ", [])):
        monkeypatch.setenv("LOCAL_RANK", local_rank)
        monkeypatch.setenv("RANK", rank)
        waits.clear()
        rc, _, err = run_cli(capsys, *train)
        assert_one_line_error(rc, err, needle)
        assert err.startswith(prefix + "wgan")
        assert waits == waited


# --- wgan presets ----------------------------------------------------------------------------------


def test_presets_lists_every_preset(capsys):
    rc, out, _ = run_cli(capsys, "presets")
    assert rc == 0
    rows = out.strip().splitlines()
    assert len(rows) == 1 + len(PRESETS)
    columns = {key: rows[0].index(key) for key in ("lr (C/G)", "n_critic", "batch", "steps")}
    for name, row in zip(PRESETS, rows[1:]):
        cfg = preset_config(name)
        assert row.split()[:4] == [name, cfg.dataset, cfg.model, cfg.loss]
        # every value sits under its heading
        assert row[columns["lr (C/G)"]:].split()[0] == f"{cfg.lr_critic:g}/{cfg.lr_generator:g}"
        assert row[columns["n_critic"]:].split()[:3] == [str(cfg.critic_steps), str(cfg.batch_size), str(cfg.steps)]


def test_the_parser_imports_neither_torch_nor_numpy():
    """`wgan --help` and a mistyped option answer at once: building the parser loads no numerical library."""
    code = ("import sys; from wgan.cli import build_parser; build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numpy', 'matplotlib', 'PIL'}))")
    env = dict(os.environ, PYTHONPATH=str(SRC))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- wgan eval: nearest neighbours, the truncation sweep, and their refusals -------------------------

EVAL_ERRORS = [
    (["--neighbours", "0"], "--neighbours 0: the number of samples to show"),
    (["--neighbours", "-3"], "--neighbours -3: the number of samples to show"),
    (["--neighbours", "16", "--num", "8"], "--neighbours 16: more than the --num 8 samples"),
    (["--neighbours", "4", "--neighbours-space", "colour"], "--neighbours-space colour: choose classifier or pixel"),
    (["--neighbours", "4", "--data", "/nonexistent/fashion"], "--data /nonexistent/fashion: no such file or folder"),
    (["--truncation-sweep", "0.5,0"], "--truncation-sweep 0.5,0: 0 is not a truncation"),
    (["--truncation-sweep", "0.5,-1,none"], "--truncation-sweep 0.5,-1,none: -1 is not a truncation"),
    (["--truncation-sweep", "half"], "--truncation-sweep half: half is not a truncation"),
    (["--truncation-sweep", "0.5,nan"], "nan is not a truncation"),
    (["--truncation-sweep", "--num", "3"], "--num 3: prc needs at least 4 samples"),
    (["--metrics", "prc", "--num", "3"], "--num 3: prc needs at least 4 samples"),
    (["--metrics", "fcd,dc", "--num", "5"], "--num 5: dc needs at least 6 samples"),
]


@pytest.mark.parametrize("argv, needle", EVAL_ERRORS, ids=[" ".join(a) for a, _ in EVAL_ERRORS])
def test_eval_refuses_bad_analysis_options_with_one_line_and_writes_nothing(quick_run, capsys, argv, needle):
    from cli_helpers import snapshot

    before = snapshot(quick_run)
    rc, _, err = run_cli(capsys, "eval", "--run", str(quick_run), "--device", "cpu", *argv)
    assert_one_line_error(rc, err, needle)
    assert snapshot(quick_run) == before


def test_neighbours_of_data_gone_from_disk_or_never_on_it_are_refused(tmp_path, capsys, fashion_idx_dir,
                                                                      monkeypatch):
    from cli_helpers import snapshot

    assert cli.main(["train", "--dry-run", "--data", str(fashion_idx_dir), "--runs-dir", str(tmp_path / "runs"),
                     "--no-tensorboard", *TINY]) == 0
    run = only_run_dir(tmp_path / "runs")
    shutil.rmtree(fashion_idx_dir)
    capsys.readouterr()
    before = snapshot(run)
    rc, _, err = run_cli(capsys, "eval", "--run", str(run), "--neighbours", "4", "--device", "cpu")
    assert_one_line_error(rc, err, f"its data {fashion_idx_dir} do not exist", "--data PATH")
    assert snapshot(run) == before

    # a toy run (its generator as loading one gives it; the data are drawn, never on disk)
    from wgan import exported
    from wgan.models import ModelShape, build_models

    toy_cfg = preset_config("toy-8gaussians", width=8)
    shape = ModelShape(latent_dim=toy_cfg.latent_dim, point_dim=2, channels=0, image_size=0)
    generator = build_models(toy_cfg.model, shape)[0]
    monkeypatch.setattr(exported, "load_generator", lambda *a, **k: exported.LoadedGenerator(
        generator, toy_cfg, 2, run))
    before = snapshot(run)
    rc, _, err = run_cli(capsys, "eval", "--run", str(run), "--neighbours", "4", "--device", "cpu")
    assert_one_line_error(rc, err, "--neighbours: toy-8gaussians is drawn at random, not read from disk")
    assert snapshot(run) == before


def test_analysis_options_need_a_run(capsys):
    rc, _, err = run_cli(capsys, "eval", "--baselines", "--dataset", "fashion-mnist", "--neighbours", "4")
    assert_one_line_error(rc, err, "--neighbours needs --run DIR")


def test_eval_neighbours_and_truncation_sweep_write_their_files_and_the_report_shows_them(quick_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(quick_run, run)
    rc, out, err = run_cli(capsys, "eval", "--run", str(run), "--neighbours", "4", "--num", "20", "--truncation-sweep",
                           "0.5,none", "--device", "cpu")
    assert rc == 0, err
    assert "memorisation" in out and "median distance to the nearest training image" in out
    table = out[out.index("truncation sweep"):].splitlines()[1:4]
    assert table[0].split() == ["psi", "fcd", "class_coverage", "precision", "recall"]
    assert [row.split()[0] for row in table[1:]] == ["0.5", "none"]
    for name in ("neighbours-classifier.png", "neighbour-distances-classifier.png", "neighbours-classifier.json",
                 "truncation.png", "truncation.json"):
        assert (run / name).is_file() and f"wrote {run / name}" in out, name
    record = json.loads((run / "neighbours-classifier.json").read_text())
    assert record["samples"] == 20 and record["held_out"] == 20 and record["step"] == 20
    with Image.open(run / "neighbours-classifier.png") as picture:
        assert picture.size == (32 + 6 + 92, 4 * 30 + 2), "4 samples, each beside 3 training images"
    page = (run / "report.html").read_text()
    assert "Nearest training images" in page and record["verdict"].split(":")[0] in page
    assert "Truncation sweep" in page and page.count('src="data:image/png;base64,') >= 3
    assert "wgan eval" not in (run / "metrics.jsonl").read_text(), "the analyses leave metrics.jsonl alone"
