"""Several processes on CPU (gloo): the averaged gradient equals one process's gradient on the
concatenated batch (penalty's double backward included); the steps keep every process's parameters
identical while each draws its own batches; and `torchrun ... -m wgan train` writes one run
directory, resumes bitwise, and stops on a signal to any one process without a deadlock."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import wgan
from conftest import CROSS_PATH_ATOL, CROSS_PATH_RTOL
from wgan import checkpoint as ckpt
from wgan import distributed, losses
from wgan.config import preset_config
from wgan.data import Data
from wgan.errors import UserError
from wgan.models import ModelShape, build_models
from wgan.training.fast import make_step
from wgan.training.state import TrainState

WORLD = 2
HALF = 8  # samples per process; the reference batch is WORLD * HALF
SRC = str(Path(wgan.__file__).resolve().parents[1])


# ---------------------------------------------------------------------------------------------
# In-process: two spawned gloo processes


def _gradients(rank: int) -> dict:
    """Gradients of the critic loss (with the penalty) and of the generator loss: averaged over the
    two processes' halves, and the reference on the whole batch, computed in one process."""
    torch.manual_seed(0)  # the same models and batch on both processes
    shape = ModelShape(latent_dim=4, width=16, critic_norm="layer", point_dim=2, channels=0, image_size=0)
    generator, critic = build_models("mlp", shape)
    real, z, eps = torch.randn(WORLD * HALF, 2), torch.randn(WORLD * HALF, 4), torch.rand(WORLD * HALF)
    opt_g, opt_c = torch.optim.SGD(generator.parameters(), lr=0.1), torch.optim.SGD(critic.parameters(), lr=0.1)

    def backward(part: slice) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        opt_c.zero_grad(), opt_g.zero_grad()
        fake = generator(z[part]).detach()
        loss = losses.critic_loss(critic(real[part]), critic(fake))
        loss = loss + 10.0 * losses.gradient_penalty(critic, real[part], fake, eps=eps[part])
        loss.backward()
        losses.generator_loss(critic(generator(z[part]))).backward(inputs=list(generator.parameters()))
        return [p.grad.clone() for p in critic.parameters()], [p.grad.clone() for p in generator.parameters()]

    ref_c, ref_g = backward(slice(None))
    local_c, local_g = backward(slice(rank * HALF, (rank + 1) * HALF))
    distributed.average_gradients(opt_c)
    distributed.average_gradients(opt_g)
    return {"ref": ref_c + ref_g, "local": local_c + local_g,
            "averaged": [p.grad.clone() for p in critic.parameters()] + [p.grad.clone() for p in generator.parameters()]}


def _training(rank: int) -> dict:
    """A few plain and fused steps of the real training code, each process on its own batches."""

    cfg = preset_config("toy-8gaussians", width=16, batch_size=16, critic_steps=2, device="cpu", tensorboard=False)
    data = Data("points", torch.randn(256, 2, generator=torch.Generator().manual_seed(1)))
    state = TrainState.build(cfg, data=data)
    initial = [t.clone() for t in state.critic.state_dict().values()]
    out = {"initial": initial}
    for name, fast in (("plain", False), ("fused", True)):
        step, _ = make_step(state, fast)
        for _ in range(3):
            step()
        out[f"{name}_local_sums"] = step.sums.clone()
        out[f"{name}_stats"] = step.read_and_reset(3)
    out["generator"] = {k: v.clone() for k, v in state.generator.state_dict().items()}
    out["critic"] = {k: v.clone() for k, v in state.critic.state_dict().items()}
    out["identical"] = distributed.parameters_identical(state.generator, state.critic)
    rng_ranks = state.state_dict()["rng_ranks"]
    out["rng_ranks"] = [r["torch"] for r in rng_ranks]
    if rank == 1:  # a deliberate difference must be seen by every process
        with torch.no_grad():
            next(state.critic.parameters()).view(-1)[0] += 1e-3
    out["identical_after_change"] = distributed.parameters_identical(state.generator, state.critic)
    return out


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    # float64: the averaged gradients and losses are compared with one process's, to rounding (conftest)
    torch.set_default_dtype(torch.float64)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.save({"gradients": _gradients(rank), "training": _training(rank)}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("spawned")
    # fork where there is one: the children then need not import torch again (seconds each)
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(_worker, args=(str(folder / "init"), str(folder)), nprocs=WORLD, join=True, start_method=method)
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def test_averaged_gradients_equal_the_gradient_on_the_concatenated_batch(ranks):
    for result in ranks:
        g = result["gradients"]
        for averaged, ref in zip(g["averaged"], g["ref"]):
            assert averaged.dtype == torch.float64
            torch.testing.assert_close(averaged, ref, rtol=CROSS_PATH_RTOL, atol=CROSS_PATH_ATOL)
    # each process's own gradient is not the reference: the averaging did the work
    local0, local1 = ranks[0]["gradients"]["local"], ranks[1]["gradients"]["local"]
    assert not all(torch.allclose(a, b) for a, b in zip(local0, local1))
    assert not all(torch.allclose(a, r) for a, r in zip(local0, ranks[0]["gradients"]["ref"]))


def test_steps_keep_parameters_identical_while_batches_differ(ranks):
    r0, r1 = ranks[0]["training"], ranks[1]["training"]
    # seeded with seed + rank, yet the same initial models: rank 0's were broadcast
    assert all(torch.equal(a, b) for a, b in zip(r0["initial"], r1["initial"]))
    for model in ("generator", "critic"):
        assert r0[model].keys() == r1[model].keys()
        assert all(torch.equal(r0[model][k], r1[model][k]) for k in r0[model]), model
    assert not all(torch.equal(a, b) for a, b in zip(r0["initial"], r0["critic"].values()))  # it trained
    for name in ("plain", "fused"):
        # different batches: different local losses; the logged losses are their mean, on both
        assert not torch.equal(r0[f"{name}_local_sums"], r1[f"{name}_local_sums"])
        mean = ((r0[f"{name}_local_sums"] + r1[f"{name}_local_sums"]) / 2 / 3).tolist()
        for key, expected in zip(r0[f"{name}_stats"], mean):
            assert r0[f"{name}_stats"][key] == pytest.approx(expected, rel=CROSS_PATH_RTOL, abs=CROSS_PATH_ATOL)
            assert r1[f"{name}_stats"][key] == r0[f"{name}_stats"][key]
    assert r0["identical"] and r1["identical"]
    assert not r0["identical_after_change"] and not r1["identical_after_change"]
    # the checkpoint carries both processes' random streams, and they differ
    assert torch.equal(r0["rng_ranks"][1], r1["rng_ranks"][1])
    assert not torch.equal(r0["rng_ranks"][0], r0["rng_ranks"][1])


def test_one_process_needs_no_process_group_and_cuda_index_is_refused(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed.process_group(torch.device("cpu")):
        assert not distributed.active() and distributed.world_size() == 1 and distributed.is_main()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match=r"--device cuda:0: with torchrun every process uses its own GPU"):
        with distributed.process_group(torch.device("cuda", 0)):
            pass
    assert not distributed.active()


# ---------------------------------------------------------------------------------------------
# torchrun, as a user runs it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_command(*args) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD}", "--master_addr=127.0.0.1",
            f"--master_port={_free_port()}", "-m", "wgan", "train", *map(str, args)]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _torchrun(*args) -> subprocess.CompletedProcess:
    done = subprocess.run(_torchrun_command(*args), env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


TRAIN = ["--preset", "quick", "--width", "8", "--latent-dim", "16", "--batch-size", "8", "--critic-steps", "2",
         "--no-tensorboard", "--device", "cpu", "--no-progress", "--log-every-steps", "2"]



def test_torchrun_bad_option_is_one_line_not_one_per_process(tmp_path):
    done = subprocess.run(_torchrun_command(*TRAIN, "--critic-steps", "0", "--runs-dir", tmp_path / "runs"), env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert done.stderr.count("wgan train: error: --critic-steps 0") == 1, done.stderr[-3000:]
    assert not (tmp_path / "runs").exists()

@pytest.fixture(scope="module")
def torchrun_run(tmp_path_factory, fashion_idx_dir_module) -> tuple[Path, subprocess.CompletedProcess]:
    """Six steps in two processes, a checkpoint and a sample grid every 3."""
    runs = tmp_path_factory.mktemp("runs")
    done = _torchrun(*TRAIN, "--data", fashion_idx_dir_module, "--steps", 6, "--checkpoint-every-steps", 3,
                     "--keep-checkpoints", 10, "--sample-every-steps", 3, "--runs-dir", runs)
    (run,) = list(runs.iterdir())
    return run, done


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def resumed_then_stopped(torchrun_run, tmp_path_factory) -> tuple[Path, str]:
    """A copy of that run resumed from its step-3 checkpoint in two processes for many steps, then
    stopped by SIGTERM sent to rank 1 alone (the process that writes nothing) once step 6 is passed."""
    run = tmp_path_factory.mktemp("resumed") / torchrun_run[0].name
    shutil.copytree(torchrun_run[0], run)
    proc = subprocess.Popen(_torchrun_command("--resume", run / "checkpoints" / "step-00000003.pt", "--steps", 100000,
                                              "--no-progress"),
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not any(r["step"] >= 8 for r in _metrics(run)):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.1)
        os.kill(_worker_pid(proc.pid, rank=1), signal.SIGTERM)
        out, err = proc.communicate(timeout=60)  # no deadlock: both processes stop
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # stopped before its --steps: the job did not finish, and says so by its exit code
    assert proc.returncode not in (0, None), out[-2000:] + err[-3000:]
    return run, out


def test_torchrun_rank0_writes_one_complete_run(torchrun_run):
    run, done = torchrun_run
    assert done.stdout.count("run directory:") == 1
    for name in ("config.json", "log.txt", "metrics.jsonl", "generator.safetensors", "losses.png",
                 "samples/step-00000000.png", "samples/step-00000003.png", "samples/step-00000006.png",
                 "checkpoints/step-00000003.pt", "checkpoints/step-00000006.pt"):
        assert (run / name).is_file(), name
    log = (run / "log.txt").read_text()
    assert log.count("started:") == 1
    assert "batch=8 per process x 2 processes = 16 (effective)" in log
    assert "finished at step 6" in log and "parameters identical on all 2 processes" in log
    records = _metrics(run)
    assert [r["step"] for r in records] == [2, 3, 4, 6]  # once each: rank 1 logs nothing
    assert all(r["penalty"] > 0 for r in records)
    state = torch.load(run / "checkpoints" / "step-00000006.pt", weights_only=True)
    assert len(state["rng_ranks"]) == 2 and torch.equal(state["rng_ranks"][0]["torch"], state["rng"]["torch"])
    assert not torch.equal(state["rng_ranks"][0]["torch"], state["rng_ranks"][1]["torch"])


def _flat(state: dict) -> dict[str, torch.Tensor]:
    """Model and optimiser tensors of a checkpoint, by name."""
    out = {f"{m}.{k}": v for m in ("generator", "critic") for k, v in state[m].items()}
    for opt in ("opt_generator", "opt_critic"):
        out.update({f"{opt}.{i}.{k}": v for i, s in state[opt]["state"].items() for k, v in s.items()})
    return out


def test_torchrun_resume_continues_bitwise(torchrun_run, resumed_then_stopped):
    original, _ = torchrun_run
    run, _ = resumed_then_stopped
    unstopped = _flat(torch.load(original / "checkpoints" / "step-00000006.pt", weights_only=True))
    resumed = _flat(torch.load(run / "checkpoints" / "step-00000006.pt", weights_only=True))
    assert unstopped.keys() == resumed.keys()
    assert all(torch.equal(unstopped[k], resumed[k]) for k in unstopped)
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("time_s", "critic_images_per_s")} for r in rs]
    assert strip([r for r in _metrics(run) if r["step"] <= 6]) == strip(_metrics(original))


def test_torchrun_signal_to_one_process_stops_all_at_the_same_step(resumed_then_stopped):
    run, out = resumed_then_stopped
    log = (run / "log.txt").read_text()
    stopped = [line for line in log.splitlines() if "stopped by signal" in line]
    assert len(stopped) == 1 and f"signal {int(signal.SIGTERM)}" in stopped[0]
    step = int(stopped[0].split(" at step ")[1].split(";")[0])
    # at a read of the losses (every 2 steps, and at checkpoints every 3), where the processes agree
    assert 8 <= step < 100000 and (step % 2 == 0 or step % 3 == 0)
    assert (run / "checkpoints" / f"step-{step:08d}.pt").is_file()
    assert max(r["step"] for r in _metrics(run)) == step
    assert out.count(f"stopped at step {step}; checkpoint written. Resume: wgan train --resume {run}") == 1


def _worker_pid(launcher_pid: int, rank: int) -> int:
    """The pid of the launcher's child process of `rank` (Linux /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # gone, or not ours to read
        if parent == launcher_pid and f"RANK={rank}".encode() in environ:
            return int(stat.parent.name)
    raise AssertionError(f"no worker of rank {rank} under process {launcher_pid}")


def test_one_process_resumes_a_two_process_checkpoint(torchrun_run, tmp_path, capsys):
    from wgan.cli import main

    run = tmp_path / torchrun_run[0].name
    shutil.copytree(torchrun_run[0], run)
    assert main(["train", "--resume", str(run / "checkpoints" / "step-00000003.pt"), "--steps", "4",
                 "--no-progress"]) == 0
    log = (run / "log.txt").read_text()
    assert "written by 2 process(es), this run has 1: the effective batch is now 8" in log
    assert "finished at step 4" in log.splitlines()[-1]
    state = torch.load(run / "checkpoints" / "step-00000004.pt", weights_only=True)
    assert "rng_ranks" not in state and state["step"] == 4


# ---------------------------------------------------------------------------------------------
# torchrun --max-restarts: a killed process


def _kill_rank1_after_first_checkpoint(runs: Path, data: Path, max_restarts: int) -> subprocess.CompletedProcess:
    """Nine steps in two processes under torchrun --max-restarts; rank 1 is killed (SIGKILL) as soon as the
    step-3 checkpoint exists, three steps before the next one."""
    command = _torchrun_command(*TRAIN, "--data", data, "--steps", 9, "--checkpoint-every-steps", 3,
                                "--keep-checkpoints", 10, "--sample-every-steps", 0, "--runs-dir", runs)
    command.insert(3, f"--max-restarts={max_restarts}")
    proc = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        rank1 = None
        while not list(runs.glob("*/checkpoints/step-00000003.pt")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            if rank1 is None:  # looked up beforehand, so that the kill follows the checkpoint at once
                try:
                    rank1 = _worker_pid(proc.pid, rank=1)
                except AssertionError:
                    pass
            time.sleep(0.02)
        os.kill(rank1 or _worker_pid(proc.pid, rank=1), signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def test_torchrun_restart_resumes_the_run_bitwise(torchrun_run, fashion_idx_dir_module, tmp_path):
    runs = tmp_path / "runs"
    done = _kill_rank1_after_first_checkpoint(runs, fashion_idx_dir_module, max_restarts=1)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    (run,) = list(runs.iterdir())  # the restarted processes found the first attempt's run
    log = (run / "log.txt").read_text()
    assert log.count("started:") == 1
    assert "restarted by torchrun (restart 1 of 1) from step 3" in log
    assert "finished at step 9" in log.splitlines()[-1]
    # steps 4..6 trained again after the restart: bitwise what the uninterrupted run trained
    uninterrupted = _flat(torch.load(torchrun_run[0] / "checkpoints" / "step-00000006.pt", weights_only=True))
    restarted = _flat(torch.load(run / "checkpoints" / "step-00000006.pt", weights_only=True))
    assert uninterrupted.keys() == restarted.keys()
    assert all(torch.equal(uninterrupted[k], restarted[k]) for k in uninterrupted)


def test_torchrun_without_restarts_fails_and_keeps_the_checkpoint(fashion_idx_dir_module, tmp_path):
    runs = tmp_path / "runs"
    done = _kill_rank1_after_first_checkpoint(runs, fashion_idx_dir_module, max_restarts=0)
    assert done.returncode != 0
    (run,) = list(runs.iterdir())
    point = ckpt.open_checkpoint(run)  # loads, and belongs to the run
    assert point.step == 3 and "restarted by torchrun" not in (run / "log.txt").read_text()


# ---------------------------------------------------------------------------------------------
# Two nodes on one machine: two torchrun agents on 127.0.0.1, one process each


def _agents(rendezvous: str, node_args: list[list[str]], script_args: list[str], timeout: int = 150
            ) -> list[subprocess.CompletedProcess]:
    """torchrun --nnodes 2 --nproc-per-node 1 once per entry of `node_args`, all at once; their results."""
    port = _free_port()
    common = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
              "--local-addr=127.0.0.1"]
    if rendezvous == "c10d":
        common += ["--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=wgan-test"]
    else:
        common += ["--master-addr=127.0.0.1", f"--master-port={port}"]
    procs = [subprocess.Popen(common + extra + script_args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for extra in node_args]
    done = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return done


@pytest.mark.parametrize("rendezvous", ["c10d", "static"])
def test_two_nodes_train_as_one_job(rendezvous, fashion_idx_dir_module, tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    out.mkdir()
    worker = [str(Path(__file__).with_name("two_node_worker.py")), str(out)]
    train = [*TRAIN, "--data", str(fashion_idx_dir_module), "--steps", "2", "--sample-every-steps", "0",
             "--runs-dir", str(runs)]
    nodes = [[], []] if rendezvous == "c10d" else [["--node-rank=0"], ["--node-rank=1"]]
    done = _agents(rendezvous, nodes, worker + train)
    for node in done:
        assert node.returncode == 0, node.stdout[-2000:] + node.stderr[-3000:]
    results = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    assert [(r["rank"], r["local_rank"], r["world"], r["nodes"]) for r in results] == [(0, 0, 2, 2), (1, 0, 2, 2)]
    for r in results:  # float64: the averaged gradients are one process's on the concatenated batch
        for averaged, ref in zip(r["gradients"]["averaged"], r["gradients"]["ref"]):
            assert averaged.dtype == torch.float64
            torch.testing.assert_close(averaged, ref, rtol=CROSS_PATH_RTOL, atol=CROSS_PATH_ATOL)
    r0, r1 = results[0]["training"], results[1]["training"]
    assert r0["identical"] and r1["identical"]
    for model in ("generator", "critic"):
        assert all(torch.equal(r0[model][k], r1[model][k]) for k in r0[model]), model
    # both LOCAL_RANK 0, yet different batches: the streams are seeded from the global rank
    assert not torch.equal(r0["plain_local_sums"], r1["plain_local_sums"])
    assert not torch.equal(r0["rng_ranks"][0], r0["rng_ranks"][1])
    (run,) = list(runs.iterdir())
    assert sum(node.stdout.count("run directory:") for node in done) == 1
    log = (run / "log.txt").read_text()
    assert "processes: world size 2 on 2 node(s), 1 per node (torchrun)" in log
    assert "finished at step 2" in log and "parameters identical on all 2 processes" in log


@pytest.mark.parametrize("rendezvous", ["c10d", "static"])
def test_a_node_that_never_comes_ends_within_the_join_timeout(rendezvous, tmp_path):
    # join_timeout (c10d) and timeout (static) are the documented knobs; 3 s here, 600 and 900 s by default
    conf = "--rdzv-conf=join_timeout=3" if rendezvous == "c10d" else "--rdzv-conf=timeout=3"
    node = ["--node-rank=0"] if rendezvous == "static" else []
    started = time.monotonic()
    (done,) = _agents(rendezvous, [[conf, *node]], ["-m", "wgan", "train", *TRAIN, "--runs-dir", str(tmp_path)],
                      timeout=90)
    assert done.returncode != 0
    assert time.monotonic() - started < 60
    last = done.stderr.strip().splitlines()[-1]
    assert ("RendezvousTimeoutError" if rendezvous == "c10d" else "Timed out after") in last, done.stderr[-2000:]
    assert not list(tmp_path.iterdir())  # no worker started, nothing written


# ---------------------------------------------------------------------------------------------
# --sync-batch-norm


def test_sync_batch_norm_converts_every_batch_norm_and_keeps_the_checkpoint_format():
    from wgan.training.state import synchronised_batch_norm

    torch.manual_seed(0)
    # a clipping preset's models: batch norm in the generator and in the critic
    shape = ModelShape(latent_dim=8, width=8, critic_norm="batch", point_dim=0, channels=1, image_size=32)
    generator, critic = build_models("dcgan32", shape)
    before = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in (("g", generator), ("c", critic))}
    z = torch.randn(4, 8)
    generator.eval()
    expected = generator(z)
    for name, model in (("g", generator), ("c", critic)):
        norms = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
        converted = synchronised_batch_norm(model, torch.device("cuda"))  # a conversion only: no GPU needed
        assert norms > 0 and sum(isinstance(m, torch.nn.SyncBatchNorm) for m in converted.modules()) == norms
        after = converted.state_dict()
        assert after.keys() == before[name].keys() and all(torch.equal(after[k], before[name][k]) for k in after)
    torch.testing.assert_close(generator(z), expected, rtol=0, atol=0)  # eval: the same running statistics


def test_sync_batch_norm_on_a_cpu_is_one_line():
    cfg = preset_config("quick", width=8, batch_size=8, device="cpu", tensorboard=False, conditional=False,
                        sync_batch_norm=True)
    data = Data("fashion-mnist", torch.zeros(16, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(UserError, match=r"^--sync-batch-norm: torch's SyncBatchNorm runs only on CUDA \(NCCL\), "
                                        r"not on cpu \(gloo\); leave it out there"):
        TrainState.build(cfg, data=data)


def test_options_that_differ_between_machines_end_every_process_with_one_line_and_exit_2(tmp_path):
    train = ["-m", "wgan", "train", *TRAIN, "--steps", "2", "--runs-dir", str(tmp_path / "runs")]
    for _ in range(3):  # a group left standing aborted the process now and then, not every time
        done = _agents("static", [["--node-rank=0", *train, "--seed", "1"], ["--node-rank=1", *train, "--seed", "2"]],
                       [])
        for node in done:
            assert node.returncode != 0
            assert "SIGABRT" not in node.stderr and "exitcode  : 2" in node.stderr, node.stderr[-3000:]
        assert "the processes disagree on the training options (digest)" in done[0].stderr
