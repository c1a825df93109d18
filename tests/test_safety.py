"""Never lose or mix up a run: one trainer per run directory, full and read-only disks, paths that outlive
their folder, images and sizes that cannot fit, edited weights files. Each case ends in one line and its
exit code, with the user's files intact."""

from __future__ import annotations

import builtins
import contextlib
import errno
import gzip
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import TINY, cli_peak_growth_mib, run_cli, snapshot, wgan_process
from data_files import write_idx
from wgan import checkpoint as ckpt
from wgan import rundir


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def only_run(runs: Path) -> Path:
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    return run


def trained(tmp_path: Path, data: Path, *extra) -> Path:
    code, _, err = run_cli("train", *TINY, "--data", data, "--runs-dir", tmp_path / "runs", "--steps", "2",
                           "--checkpoint-every-steps", "1", *extra)
    assert code == 0, err
    return only_run(tmp_path / "runs")


# ---------------------------------------------------------------------------------------------
# One trainer per run directory


def test_a_second_trainer_is_refused_while_readers_keep_working(tmp_path, fashion_idx_dir):
    runs = tmp_path / "runs"
    proc = wgan_process("train", *TINY, "--data", fashion_idx_dir, "--runs-dir", runs, "--steps", 100000,
                        "--checkpoint-every-steps", 1)
    try:
        deadline = time.monotonic() + 120
        while not runs.is_dir() or not any(runs.glob("*/checkpoints/step-*.pt")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        run = only_run(runs)
        log_before = (run / rundir.LOG).read_text().count(rundir.RESUMED)
        code, _, err = run_cli("train", "--resume", run, "--no-progress")
        line = one_line(err)
        assert code == 2 and f"PID {proc.pid}" in line and "one trainer per run directory" in line
        assert (run / rundir.LOG).read_text().count(rundir.RESUMED) == log_before, "the refused trainer wrote nothing"
        assert len(list((run / rundir.TENSORBOARD).glob("*"))) <= 1 if (run / rundir.TENSORBOARD).exists() else True
        # reading beside the trainer works: the report, samples, an evaluation that only prints
        assert run_cli("report", "--run", run)[0] == 0
        assert run_cli("sample", "--run", run, "--num", "4", "--out", tmp_path / "s.npz")[0] == 0
        code, out, err = run_cli("eval", "--run", run, "--metrics", "class-coverage", "--num", "50", "--no-append")
        assert code == 0 and "class_coverage" in out, err
        # ...but an evaluation that appends to the trainer's metrics.jsonl is refused before any work
        code, out, err = run_cli("eval", "--run", run, "--metrics", "class-coverage", "--num", "50")
        assert code == 2 and f"PID {proc.pid}" in one_line(err) and "--no-append" in err and out == ""
    finally:
        proc.kill()
        proc.wait()
    # the kernel released the dead trainer's lock: no stale lock blocks the next one
    newest = rundir.newest_checkpoint_step(run)
    code, _, err = run_cli("train", "--resume", run, "--steps", newest + 1, "--no-progress")
    assert code == 0, err


def test_two_new_runs_started_together_get_their_own_folders(tmp_path):
    first = rundir.next_run_dir(tmp_path, "quick")
    (tmp_path / "00001-quick").mkdir()  # another process was quicker with the next number
    assert rundir.next_run_dir(tmp_path, "quick").name == "00002-quick" and first.name == "00000-quick"


# ---------------------------------------------------------------------------------------------
# Full and read-only disks


@contextlib.contextmanager
def mounted_tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root (the fake full disks of test_resume.py run anywhere)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.parametrize("size, tensorboard", [("2m", []), ("40k", ["--tensorboard"])])
def test_a_full_disk_anywhere_in_a_run_is_one_line_and_exit_2(tmp_path, fashion_idx_dir, size, tensorboard):
    """A checkpoint (torch's zip writer said "unexpected pos"), TensorBoard's writer thread (its traceback
    came first), a grid, the log: whichever write meets the full disk, one line names it."""
    with mounted_tmpfs(tmp_path / "small", size) as small:
        code, _, err = run_cli("train", *TINY, *tensorboard, "--width", "32", "--data", fashion_idx_dir,
                               "--runs-dir", small, "--steps", "8", "--checkpoint-every-steps", "2",
                               "--sample-every-steps", "2")
    assert code == 2, err
    line = one_line(err)
    assert "No space left on device" in line and "could not write" in line


def _read_only(monkeypatch, folder: Path) -> None:
    """Every write under `folder` fails as on a read-only mount (root ignores chmod, so the file functions
    themselves refuse)."""
    folder = Path(folder).resolve()

    def inside(path) -> bool:
        try:
            return Path(os.fsdecode(path)).resolve().is_relative_to(folder)
        except (TypeError, ValueError):
            return False

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    real_open, real_os_open = builtins.open, os.open
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def fake_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and set(mode) & set("wax+") and inside(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if flags & writes and inside(path):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    for name in ("mkdir", "replace", "rename", "unlink"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda path, *a, _real=real, **kw: refuse(path) if inside(path)
                            else _real(path, *a, **kw))


def test_a_read_only_run_directory_is_one_line_for_resume_report_and_eval(tmp_path, fashion_idx_dir, monkeypatch):
    run = trained(tmp_path, fashion_idx_dir)
    before = snapshot(run)
    _read_only(monkeypatch, run)
    code, _, err = run_cli("train", "--resume", run, "--steps", "3", "--no-progress")
    assert code == 2 and str(run) in one_line(err) and "Read-only file system" in err
    code, _, err = run_cli("report", "--run", run)
    assert code == 2 and "Read-only file system" in one_line(err) and f"--run {run}" in err
    code, out, err = run_cli("eval", "--run", run, "--metrics", "class-coverage", "--num", "50")
    assert code == 2 and "class_coverage" in out, "the table first"
    assert "Read-only file system" in one_line(err) and "metrics.jsonl" in err
    monkeypatch.undo()
    assert snapshot(run) == before


# ---------------------------------------------------------------------------------------------
# Paths that outlive their folder


def test_a_run_trained_with_a_relative_data_path_resumes_from_anywhere(tmp_path, fashion_idx_dir, monkeypatch):
    data = tmp_path / "csv" / "fashion"
    shutil.copytree(fashion_idx_dir, data)
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    monkeypatch.chdir(work)
    code, _, err = run_cli("train", *TINY, "--data", "../csv/fashion", "--runs-dir", tmp_path / "runs", "--steps", "2",
                           "--checkpoint-every-steps", "1")
    assert code == 0, err
    run = only_run(tmp_path / "runs")
    assert json.loads((run / rundir.CONFIG).read_text())["data"] == str(data)
    monkeypatch.chdir(elsewhere)
    assert run_cli("train", "--resume", run, "--steps", "3", "--no-progress")[0] == 0
    data.rename(tmp_path / "csv" / "moved")
    code, _, err = run_cli("train", "--resume", run, "--steps", "4", "--no-progress")
    line = one_line(err)
    assert code == 2 and f"{run / rundir.CONFIG}: its data {data} do not exist" in line and "--data PATH" in line
    code, _, err = run_cli("eval", "--run", run, "--metrics", "class-coverage", "--num", "50", "--no-append")
    assert code == 2 and str(run / rundir.CONFIG) in one_line(err)
    assert run_cli("train", "--resume", run, "--steps", "4", "--data", tmp_path / "csv" / "moved",
                   "--no-progress")[0] == 0


# ---------------------------------------------------------------------------------------------
# Images and sizes that cannot fit


def _folder_with_a_bomb(root: Path) -> Path:
    root.mkdir()
    for i in range(8):
        Image.new("RGB", (80, 80), (30 * i, 100, 200)).save(root / f"{i}.png")
    Image.new("L", (10000, 10000)).save(root / "bomb.png")  # ~120 KB on disk, 100 megapixels decoded
    return root / "bomb.png"


def test_an_image_too_large_to_decode_is_refused_by_name_or_skipped_and_counted(tmp_path, isolated_data_dirs):
    bomb = _folder_with_a_bomb(tmp_path / "pictures")
    assert bomb.stat().st_size < 500_000
    args = ["datasets", "--check", "image-folder", "--data", tmp_path / "pictures", "--image-size", "32"]
    code, _, err = run_cli(*args)
    assert code == 2 and f"{bomb} is 10000x10000" in one_line(err) and "--max-image-megapixels 40" in err
    code, out, err = run_cli(*args, "--skip-bad-images")
    assert code == 0 and "8 samples" in out and "skipped 1 image(s) over --max-image-megapixels 40" in out
    # a 81-megapixel JPEG decodes at an eighth of its side (draft): accepted
    Image.new("RGB", (9000, 9000), (10, 200, 30)).save(tmp_path / "pictures" / "photo.jpg", quality=70)
    bomb.unlink()
    code, out, err = run_cli(*args)
    assert code == 0 and "9 samples" in out, err


def test_batches_the_data_or_memory_cannot_hold_are_refused_before_a_run_exists(tmp_path, fashion_idx_dir):
    runs = tmp_path / "runs"
    code, _, err = run_cli("train", *TINY, "--data", fashion_idx_dir, "--runs-dir", runs, "--batch-size", "1000000000")
    assert code == 2 and "--batch-size 1000000000: more than the 64 samples" in one_line(err) and "at most 64" in err
    code, _, err = run_cli("train", *TINY, "--data", fashion_idx_dir, "--runs-dir", runs,
                           "--batch-size-generator", "100000000000")
    assert code == 2 and "--batch-size-generator 100000000000" in one_line(err) and "GiB" in err
    assert not runs.exists()


def test_sample_counts_that_cannot_be_held_or_drawn_are_refused(tmp_path, fashion_idx_dir):
    run = trained(tmp_path, fashion_idx_dir)
    code, _, err = run_cli("sample", "--run", run, "--num", "1000000000000", "--out", tmp_path / "x.npz")
    assert code == 2 and "GiB of samples" in one_line(err)
    code, _, err = run_cli("sample", "--run", run, "--num", "20000", "--out", tmp_path / "x.png")
    assert code == 2 and ".npz" in one_line(err)
    assert not (tmp_path / "x.npz").exists() and not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------------------------------------
# Weights files are input too


def _export(tmp_path: Path, run: Path) -> Path:
    out = tmp_path / "G.safetensors"
    assert run_cli("export", "--run", run, "--out", out)[0] == 0
    return out


def _rewrite(path: Path, edit_meta=None, edit_tensors=None) -> Path:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    if edit_meta:
        edit_meta(meta)
    if edit_tensors:
        edit_tensors(tensors)
    save_file(tensors, str(path), metadata=meta)
    return path


def test_edited_weights_files_are_refused_before_anything_is_allocated(tmp_path, fashion_idx_dir):
    run = trained(tmp_path, fashion_idx_dir)
    weights = _export(tmp_path, run)
    out = tmp_path / "s.npz"

    def sample(path) -> tuple[int, str]:
        code, _, err = run_cli("sample", "--weights", path, "--num", "2", "--out", out)
        return code, err

    def wider(meta):  # a width that would make a model of ~10^11 weights
        shape = json.loads(meta["shape"])
        meta["shape"] = json.dumps({**shape, "width": 100000})

    code, err = sample(_rewrite(shutil.copy(weights, tmp_path / "wide.safetensors"), edit_meta=wider))
    line = one_line(err)
    assert code == 2 and "do not match the model" in line and ", the model's (" in line
    code, err = sample(_rewrite(shutil.copy(weights, tmp_path / "size.safetensors"),
                                edit_meta=lambda m: m.update(config=json.dumps({**json.loads(m["config"]),
                                                                                "image_size": -5}))))
    assert code == 2 and "--image-size -5" in one_line(err)

    def poison(tensors):
        name = next(k for k, t in tensors.items() if t.is_floating_point())
        tensors[name] = tensors[name].clone().fill_(float("nan"))

    code, err = sample(_rewrite(shutil.copy(weights, tmp_path / "nan.safetensors"), edit_tensors=poison))
    assert code == 2 and "NaN or infinite" in one_line(err)

    def extra_and_missing(tensors):
        for k in list(tensors)[:5]:
            tensors[f"extra.{k}"] = tensors.pop(k)

    code, err = sample(_rewrite(shutil.copy(weights, tmp_path / "keys.safetensors"), edit_tensors=extra_and_missing))
    line = one_line(err)
    assert code == 2 and "missing" in line and "unexpected extra." in line and "and 2 more" in line
    assert not out.exists()


def test_a_checkpoint_passed_as_weights_says_which_option_takes_it(tmp_path, fashion_idx_dir):
    run = trained(tmp_path, fashion_idx_dir)
    newest = ckpt.list_checkpoints(run / rundir.CHECKPOINTS)[-1]
    for wrong in (newest, run):
        code, _, err = run_cli("sample", "--weights", wrong, "--num", "2", "--out", tmp_path / "s.npz")
        assert code == 2 and f"pass it as --run {wrong}" in one_line(err)
    code, _, err = run_cli("sample", "--weights", tmp_path / "none.safetensors", "--num", "2", "--out", tmp_path / "s.npz")
    line = one_line(err)
    assert code == 2 and "--weights" in line and "wgan export" in line and "run directory" not in line


# ---------------------------------------------------------------------------------------------
# Options, data files and runs that went unnoticed


def test_time_s_is_training_time_without_the_evaluations(tmp_path, fashion_idx_dir, monkeypatch):
    from wgan.training import loop

    def slow_evaluator(*args, **kwargs):
        def evaluate(generator):
            time.sleep(0.3)
            return {"fake_score": 1.0, "eval_s": 0.3}
        return evaluate

    monkeypatch.setattr(loop, "training_evaluator", slow_evaluator)
    code, _, err = run_cli("train", *TINY, "--data", fashion_idx_dir, "--runs-dir", tmp_path / "runs", "--steps", "6",
                           "--eval-metrics", "class-coverage", "--eval-every-steps", "1", "--ema-halflife-kimg", "0")
    assert code == 0, err
    records = rundir.read_records(only_run(tmp_path / "runs"))
    evals = [r for r in records if "fake_score" in r]
    assert len(evals) == 6
    last = max(r["time_s"] for r in records)
    assert last < sum(r["eval_s"] for r in evals) - 0.5, "1.8 s of evaluations are not training time"


def test_size_zero_is_stored_as_the_size_it_stands_for(tmp_path, fashion_idx_dir):
    run = trained(tmp_path, fashion_idx_dir, "--image-size", "0", "--channels", "0")
    config = json.loads((run / rundir.CONFIG).read_text())
    assert (config["image_size"], config["channels"]) == (28, 1)


@pytest.mark.parametrize("argv, needle", [
    (["train", "--seed", str(2**63)], f"--seed {2**63}: must be a whole number from 0 to 2**62"),
    (["train", "--grid-samples", "5000"], "--grid-samples 5000: must be a whole number from 1 to 1024"),
    (["train", "--data", ""], "--data '': an empty path"),
    (["datasets", "--check", "fashion-mnist", "--data", ""], "--data '': an empty path"),
    (["bench", "--seconds", "nan"], "--seconds nan: must be a finite number > 0"),
    (["bench", "--seconds", "inf"], "--seconds inf: must be a finite number > 0"),
    (["eval", "--run", "fashion-mnist", "--seed", "-1"], "--seed -1: must be a whole number from 0 to 2**62"),
    (["eval", "--baselines", "--dataset", "fashion-mnist", "--seed", "-1"], "--seed -1: must be a whole number"),
    (["eval", "--run", "fashion-mnist", "--neighbours", "2", "--seed", "-1"], "--seed -1: must be a whole number"),
])
def test_option_values_that_used_to_slip_through(tmp_path, argv, needle):
    code, _, err = run_cli(*argv, *(["--runs-dir", tmp_path / "runs"] if argv[0] == "train" else []))
    assert code == 2 and needle in one_line(err)
    assert not (tmp_path / "runs").exists()


def test_data_files_that_are_something_else_say_what_they_are(tmp_path, isolated_data_dirs):
    gz = tmp_path / "letters.csv"
    gz.write_bytes(gzip.compress(b"0," + b",".join([b"0"] * 784) + b"\n"))
    code, _, err = run_cli("datasets", "--check", "letters-csv", "--data", gz)
    assert code == 2 and "is gzip-compressed, not a CSV" in one_line(err)
    folder = tmp_path / "idx"
    write_idx(folder / "train-labels-idx1-ubyte", np.zeros(2, dtype=np.uint8))
    floats = np.zeros((2, 28, 28), dtype=">f4")
    header = bytes([0, 0, 0x0D, 3]) + b"".join(int(d).to_bytes(4, "big") for d in floats.shape)
    (folder / "train-images-idx3-ubyte").write_bytes(header + floats.tobytes())
    code, _, err = run_cli("datasets", "--check", "fashion-mnist", "--data", folder)
    assert code == 2 and "IDX images of type >f4" in one_line(err) and "unsigned bytes" in err


def test_symbolic_links_in_an_image_folder_are_followed_once_and_broken_ones_noted(tmp_path, isolated_data_dirs):
    root = tmp_path / "animals"
    for name, shade in (("cats", 10), ("dogs", 240)):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20, 20), (shade, shade, shade)).save(root / name / f"{i}.png")
    (root / "dogs" / "more").symlink_to(root / "cats")  # the cats again, inside dogs
    (root / "cats" / "gone.png").symlink_to(tmp_path / "deleted.png")
    code, out, err = run_cli("datasets", "--check", "image-folder", "--data", root, "--image-size", "16")
    assert code == 0, err
    assert "6 samples" in out and "2 classes" in out
    assert "3 image(s) reached twice through symbolic links were counted once" in out
    assert "skipped 1 broken symbolic link(s)" in out and "gone.png" in out


def test_a_dry_run_is_marked_and_never_resumed_automatically(tmp_path, fashion_idx_dir):
    runs = tmp_path / "runs"
    code, _, err = run_cli("train", *TINY, "--data", fashion_idx_dir, "--runs-dir", runs, "--dry-run",
                           "--checkpoint-every-steps", "1")
    assert code == 0, err
    (dry,) = runs.iterdir()
    assert dry.name.endswith("-dry-run")
    code, out, err = run_cli("train", *TINY, "--data", fashion_idx_dir, "--runs-dir", runs, "--steps", "2",
                             "--checkpoint-every-steps", "1", "--resume", "auto")
    assert code == 0 and "starting a new one" in out, err
    assert len(list(runs.iterdir())) == 2


def test_fid_without_inception_weights_offline_is_refused_before_training(tmp_path, fashion_idx_dir, monkeypatch):
    torch_fidelity = pytest.importorskip("torch_fidelity")

    def offline(*args, **kwargs):
        raise ConnectionError("could not download weights-inception-2015-12-05-6726825d.pth")

    monkeypatch.setattr(torch_fidelity.utils, "create_feature_extractor", offline)
    runs = tmp_path / "runs"
    code, _, err = run_cli("train", *TINY, "--data", fashion_idx_dir, "--runs-dir", runs, "--eval-metrics", "fid")
    line = one_line(err)
    assert code == 2 and "--eval-metrics fid: fid cannot be computed" in line and "--inception-weights FILE" in line
    assert not runs.exists()


def test_the_report_of_a_stopped_run_and_of_a_hand_edited_log(tmp_path, fashion_idx_dir):
    run = trained(tmp_path, fashion_idx_dir)
    (run / rundir.CHECKPOINTS / rundir.checkpoint_name(7)).write_bytes(b"")  # stopped at step 7, logged at 2
    with (run / rundir.METRICS).open("a") as f:
        for n, fcd in ((1000, 50.0), (10000, 40.0)):
            f.write(json.dumps({"step": 2, "fcd": fcd, "samples": {"fcd": n}}) + "\n")
        f.write(json.dumps({"step": 3, "loss_critic": 1.0}) + "\n")  # edited by hand: no other loss
        f.write(json.dumps({"step": 3, "fcd": "n/a", "class_coverage": 0.5}) + "\n")
        f.write('{"step": "four"}\n')
    code, _, err = run_cli("report", "--run", run)
    assert code == 0, err
    page = (run / rundir.REPORT).read_text()
    assert "<td>generator steps</td><td>7 of 2</td>" in page
    assert "fcd (1,000 samples)" in page and "fcd (10,000 samples)" in page


def test_version(capsys):
    from wgan import __version__
    from wgan.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"wgan {__version__}"


def test_eval_counts_that_cannot_be_held_are_refused_before_any_allocation(tmp_path, fashion_idx_dir):
    run = trained(tmp_path, fashion_idx_dir)
    before = snapshot(run)
    for metrics in ("fcd", "class-coverage"):
        code, err, growth = cli_peak_growth_mib("eval", "--run", run, "--num", 10**12, "--metrics", metrics,
                                                "--device", "cpu")
        assert code == 2 and "--num 1000000000000" in one_line(err) and "GiB of samples" in err, err
        assert growth < 48, f"{growth:.0f} MiB allocated before the count was refused"
    code, err, growth = cli_peak_growth_mib("eval", "--run", run, "--num", 10**12, "--truncation-sweep", "0.5",
                                            "--device", "cpu")
    assert code == 2 and "GiB of samples" in one_line(err) and growth < 48
    import wgan

    with pytest.raises(ValueError, match="GiB of samples"):
        wgan.evaluate(run, num=10**12, device="cpu")
    assert snapshot(run) == before


@pytest.mark.parametrize("option, value, needle", [
    ("--latent-dim", 10**9, "--width 8 / --latent-dim 1000000000: the models of dcgan28 take"),
    ("--width", 10**6, "--width 1000000 / --latent-dim 16: the models of dcgan28 take"),
    ("--width", 2**40, "more than torch can build"),
    ("--eval-num-samples", 10**12, "--eval-num-samples 1000000000000: "),
])
def test_sizes_that_cannot_be_held_are_refused_before_training_by_their_own_name(tmp_path, fashion_idx_dir, option,
                                                                                  value, needle):
    runs = tmp_path / "runs"
    extra = ["--eval-metrics", "class-coverage"] if option == "--eval-num-samples" else []
    code, err, growth = cli_peak_growth_mib("train", *TINY, "--data", fashion_idx_dir, "--runs-dir", runs,
                                            option, value, *extra)
    line = one_line(err)
    assert code == 2 and needle in line and "--batch-size" not in line, line
    assert growth < 64, f"{growth:.0f} MiB allocated before {option} was refused"
    assert not runs.exists()


def test_a_grid_is_never_written_through_a_link_and_a_failed_write_says_what_to_fix(tmp_path, fashion_idx_dir):
    run = trained(tmp_path, fashion_idx_dir, "--sample-every-steps", "1", "--checkpoint-every-steps", "1")
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"not yours to write")
    grid = run / "samples" / "step-00000003.png"
    grid.symlink_to(outside)  # where the resumed run writes its next grid
    code, _, err = run_cli("train", "--resume", run, "--steps", "3", "--no-progress")
    assert code == 0, err
    assert outside.read_bytes() == b"not yours to write" and not grid.is_symlink() and grid.stat().st_size > 100
    # samples/ a link to a file: the grid cannot be written, and room is not what is missing
    shutil.rmtree(run / "samples")
    (run / "samples").symlink_to(outside)
    code, _, err = run_cli("train", "--resume", run, "--steps", "4", "--no-progress")
    line = one_line(err)
    assert code == 2 and "could not write" in line and "fix that and resume" in line and "make room" not in line, line
    assert outside.read_bytes() == b"not yours to write"
