"""Files a user can hand over, crafted or damaged: an exported generator whose metadata lies, a pickle that
would run code, a zip bomb, a config.json that never ends, metrics.jsonl lines that are no records, class
names that break a line, cached classifiers and decoded caches that claim more than they hold. Each is
refused in one line (exit 2 on the command line, a ValueError in the Python API) or passed over where the
file is only a cache, and nothing is allocated for what a file claims before the claim is checked."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import wgan
from cli_helpers import cli_peak_growth_mib as _cli_peak_growth_mib
from cli_helpers import run_cli, train_tiny
from wgan import checkpoint as ckpt
from wgan import exported as exported_format
from wgan import models, rundir
from wgan.data.cache import load_cache, save_cache
from wgan.data.core import Data
from wgan.errors import UserError
from wgan.files import bounded_lines
from wgan.metrics import classifier

SRC = Path(__file__).resolve().parents[1] / "src"


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory, fashion_idx_dir_module) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs-cond"), fashion_idx_dir_module, "--conditional")


@pytest.fixture(scope="module")
def exported(conditional_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "G.safetensors"
    assert run_cli("export", "--run", conditional_run, "--out", out)[0] == 0
    return out


def _edited(source: Path, target: Path, meta_edit=None, tensors=None) -> Path:
    with safe_open(str(source), framework="pt") as f:
        meta, weights = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    if meta_edit:
        meta_edit(meta)
    save_file(weights if tensors is None else tensors, str(target), metadata=meta)
    return target


def _shape_edit(**changes):
    def edit(meta):
        meta["shape"] = json.dumps({**json.loads(meta["shape"]), **changes})
    return edit


# ---------------------------------------------------------------------------------------------
# An exported generator's metadata


def test_an_image_size_the_weights_do_not_have_is_refused_before_any_allocation(exported, tmp_path):
    # 1048576 pixels: the critic's label plane alone would be 44 TB; 4096: 671 MB that a build would fill
    for size in (1048576, 4096):
        crafted = _edited(exported, tmp_path / f"size-{size}.safetensors", _shape_edit(image_size=size))
        code, err, growth = _cli_peak_growth_mib("sample", "--weights", crafted, "--num", 4, "--out",
                                                 tmp_path / "x.png")
        line = one_line(err)
        assert code == 2 and f"image_size {size}" in line and str(crafted) in line
        assert growth < 48, f"{growth:.0f} MiB allocated before the shape was refused"
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(ValueError, match="image_size 1048576"):
        wgan.load_generator(tmp_path / "size-1048576.safetensors")


def test_loading_a_generator_gives_no_critic_any_memory(exported, monkeypatch):
    built_on = []
    real_build = models.build_models

    def spy(name, shape):
        built_on.append(torch.empty(0).device.type)  # the device a module built here would be on
        return real_build(name, shape)

    monkeypatch.setattr(models, "build_models", spy)
    loaded = exported_format.load_generator(exported)
    assert built_on == ["meta"], built_on
    assert all(p.device.type == "cpu" for p in loaded.generator.parameters())


def test_a_generator_that_makes_other_samples_than_its_shape_states_is_found(exported):
    generator = exported_format.load_generator(exported).generator
    assert models.samples_problem(generator) is None
    generator.shape = dataclasses.replace(generator.shape, channels=3)  # the weights still make one channel
    assert "not the (3, 28, 28) stated" in models.samples_problem(generator)


@pytest.mark.parametrize("changes, needle", [
    (dict(image_size=-28), "image_size -28 is not a whole number"),
    (dict(latent_dim=True), "latent_dim True"),
    (dict(critic_norm="spectral"), "critic_norm 'spectral'"),
    (dict(conditioning="acgan"), "conditioning acgan: dcgan28 conditions by input"),
    (dict(width="8"), "width '8'"),
])
def test_shape_fields_edited_into_nonsense_are_named(exported, tmp_path, changes, needle):
    crafted = _edited(exported, tmp_path / "G.safetensors", _shape_edit(**changes))
    code, _, err = run_cli("sample", "--weights", crafted, "--num", 2, "--out", tmp_path / "x.npz")
    assert code == 2 and needle in one_line(err)


def test_tensors_are_read_only_once_their_header_sizes_fit_the_model(exported, tmp_path, monkeypatch):
    reads = []
    real_open = exported_format.safe_open

    class Spy:
        def __init__(self, *args, **kwargs):
            self.handle = real_open(*args, **kwargs)

        def __enter__(self):
            self.inner = self.handle.__enter__()
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

        def get_tensor(self, key):
            reads.append(key)
            return self.inner.get_tensor(key)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(exported_format, "safe_open", Spy)
    foreign = tmp_path / "model.safetensors"  # another program's weights: no wgan metadata
    save_file({"embed.weight": torch.zeros(256, 1024)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="without wgan metadata"):
        wgan.load_generator(foreign)
    wider = _edited(exported, tmp_path / "wide.safetensors", _shape_edit(width=100000))
    with pytest.raises(ValueError, match="do not match the model"):
        wgan.load_generator(wider)
    assert reads == []
    halves = _edited(exported, tmp_path / "f16.safetensors",
                     tensors={k: v.half() if v.is_floating_point() else v for k, v in
                              safetensors_tensors(exported).items()})
    with pytest.raises(ValueError, match="torch.float16, the model's"):
        wgan.load_generator(halves)
    assert reads == []
    wgan.load_generator(exported)
    assert len(reads) == len(safetensors_tensors(exported))


def safetensors_tensors(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def test_class_names_that_would_break_the_one_line_are_refused(exported, tmp_path):
    def names(meta):
        stored = json.loads(meta["class_names"])
        meta["class_names"] = json.dumps(["T-shirt\nwgan: all fine"] + stored[1:])

    crafted = _edited(exported, tmp_path / "G.safetensors", names)
    code, _, err = run_cli("sample", "--weights", crafted, "--num", 2, "--out", tmp_path / "x.npz")
    assert code == 2 and "control characters" in one_line(err)
    with pytest.raises(ValueError, match="control characters"):
        wgan.load_generator(crafted)


# ---------------------------------------------------------------------------------------------
# The Python API refuses what the command line refuses, before it allocates


def test_the_api_refuses_counts_and_walks_that_cannot_be_held_at_once(exported):
    g = wgan.load_generator(exported)
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"num=1000000000000: .* GiB of samples in memory"):
        g.sample(10**12)
    with pytest.raises(ValueError, match=r"num_points/frames/num_walks: 40,000,000,000 images, .*GiB in memory"):
        g.walk(frames=10**9)
    assert time.monotonic() - started < 5, "refused before any sampling"
    for bad, needle in ((dict(truncation=float("nan")), "truncation=nan"), (dict(labels="Hat"), "labels='Hat'")):
        with pytest.raises(ValueError, match=needle):
            g.sample(4, **bad)


class _MarkerPayload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def test_a_pickle_that_would_run_code_is_refused_by_the_api_and_never_runs(conditional_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(conditional_run, run)
    marker = tmp_path / "ran"
    newest = rundir.newest_checkpoint_step(run)
    evil = run / rundir.CHECKPOINTS / f"step-{newest + 1:08d}.pt"
    torch.save({"format": ckpt.FORMAT, "step": newest + 1, "payload": _MarkerPayload(marker)}, evil)
    for source in (run, evil):
        with pytest.raises(ValueError, match="nothing was executed") as info:
            wgan.load_generator(source)
        assert "previous good checkpoint" in str(info.value)
    code, _, err = run_cli("sample", "--run", evil, "--num", 2, "--out", tmp_path / "x.npz")
    assert code == 2 and "nothing was executed" in one_line(err)
    assert not marker.exists()


def test_a_checkpoint_with_compressed_entries_is_refused_before_it_is_unpacked(conditional_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(conditional_run, run)
    newest = rundir.newest_checkpoint_step(run)
    bomb = run / rundir.CHECKPOINTS / f"step-{newest + 1:08d}.pt"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:  # 64 MiB of zeros in ~64 kB
        z.writestr("archive/data.pkl", b"\0" * (64 << 20))
    assert bomb.stat().st_size < 1 << 20
    code, _, err = run_cli("sample", "--run", bomb, "--num", 2, "--out", tmp_path / "x.npz")
    line = one_line(err)
    assert code == 2 and "archive/data.pkl is compressed" in line and "previous good checkpoint" in line


# ---------------------------------------------------------------------------------------------
# A run's config.json and metrics.jsonl


def test_a_config_json_that_is_huge_deep_or_never_ends_reads_as_unreadable(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / rundir.CONFIG).write_text("[" * 200_000 + "]" * 200_000)  # past the recursion limit
    assert rundir.read_config(run) is None
    (run / rundir.CONFIG).write_text(json.dumps({"pad": "x" * (2 << 20)}))  # over the 1 MiB a config may be
    assert rundir.read_config(run) is None
    (run / rundir.CONFIG).unlink()
    os.mkfifo(run / rundir.CONFIG)  # reading a FIFO nobody writes would never return
    assert rundir.read_config(run) is None
    with pytest.raises(UserError, match="not a readable wgan config"):
        wgan.config.TrainConfig.from_json(run / rundir.CONFIG)


def test_metrics_lines_that_are_no_records_are_passed_over_and_never_crash_a_resume_cut(tmp_path):
    good = [{"step": 1, "loss_critic": -1.0, "loss_generator": 0.5, "wasserstein": 1.0},
            {"step": 3, "fid": 40.0}]
    odd = ["[1, 2]", "5", '{"step": "3"}', "[" * 100_000, '{"step": true}', "not json"]
    lines = [json.dumps(good[0]), *odd, json.dumps(good[1])]
    run = tmp_path / "run"
    run.mkdir()
    (run / rundir.METRICS).write_text("\n".join(lines) + "\n")
    assert [r["step"] for r in rundir.read_records(run)] == [1, 3]
    rundir.keep_records_until(run, 2)
    assert (run / rundir.METRICS).read_text() == json.dumps(good[0]) + "\n"


def test_a_metrics_line_without_end_is_read_past_in_pieces_and_a_fifo_not_at_all(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    good = json.dumps({"step": 1, "loss_critic": -1.0, "loss_generator": 0.5, "wasserstein": 1.0})
    with open(run / rundir.METRICS, "w") as f:  # 64 MiB in one line between two records
        f.write(good + "\n" + '{"step": 2, "pad": "' + "x" * (64 << 20) + '"}\n' + good.replace("1,", "3,", 1) + "\n")
    lines = list(bounded_lines(run / rundir.METRICS, rundir.RECORD_LIMIT_BYTES))
    assert len(lines) == 2 and max(map(len, lines)) < 200
    assert [r["step"] for r in rundir.read_records(run)] == [1, 3]
    (run / rundir.METRICS).unlink()
    os.mkfifo(run / rundir.METRICS)  # a reader would wait for a writer forever
    assert rundir.read_records(run) == []


def test_the_status_of_a_log_that_grew_past_any_reason_is_read_from_its_end(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with open(run / rundir.LOG, "w") as f:
        f.write("x" * (32 << 20) + "\n")
        f.write(time.strftime(rundir.TIMESTAMP_FORMAT) + rundir.FINISHED + " 3\n")
    assert rundir.run_status(run) == "finished"
    (run / rundir.LOG).unlink()
    os.mkfifo(run / rundir.LOG)
    assert rundir.run_status(run).startswith("unknown")


def test_a_report_passes_over_eval_records_that_are_huge_deep_or_fifos(conditional_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(conditional_run, run)
    (run / rundir.TRUNCATION_RECORD).write_text("[" * 200_000)  # past the recursion limit
    code, _, err = run_cli("report", "--run", run)
    assert code == 0, err
    (run / rundir.TRUNCATION_RECORD).unlink()
    os.mkfifo(run / rundir.TRUNCATION_RECORD)
    started = time.monotonic()
    code, _, err = run_cli("report", "--run", run)
    assert code == 0 and time.monotonic() - started < 60, err


# ---------------------------------------------------------------------------------------------
# Caches: a cached classifier must be refused in one line; a decoded cache is only ever read again


def _tiny_data() -> Data:
    x = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return Data("fashion", x, torch.arange(16) % 10, 10)


def test_a_cached_classifier_that_is_incomplete_or_compressed_is_one_line(tmp_path):
    path = tmp_path / "classifier.pt"
    torch.save({"format": classifier.CLASSIFIER_FORMAT, "dataset": "fashion"}, path)
    with pytest.raises(UserError, match="incomplete classifier cache .*retrain it"):
        classifier.load_classifier(path, _tiny_data())
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("classifier/data.pkl", b"\0" * (16 << 20))
    with pytest.raises(UserError, match="data.pkl is compressed.*retrain it"):
        classifier.load_classifier(path, _tiny_data())


def test_inception_weights_with_a_compressed_entry_are_refused_before_they_are_unpacked(conditional_run, tmp_path):
    bomb = tmp_path / "inception.pth"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:  # 256 MiB of zeros in ~256 kB
        z.writestr("archive/data.pkl", b"\0" * (256 << 20))
    code, err, growth = _cli_peak_growth_mib("eval", "--run", conditional_run, "--metrics", "fid",
                                             "--inception-weights", bomb, "--num", 4, "--no-append")
    line = one_line(err)
    assert code == 2 and "--inception-weights" in line and "archive/data.pkl is compressed" in line
    assert growth < 48, f"{growth:.0f} MiB allocated before the weights were refused"


def test_a_decoded_cache_that_claims_more_than_it_holds_is_read_again(tmp_path):
    fine = tmp_path / "fine.npz"
    assert save_cache(fine, x=np.arange(10, dtype=np.uint8)) is None
    assert load_cache(fine, {"x"})["x"].tolist() == list(range(10))
    packed = tmp_path / "packed.npz"
    np.savez_compressed(packed, x=np.zeros(1 << 24, np.uint8))  # never what save_cache writes
    assert load_cache(packed, {"x"}) is None
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (10**11,)})
    lying = tmp_path / "lying.npz"
    with zipfile.ZipFile(lying, "w") as z:  # stored, as save_cache writes, but 100 bytes for a 100 GB array
        z.writestr("x.npy", header.getvalue() + b"\0" * 100)
    assert load_cache(lying, {"x"}) is None


# ---------------------------------------------------------------------------------------------
# Paths that are no regular file: a FIFO would block its reader forever, a device never ends


def _wgan(*argv, cwd=None, timeout_s: float = 90) -> subprocess.CompletedProcess:
    """`wgan ARGV` in a fresh process, with a deadline: a read that blocks fails the test instead of hanging it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "wgan", *map(str, argv)], env=env, capture_output=True, text=True,
                          timeout=timeout_s, cwd=cwd)


def test_a_fifo_or_a_device_given_as_weights_is_refused_without_reading(tmp_path):
    fifo = tmp_path / "G.safetensors"
    os.mkfifo(fifo)
    (tmp_path / "fashion-mnist").mkdir()
    os.mkfifo(tmp_path / "fashion-mnist-cond")  # a shipped generator's name, in the current folder
    for argv in (["--weights", fifo], ["--run", fifo], ["--weights", "/dev/zero"], ["--weights", "fashion-mnist-cond"]):
        done = _wgan("sample", *argv, "--num", 4, "--out", tmp_path / "o.png", "--device", "cpu", cwd=tmp_path)
        line = one_line(done.stderr)
        assert done.returncode == 2 and "not a regular file (a FIFO, a device or a socket)" in line, line
    assert not (tmp_path / "o.png").exists()


def test_the_api_refuses_a_fifo_and_paths_of_the_wrong_type(tmp_path):
    fifo = tmp_path / "G.safetensors"
    os.mkfifo(fifo)
    code = (f"import wgan\n"
            f"for source in ({str(fifo)!r}, None, 5):\n"
            f"    try:\n        wgan.load_generator(source)\n"
            f"    except ValueError as exc:\n        print(exc)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=90)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and len(lines) == 3, done.stderr[-2000:]
    assert "not a regular file" in lines[0]
    assert all("load_generator(" in line and "a path" in line for line in lines[1:]), lines


def test_device_names_are_one_line_for_every_command_and_the_api(exported, conditional_run, tmp_path):
    for argv in (["sample", "--weights", exported, "--out", tmp_path / "o.png"], ["eval", "--run", conditional_run],
                 ["train", "--runs-dir", tmp_path / "runs"]):
        for device, needle in (("banana", "--device banana: use auto, cpu, cuda or cuda:N"),
                               ("cuda:x", "--device cuda:x: ")):
            code, _, err = run_cli(*argv, "--device", device)
            assert code == 2 and needle in one_line(err), err
    assert not (tmp_path / "runs").exists()
    for device, needle in ((5, "device 5: a device name (auto, cpu, cuda or cuda:N), not an int"),
                           ({"type": "cuda"}, "not a dict"), ("banana", "device banana: use auto, cpu")):
        with pytest.raises(UserError, match=re.escape(needle)):
            wgan.load_generator(exported, device=device)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="device cuda: CUDA is not available on this machine"):
            wgan.load_generator(exported, device="cuda")
        with pytest.raises(UserError, match="CUDA is not available"):
            wgan.load_generator(exported).to("cuda")


def _config_edit(**changes):
    def edit(meta):
        meta["config"] = json.dumps({**json.loads(meta["config"]), **changes})
    return edit


@pytest.mark.parametrize("edit, needle", [
    (lambda meta: meta.update(config="[" * 100_000 + "]" * 100_000), "without wgan metadata"),
    (lambda meta: meta.update(config='{"a":' * 100_000 + "1" + "}" * 100_000), "without wgan metadata"),
    (lambda meta: meta.update(class_names="[" * 100_000 + "]" * 100_000), "unreadable class names"),
    (_config_edit(model=["dcgan28"]), "--model ['dcgan28']: must be a string, not a list"),
    (_config_edit(dataset={"name": "fashion-mnist"}), "must be a string, not a dict"),
    (_config_edit(device={"type": "cuda"}), "--device {'type': 'cuda'}: must be a string, not a dict"),
    (_config_edit(conditional="yes"), "--conditional 'yes': must be True or False, not a string"),
])
def test_crafted_export_metadata_is_one_line_naming_the_file(exported, tmp_path, edit, needle):
    crafted = _edited(exported, tmp_path / "G.safetensors", edit)
    code, _, err = run_cli("sample", "--weights", crafted, "--num", 4, "--out", tmp_path / "o.png", "--device", "cpu")
    line = one_line(err)
    assert code == 2 and needle in line and str(crafted) in line, line
    with pytest.raises(UserError, match=re.escape(needle)):
        wgan.load_generator(crafted)


@pytest.mark.parametrize("step, read", [("²", None), ("١٢", None), ("12", 12), ("-3", None), ("9" * 40, None)])
def test_a_step_that_is_no_ascii_number_is_no_step(exported, tmp_path, step, read):
    crafted = _edited(exported, tmp_path / "G.safetensors", lambda meta: meta.update(step=step))
    assert wgan.load_generator(crafted).step == read
