"""Inception FID/KID through torch-fidelity, offline: a randomly initialised Inception-v3 weights file in
torch-fidelity's format stands in for the real one (same network, same code path, other numbers)."""

from __future__ import annotations

import json
from unittest import mock

import pytest
import torch

from synth_idx import write_dataset
from wgan import metrics
from wgan.cli import main
from wgan.metrics.inception import INCEPTION_FEATURE, inception_cache_dir

fidelity_inception = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
Inception = fidelity_inception.FeatureExtractorInceptionV3


def write_random_inception_weights(path, seed: int):
    """torch-fidelity's network with He-initialised convolutions (so features vary with the input), saved as
    the state dict its --inception-weights file holds."""
    with mock.patch.object(Inception, "load_state_dict", lambda self, state: None), \
         mock.patch.object(fidelity_inception, "load_state_dict_from_url", lambda *a, **k: {}):
        net = Inception("inception-v3-compat", ["2048"])
    torch.manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("inception")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        yield dict(root=root, data_dir=write_dataset(root / "data", n_train=40, n_test=6),
                   weights=write_random_inception_weights(root / "inception.pth", seed=0))


@pytest.fixture(autouse=True)
def without_onednn():
    """oneDNN spends seconds preparing each new Inception network on a small CPU (torch-fidelity builds one
    per call); the plain CPU kernels run these few images in a fraction of that."""
    with torch.backends.mkldnn.flags(enabled=False):
        yield


@pytest.fixture
def forward_calls(monkeypatch):
    """How many batches went through the Inception network."""
    calls = []
    forward = Inception.forward
    monkeypatch.setattr(Inception, "forward", lambda self, x: (calls.append(len(x)), forward(self, x))[1])
    return calls


def evaluator(env, **kw):
    return metrics.Evaluator(["fid", "kid"], dataset="fashion-mnist", data_path=env["data_dir"],
                             inception_weights=env["weights"], note=print, **kw)


def test_fid_is_zero_on_the_test_split_itself_and_the_test_features_are_computed_once(env, forward_calls):
    ev = evaluator(env)
    assert ev.prepare(points=False, conditional=False) == ["fid", "kid"]
    same = ev.evaluate(metrics.Samples(ev.test_data().x.clone()))
    blank = ev.evaluate(metrics.Samples(torch.zeros(4, 1, 28, 28, dtype=torch.uint8)))
    assert sorted(forward_calls) == [4, 6, 6]  # the second evaluation read the test split's features back
    assert same["fid"].samples == 6 and blank["fid"].samples == 4
    assert abs(same["fid"].values["fid"]) < 1e-3 * blank["fid"].values["fid"]
    assert blank["kid"].values["kid"] > max(0.0, same["kid"].values["kid"])
    features = inception_cache_dir() / f"{ev.inception.test_cache_name()}-inception-v3-compat-features-2048.pt"
    assert torch.load(features, weights_only=True).shape == (6, 2048)


def test_fid_equals_torch_fidelitys_own_formula():
    import numpy as np
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    rng = np.random.default_rng(0)
    a = metrics.FeatureStats.of(np.maximum(rng.normal(size=(500, 64)), 0))
    b = metrics.FeatureStats.of(np.maximum(rng.normal(loc=0.2, size=(400, 64)), 0) * 1.3)
    theirs = fid_statistics_to_metric({"mu": a.mean, "sigma": a.cov}, {"mu": b.mean, "sigma": b.cov}, False)
    assert metrics.frechet_distance(a, b) == pytest.approx(theirs["frechet_inception_distance"], rel=1e-9)


def test_the_features_are_the_layer_torch_fidelity_computes_fid_kid_and_precision_in():
    if not hasattr(Inception, "get_default_feature_layer_for_metric"):
        pytest.skip("torch-fidelity before 0.4 names no layer per metric")
    assert {Inception.get_default_feature_layer_for_metric(m) for m in ("fid", "kid", "prc")} == {INCEPTION_FEATURE}


@pytest.mark.parametrize("save_cpu_ram", [False, True])  # torch-fidelity's two ways of computing them
def test_precision_recall_count_what_torch_fidelitys_own_count_but_at_ties(save_cpu_ram):
    """prc-inception's precision and recall are manifold_scores (whose real balls an evaluator draws once for
    all its evaluations, and which density and coverage share), not torch-fidelity's: the same balls and the
    same counts, in float64 here; but its balls are closed (<=, as in Kynkaanniemi et al.'s code) where ours
    are open (<, as in prdc's), which parts the two only where a distance equals a radius."""
    prc = pytest.importorskip("torch_fidelity.metric_prc")  # torch-fidelity 0.4 and later
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(300, 64, generator=gen, dtype=torch.float64).relu()
    fake = (torch.randn(200, 64, generator=gen, dtype=torch.float64) + 0.3).relu() * 1.2

    def counts(fake, real):
        ours = metrics.manifold_scores(real, fake, 3)
        theirs = prc.prc_features_to_metric(fake, real, prc_neighborhood=3, save_cpu_ram=save_cpu_ram,
                                            prc_batch_size=64, verbose=False)  # the shares in float32: counts
        return ([round(ours["precision"] * len(fake)), round(ours["recall"] * len(real))],
                [round(theirs["precision"] * len(fake)), round(theirs["recall"] * len(real))])

    ours, theirs = counts(fake, real)
    assert ours == theirs and 0 < ours[0] < len(fake) and 0 < ours[1] < len(real)
    # each real point four times over: balls of radius 0, which hold the generated copies only when closed
    # (whole numbers, so that the distances are exact in either formula and the ties are ties)
    real = torch.randint(0, 10, (50, 16), generator=gen).double()
    ours, theirs = counts(real.clone(), real.repeat(4, 1))
    assert ours[0] == 0 and theirs[0] == 50


def test_the_cache_is_named_by_the_data_and_the_weights(env, tmp_path):
    name = evaluator(env).inception.test_cache_name()
    assert evaluator(env).inception.test_cache_name() == name
    other_weights = write_random_inception_weights(tmp_path / "other.pth", seed=1)
    ev = metrics.Evaluator(["fid"], dataset="fashion-mnist", data_path=env["data_dir"], inception_weights=other_weights)
    assert ev.inception.test_cache_name() != name
    other_data = write_dataset(tmp_path / "data", n_train=40, n_test=6, seed=1)
    ev = metrics.Evaluator(["fid"], dataset="fashion-mnist", data_path=other_data, inception_weights=env["weights"])
    assert ev.inception.test_cache_name() != name


def test_a_damaged_cache_file_is_computed_again(env, forward_calls):
    ev = evaluator(env)
    ev.evaluate(metrics.Samples(torch.zeros(4, 1, 28, 28, dtype=torch.uint8)))  # makes sure the cache exists
    features = inception_cache_dir() / f"{ev.inception.test_cache_name()}-inception-v3-compat-features-2048.pt"
    features.write_bytes(b"half a file")
    forward_calls.clear()
    result = ev.evaluate(metrics.Samples(torch.zeros(4, 1, 28, 28, dtype=torch.uint8)))
    assert forward_calls == [4]  # this evaluator keeps the test split's features in memory
    result = evaluator(env).evaluate(metrics.Samples(torch.zeros(4, 1, 28, 28, dtype=torch.uint8)))  # a new run
    assert sorted(forward_calls) == [4, 4, 6] and result["fid"].values["fid"] > 0
    assert torch.load(features, weights_only=True).shape == (6, 2048)


def test_training_logs_fid_with_a_weights_file_and_eval_reuses_the_runs_file(env, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "--preset", "quick", "--data", str(env["data_dir"]), "--steps", "2", "--width", "8",
                 "--batch-size", "8", "--eval-metrics", "fid,kid", "--eval-num-samples", "4",
                 "--inception-weights", str(env["weights"]), "--runs-dir", str(runs), "--no-progress",
                 "--sample-every-steps", "0", "--no-tensorboard"]) == 0
    run = next(runs.iterdir())
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("fid" in r and "kid" in r for r in logged)
    assert main(["eval", "--run", str(run), "--num", "4", "--no-append"]) == 0
    assert "fid" in capsys.readouterr().out


def test_a_missing_weights_file_is_refused_before_anything_is_written(env, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "--preset", "quick", "--data", str(env["data_dir"]), "--steps", "2",
                 "--eval-metrics", "fid", "--inception-weights", str(tmp_path / "missing.pth"),
                 "--runs-dir", str(runs), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--inception-weights" in err[0] and "file not found" in err[0]
    assert not runs.exists()  # refused before a run directory was made


def test_precision_recall_in_inception_features_are_named_apart_and_share_one_pass(env, forward_calls):
    ev = metrics.Evaluator(["fid", "prc-inception", "dc-inception", "fcd"], dataset="fashion-mnist",
                           data_path=env["data_dir"], inception_weights=env["weights"], note=print)
    assert ev.prepare(points=False, conditional=False) == ["fid", "prc-inception", "dc-inception", "fcd"]
    ev.evaluate(metrics.Samples(ev.test_data().x[:4].clone()))  # the test split's features, once per evaluator
    forward_calls.clear()
    results = ev.evaluate(metrics.Samples(ev.test_data().x.clone()))
    assert forward_calls == [6], "the samples went through Inception-v3 once, for FID and the k-NN metrics"
    values = metrics.flatten_results(results)
    assert values["precision_inception"] == values["recall_inception"] == values["coverage_inception"] == 1.0
    assert "precision" not in values, "the classifier's precision is another metric (prc)"
    assert results["prc-inception"].samples == 6 and "Inception-v3" in results["prc-inception"].reference
    # the same numbers as the k-NN maths on the features torch-fidelity gave
    feats = ev.inception_features(metrics.Samples(ev.test_data().x.clone()))[1]["2048"].double()
    expected = metrics.manifold_scores(feats[ev.test_subset(6)], feats, 3)
    assert values["precision_inception"] == pytest.approx(expected["precision"], abs=1e-6)
