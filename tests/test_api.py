"""The Python API: wgan.load_generator and TrainedGenerator.sample / .walk, on tiny runs trained here.

The API samples through the code `wgan sample` uses, so their images are compared bit for bit; the
truncated draws are compared against the generator called directly on wgan.latents' draws.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import wgan
from cli_helpers import TINY, run_cli, train_tiny
from wgan import checkpoint as ckpt
from wgan.data import to_uint8_images
from wgan.data.idx import FASHION_CLASSES
from wgan.latents import draw_latents
from wgan.training.step import STAT_NAMES

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory, fashion_idx_dir_module) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs-cond"), fashion_idx_dir_module, "--conditional")


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory, fashion_idx_dir_module) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs"), fashion_idx_dir_module)


def test_load_generator_is_imported_lazily_so_the_package_imports_no_torch():
    code = ("import sys, wgan; before = 'torch' in sys.modules; f = wgan.load_generator; "
            "print(before, 'torch' in sys.modules, 'load_generator' in dir(wgan), f.__module__)")
    env = dict(os.environ, PYTHONPATH=str(SRC))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True", "True", "wgan.api"]
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        wgan.nothing_here  # noqa: B018


def test_what_a_loaded_generator_says_about_itself(conditional_run, plain_run):
    g = wgan.load_generator(conditional_run)
    assert g.classes == tuple(FASHION_CLASSES) and g.conditional
    assert g.latent_dim == 16 and g.image_shape == (1, 28, 28) and g.device == torch.device("cpu")
    assert g.weights == "ema" and g.step == 2 and g.config.conditional
    assert g.to("cpu") is g and "10 classes" in repr(g)
    plain = wgan.load_generator(plain_run)
    assert plain.classes == () and not plain.conditional


def test_sample_is_uint8_images_on_the_generators_device_the_same_for_the_same_seed(plain_run):
    g = wgan.load_generator(plain_run)
    images = g.sample(6, seed=3)
    assert images.shape == (6, 1, 28, 28) and images.dtype == torch.uint8 and images.device == g.device
    assert torch.equal(images, g.sample(6, seed=3)) and not torch.equal(images, g.sample(6, seed=4))
    assert images.float().std() > 0
    assert g.sample(2).shape == (2, 1, 28, 28), "no seed: fresh noise"


def test_truncated_samples_are_the_generator_on_truncated_draws(plain_run):
    g = wgan.load_generator(plain_run)
    z = draw_latents(5, g.latent_dim, generator=torch.Generator().manual_seed(1), truncation=0.5)
    with torch.no_grad():
        direct = to_uint8_images(g.module(z, None))
    assert torch.equal(g.sample(5, truncation=0.5, seed=1), direct)
    assert not torch.equal(g.sample(5, seed=1), direct), "truncation changes the noise"


def test_labels_by_name_number_or_one_per_sample(conditional_run):
    g = wgan.load_generator(conditional_run)
    sneakers = g.sample(4, labels="Sneaker", seed=0)
    assert torch.equal(sneakers, g.sample(4, labels="sneaker", seed=0))
    assert torch.equal(sneakers, g.sample(4, labels=7, seed=0))
    assert not torch.equal(sneakers, g.sample(4, labels="Bag", seed=0)), "the label reaches the generator"
    mixed = g.sample(3, labels=["Bag", 7, "coat"], seed=0)
    z = draw_latents(3, g.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        direct = to_uint8_images(g.module(z, torch.tensor([8, 7, 4])))
    assert torch.equal(mixed, direct)
    every = g.sample(12, seed=0)  # None: every class in turn
    assert torch.equal(every, g.sample(12, labels=[i % 10 for i in range(12)], seed=0))
    assert g.class_index("ankle boot") == 9


def test_the_api_and_wgan_sample_make_the_same_images(conditional_run, tmp_path):
    out = tmp_path / "s.npz"
    code, _, err = run_cli("sample", "--run", conditional_run, "--num", "5", "--label", "sneaker", "--truncation",
                           "0.8", "--seed", "2", "--out", out, "--device", "cpu")
    assert code == 0, err
    with np.load(out) as f:
        cli_images, cli_labels = f["images"], f["labels"]
    api = wgan.load_generator(conditional_run).sample(5, labels="Sneaker", truncation=0.8, seed=2)
    assert np.array_equal(api.numpy(), cli_images) and cli_labels.tolist() == [7] * 5


def test_a_run_its_checkpoint_and_its_export_load_the_same_generator(conditional_run, tmp_path):
    newest = ckpt.list_checkpoints(conditional_run / "checkpoints")[-1]
    exported = tmp_path / "G.safetensors"
    code, _, err = run_cli("export", "--run", conditional_run, "--out", exported)
    assert code == 0, err
    samples = [wgan.load_generator(s).sample(4, labels="Bag", seed=1)
               for s in (conditional_run, newest, exported, conditional_run / "generator.safetensors")]
    assert all(torch.equal(samples[0], s) for s in samples[1:])
    assert wgan.load_generator(exported).classes == tuple(FASHION_CLASSES)
    raw = wgan.load_generator(conditional_run, raw_generator=True)
    ema = wgan.load_generator(conditional_run)
    assert raw.weights == "raw" and ema.weights == "ema"
    # After two steps their images round to the same bytes; their weights differ.
    assert any(not torch.equal(p, q) for p, q in zip(raw.module.parameters(), ema.module.parameters()))


def test_walk_frames(conditional_run, plain_run):
    frames = wgan.load_generator(conditional_run).walk(num_points=3, frames=2, num_walks=2)
    assert frames.shape == (6, 20, 1, 28, 28) and frames.dtype == torch.uint8  # 2 walks x 10 classes
    one_class = wgan.load_generator(conditional_run).walk(num_points=2, frames=3, num_walks=4, label="Bag")
    assert one_class.shape == (6, 4, 1, 28, 28)
    plain = wgan.load_generator(plain_run)
    frames = plain.walk(num_points=2, frames=2, num_walks=3, seed=5)
    assert frames.shape == (4, 3, 1, 28, 28)
    assert torch.equal(frames[0], plain.walk(num_points=2, frames=2, num_walks=3, seed=5)[0])


@pytest.mark.parametrize("kwargs, needle", [
    (dict(truncation=0), "truncation=0: must be a number > 0"),
    (dict(truncation=-0.5), "truncation=-0.5"),
    (dict(truncation=math.nan), "truncation=nan"),
    (dict(labels="Hat"), "labels='Hat': not a class of this generator; its classes are T-shirt/top, Trouser"),
    (dict(labels=10), "no class number 10"),
    (dict(labels=["Bag"]), "1 labels for 4 samples"),
    (dict(num=0), "num=0"),
    (dict(seed=-1), "seed=-1"),
])
def test_bad_arguments_are_a_clear_value_error(conditional_run, kwargs, needle):
    g = wgan.load_generator(conditional_run)
    with pytest.raises(ValueError) as info:
        g.sample(**{"num": 4, **kwargs})
    assert needle in str(info.value)


def test_labels_for_an_unconditional_generator_are_an_error(plain_run):
    with pytest.raises(ValueError, match="not class-conditional"):
        wgan.load_generator(plain_run).sample(2, labels="Bag")
    with pytest.raises(ValueError, match="at least 2 points"):
        wgan.load_generator(plain_run).walk(num_points=1)
    with pytest.raises(ValueError, match="frames=0"):
        wgan.load_generator(plain_run).walk(frames=0)


def test_what_cannot_be_loaded_is_a_value_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path / "nothing")):
        wgan.load_generator(tmp_path / "nothing")
    bad = tmp_path / "G.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        wgan.load_generator(bad)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_generator_moved_to_the_gpu_samples_there_the_same_images(plain_run):
    g = wgan.load_generator(plain_run)
    on_cpu = g.sample(8, seed=0, truncation=0.7)
    on_gpu = g.to("cuda").sample(8, seed=0, truncation=0.7)
    assert on_gpu.device.type == "cuda" and g.device.type == "cuda"
    assert (on_gpu.cpu().int() - on_cpu.int()).abs().max() <= 1  # other kernels, rounding at most one level


# --- one rule, one message: the command line's error line and the API's ValueError ----------------

HUGE = 10**12  # samples, or walk points, no machine holds


def _rules(run: Path, out: Path):
    """(the `wgan` arguments that break a rule, the API call that breaks it): each rule once."""
    return [
        (["sample", "--num", "0"], lambda g: g.sample(0)),
        (["sample", "--truncation", "0"], lambda g: g.sample(2, truncation=0.0)),
        (["sample", "--seed", "-1"], lambda g: g.sample(2, seed=-1)),
        (["sample", "--label", "Hat"], lambda g: g.sample(2, labels="Hat")),
        (["sample", "--label", "10"], lambda g: g.sample(2, labels="10")),
        (["sample", "--num", str(HUGE)], lambda g: g.sample(HUGE)),
        (["sample", "--num", "10001", "--out", out / "x.png"], lambda g: g.save_samples(out / "x.png", 10001)),
        (["sample", "--out", out / "x.jpg"], lambda g: g.save_samples(out / "x.jpg", 4)),
        (["sample", "--walk", "1", "--out", out / "w.gif"], lambda g: g.walk(num_points=1)),
        (["sample", "--walk", "2", "--frames", "0", "--out", out / "w.gif"], lambda g: g.walk(frames=0)),
        (["sample", "--walk", "2", "--frame-ms", "5", "--out", out / "w.gif"],
         lambda g: g.save_walk(out / "w.gif", frame_ms=5)),
        (["sample", "--walk", "2", "--out", out / "w.avi"], lambda g: g.save_walk(out / "w.avi")),
        (["sample", "--walk", str(HUGE), "--frames", "2", "--num", "1", "--out", out / "w.gif"],
         lambda g: g.walk(num_points=HUGE, frames=2, num_walks=1)),
        (["export", "--out", out / "G.pt"], lambda g: g.export(out / "G.pt")),
    ]


def _tail(message: str) -> str:
    """A message without the name of the value it is about (`--num 0` or `num=0`)."""
    return message.split(": ", 1)[1]


def test_each_rule_says_the_same_to_the_command_line_and_to_python(conditional_run, tmp_path):
    g = wgan.load_generator(conditional_run)
    for argv, call in _rules(conditional_run, tmp_path / "out"):
        out = [] if "--out" in argv else ["--out", tmp_path / "out" / "x.npz"]
        code, _, err = run_cli(*argv, "--run", conditional_run, *out)
        (line,) = err.strip().splitlines()
        assert code == 2 and line.startswith(f"wgan {argv[0]}: error: "), (argv, err)
        with pytest.raises(ValueError) as info:
            call(g)
        assert isinstance(info.value, wgan.UserError)
        cli_message = line.removeprefix(f"wgan {argv[0]}: error: ")
        assert _tail(cli_message) == _tail(str(info.value)), argv
        assert not (tmp_path / "out").exists(), f"{argv}: nothing written"


def test_labels_for_a_generator_without_classes_say_the_same(plain_run, tmp_path):
    code, _, err = run_cli("sample", "--run", plain_run, "--label", "3", "--out", tmp_path / "x.npz")
    with pytest.raises(ValueError) as info:
        wgan.load_generator(plain_run).sample(2, labels=3)
    assert code == 2 and err.strip() == "wgan sample: error: --label: this generator is not class-conditional"
    assert str(info.value) == "labels: this generator is not class-conditional"


def test_stored_data_gone_from_disk_say_the_same(fashion_idx_dir, tmp_path):
    run = train_tiny(tmp_path / "runs", fashion_idx_dir)
    shutil.rmtree(fashion_idx_dir)
    code, _, err = run_cli("eval", "--run", run, "--num", "16", "--device", "cpu")
    with pytest.raises(ValueError) as info:
        wgan.evaluate(run, num=16, device="cpu", progress=False)
    assert code == 2 and err.strip() == f"wgan eval: error: {info.value}"
    assert f"its data {fashion_idx_dir} do not exist" in str(info.value)


# --- the whole life of a run: train, resume, evaluate, report, export ---------------------------

TINY_OPTIONS = dict(conditional=False, width=8, latent_dim=16, batch_size=8, critic_steps=1, log_every_steps=1,
                    sample_every_steps=0, tensorboard=False, device="cpu")


@pytest.fixture
def quiet_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("WGAN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_train_is_wgan_train_and_resume_continues_it(fashion_idx_dir, tmp_path, quiet_cache, capsys):
    run = wgan.train(preset="quick", data=fashion_idx_dir, steps=2, runs_dir=tmp_path / "runs", progress=False,
                     **TINY_OPTIONS)
    # not even the data's note (its images, unpacked from the .gz files once, are mapped from the cache): log.txt has it
    assert capsys.readouterr().out == "", "progress=False prints nothing"
    assert "the images are mapped from" in (run.dir / "log.txt").read_text()
    code, _, err = run_cli("train", *TINY, "--data", fashion_idx_dir, "--runs-dir", tmp_path / "cli",
                           "--steps", "2")
    assert code == 0, err
    cli_run = wgan.Run(next((tmp_path / "cli").iterdir()))
    assert {**run.config.to_dict(), "runs_dir": "-"} == {**cli_run.config.to_dict(), "runs_dir": "-"}
    assert [r["step"] for r in run.metrics()] == [1, 2]
    losses = [{k: v for k, v in r.items() if k in STAT_NAMES} for r in run.metrics()]
    assert losses == [{k: v for k, v in r.items() if k in STAT_NAMES} for r in cli_run.metrics()], \
        "the same config and loop: the same losses"
    frame = run.metrics_frame()
    assert list(frame["step"]) == [1, 2] and "wasserstein" in frame.columns
    longer = wgan.resume(run, steps=4, progress=False)
    assert longer.dir == run.dir and [r["step"] for r in longer.metrics()] == [1, 2, 3, 4]
    assert longer.generator().step == 4


def test_train_refuses_bad_options_with_the_command_lines_message(fashion_idx_dir, tmp_path):
    with pytest.raises(ValueError, match="--critic-steps 0: must be a whole number >= 1"):
        wgan.train(data=fashion_idx_dir, steps=2, runs_dir=tmp_path / "runs", critic_steps=0, progress=False)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['critic_stepz'\]"):
        wgan.train(data=fashion_idx_dir, runs_dir=tmp_path / "runs", critic_stepz=1, progress=False)
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ValueError, match="no checkpoints in"):
        wgan.resume(tmp_path, steps=3)
    with pytest.raises(ValueError, match="no config.json there"):
        wgan.Run(tmp_path)


def test_evaluate_a_run_or_a_generator_and_report(plain_run, tmp_path, quiet_cache):
    run = tmp_path / "run"
    shutil.copytree(plain_run, run)
    before = (run / "metrics.jsonl").read_text()
    scores = wgan.evaluate(run, metrics=["fcd", "class-coverage"], num=16, device="cpu", progress=False)
    assert set(scores) == {"fcd", "class_coverage", "classes_covered", "samples"} and scores["samples"]["fcd"] == 16
    assert (run / "metrics.jsonl").read_text() == before, "append=False leaves metrics.jsonl alone"
    again = wgan.evaluate(wgan.load_generator(run), metrics="fcd,class-coverage", num=16, progress=False)
    assert again == scores, "the same seed: the same samples, the same scores"
    wgan.evaluate(wgan.Run(run), metrics=["fcd"], num=16, device="cpu", append=True, progress=False)
    assert wgan.Run(run).metrics()[-1]["source"] == "wgan eval"
    with pytest.raises(ValueError, match="num=1: must be >= 2"):
        wgan.evaluate(run, num=1)
    files = wgan.report(run, progress=False)
    assert files["html"] == run / "report.html" and files["html"].is_file()


def test_export_and_save_write_what_the_commands_write(conditional_run, tmp_path):
    g = wgan.load_generator(conditional_run)
    ours = g.export(tmp_path / "ours" / "G.safetensors")
    code, _, err = run_cli("export", "--run", conditional_run, "--out", tmp_path / "theirs.safetensors")
    assert code == 0, err
    a, b = wgan.load_generator(ours), wgan.load_generator(tmp_path / "theirs.safetensors")
    assert a.classes == b.classes and a.step == b.step == 2 and a.weights == b.weights == "ema"
    assert all(torch.equal(p, q) for p, q in zip(a.module.state_dict().values(), b.module.state_dict().values()))
    g.save_samples(tmp_path / "api.npz", 6, labels="Bag", truncation=0.7, seed=3)
    code, _, err = run_cli("sample", "--run", conditional_run, "--num", "6", "--label", "bag", "--truncation", "0.7",
                           "--seed", "3", "--out", tmp_path / "cli.npz")
    assert code == 0, err
    with np.load(tmp_path / "api.npz") as x, np.load(tmp_path / "cli.npz") as y:
        assert np.array_equal(x["images"], y["images"]) and np.array_equal(x["labels"], y["labels"])
    g.save_walk(tmp_path / "api.gif", num_points=2, frames=2, num_walks=2)
    code, _, err = run_cli("sample", "--run", conditional_run, "--walk", "2", "--frames", "2", "--num", "2",
                           "--out", tmp_path / "cli.gif")
    assert code == 0, err
    assert (tmp_path / "api.gif").read_bytes() == (tmp_path / "cli.gif").read_bytes()


def test_the_python_api_page_runs(fashion_idx_dir, tmp_path, monkeypatch, quiet_cache):
    """docs/python-api.md's example, on the tiny data and a few steps: the code a reader copies works."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "python-api.md").read_text()
    code = page.split("```python\n", 1)[1].split("```", 1)[0]
    tiny = {
        'data="data/fashion-mnist", steps=2000,': "data=DATA, steps=2, progress=False, **TINY,",
        "steps=3000)": "steps=3, progress=False)",
        "num=10000)": "num=16, device='cpu', progress=False)",
        "wgan.report(run)": "wgan.report(run, progress=False)",
    }
    for text, small in tiny.items():
        assert text in code, f"the example no longer holds {text!r}: update this test"
        code = code.replace(text, small)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/python-api.md", "exec"), {"DATA": fashion_idx_dir,
                                                       "TINY": dict(TINY_OPTIONS, conditional=True)})
    assert (tmp_path / "sneakers.png").is_file() and (tmp_path / "walk.gif").is_file()
    assert (tmp_path / "generator.safetensors").is_file() and wgan.Run(next((tmp_path / "runs").iterdir())).dir


@pytest.mark.parametrize("options, needle", [
    (dict(lr_critic="1e-4"), "--lr-critic '1e-4': must be a number, not a string"),
    (dict(gp_weight="10"), "--gp-weight '10': must be a number, not a string"),
    (dict(gp_weight=True), "--gp-weight True: must be a number, not a bool"),
    (dict(steps="20"), "--steps '20': must be a whole number, not a string"),
    (dict(dataset=["x"]), "--dataset ['x']: must be a string, not a list"),
    (dict(device=5), "--device 5: must be a string, not an int"),
    (dict(augment=5), "--augment 5: must be a string, not an int"),
    (dict(data=5), "--data 5: must be a string (or None), not an int"),
    (dict(runs_dir=5), "--runs-dir 5: must be a string, not an int"),
    (dict(conditional="no"), "--conditional 'no': must be True or False, not a string"),
    (dict(tensorboard=1), "--tensorboard 1: must be True or False, not an int"),
    (dict(preset=["quick"]), "unknown preset"),
])
def test_train_options_of_the_wrong_type_are_named_with_the_type_they_want(tmp_path, options, needle):
    with pytest.raises(ValueError) as info:
        wgan.train(**{"runs_dir": str(tmp_path / "runs"), "progress": False, **options})
    assert needle in str(info.value)
    assert not (tmp_path / "runs").exists()


def test_evaluate_resume_and_load_refuse_wrong_types_by_name(plain_run, tmp_path):
    with pytest.raises(ValueError, match=r"metrics=\[5\]: a comma-separated string or a list of metric names"):
        wgan.evaluate(plain_run, metrics=[5], num=16, device="cpu")
    with pytest.raises(ValueError, match="--seed -1: must be a whole number from 0 to 2"):
        wgan.evaluate(plain_run, num=16, seed=-1, device="cpu")
    with pytest.raises(ValueError, match=r"load_generator\(None\): a path"):
        wgan.load_generator(None)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['foo'\]"):
        wgan.resume(plain_run, steps=4, foo=1)
    with pytest.raises(ValueError, match=r"batch_size=0: must be >= 1"):
        wgan.load_generator(plain_run).sample(4, batch_size=0)


def test_train_with_progress_false_prints_nothing_however_much_it_has_to_say(fashion_idx_dir, tmp_path, quiet_cache,
                                                                              capsys):
    # metrics at the end: the classifier's notes while it trains, then the run's last word on its quality
    options = dict(TINY_OPTIONS, eval_metrics="class-coverage", eval_num_samples=16)
    run = wgan.train(preset="quick", data=fashion_idx_dir, steps=2, runs_dir=tmp_path / "runs", progress=False,
                     **options)
    out, err = capsys.readouterr()
    assert out == "" and err == "", (out, err)
    log = (run.dir / "log.txt").read_text()
    assert "quality at step 2: class_coverage" in log  # what it would have said is in the log
    wgan.resume(run, steps=3, progress=True)
    assert "quality at step 3: class_coverage" in capsys.readouterr().out


def test_evaluate_shows_its_sampling_only_with_progress(plain_run, quiet_cache, capsys):
    wgan.evaluate(plain_run, metrics=["class-coverage"], num=600, device="cpu", progress=False)
    assert capsys.readouterr() == ("", "")
    wgan.evaluate(plain_run, metrics=["class-coverage"], num=600, device="cpu")
    assert "sampling" in capsys.readouterr().err
