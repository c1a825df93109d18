"""The learning rates' linear decay: its values at step k, on the host and as device tensors, in a run's
checkpoints, and continued exactly by a resumed run."""

from __future__ import annotations

import pytest
import torch

from cli_helpers import TINY, run_cli
from wgan import checkpoint as ckpt
from wgan import rundir
from wgan.training.schedule import LinearDecay, lr_at


def test_lr_at_step_k_falls_linearly_to_zero_at_the_last_step():
    assert [lr_at(1e-3, k, 4) for k in range(6)] == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4, 0.0, 0.0])


@pytest.mark.parametrize("on_device", [False, True])
def test_the_schedule_sets_every_group_for_the_next_iteration(on_device):
    """Eager: float learning rates; the fast path's: tensors updated in place (graph-capturable)."""
    p, q = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    opt_g, opt_c = torch.optim.Adam([p], lr=2e-4), torch.optim.Adam([q], lr=1e-4)
    schedule = LinearDecay([(opt_g, 2e-4), (opt_c, 1e-4)], total_steps=10, start_step=4, on_device=on_device)
    lr = lambda opt: float(opt.param_groups[0]["lr"])  # noqa: E731
    assert (lr(opt_g), lr(opt_c)) == pytest.approx((2e-4 * 0.6, 1e-4 * 0.6))
    tensor = opt_g.param_groups[0]["lr"]
    assert isinstance(tensor, torch.Tensor) == on_device
    for _ in range(3):
        schedule.advance()
    assert (lr(opt_g), lr(opt_c)) == pytest.approx((2e-4 * 0.3, 1e-4 * 0.3))
    if on_device:
        assert opt_g.param_groups[0]["lr"] is tensor, "updated in place, as a captured graph reads it"
    p.grad, q.grad = torch.ones(2), torch.ones(3)
    opt_g.step(), opt_c.step()  # Adam takes either


@pytest.mark.parametrize("on_device", [False, True])
def test_time_spent_decays_the_rates_where_it_is_ahead_of_the_steps(on_device):
    """A run that --max-train-seconds may end first: at 70% of its time and 40% of its steps, the rates are
    30% of the initial; time behind the steps changes nothing; past the budget they stay at 0."""
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.Adam([p], lr=1e-3)
    schedule = LinearDecay([(opt, 1e-3)], total_steps=10, start_step=4, on_device=on_device)
    lr = lambda: float(opt.param_groups[0]["lr"])  # noqa: E731
    schedule.set_time_fraction(0.7)
    assert lr() == pytest.approx(3e-4)
    schedule.set_time_fraction(0.1)
    assert lr() == pytest.approx(6e-4), "the step count leads: 4 of 10 steps"
    schedule.advance()
    assert lr() == pytest.approx(5e-4)
    schedule.set_time_fraction(1.5)
    assert lr() == 0.0


def test_a_run_decays_both_learning_rates_and_a_resumed_run_continues_the_decay(tmp_path, fashion_idx_dir):
    runs = tmp_path / "runs"
    code, _, err = run_cli("train", *TINY, "--data", fashion_idx_dir, "--runs-dir", runs, "--steps", "4",
                           "--lr-decay", "linear", "--checkpoint-every-steps", "1", "--keep-checkpoints", "5",
                           "--lr-critic", "2e-4", "--lr-generator", "2e-4")
    assert code == 0, err
    (run,) = runs.iterdir()

    def lrs(step: int) -> tuple[float, float]:
        state = ckpt.load_checkpoint(run / rundir.CHECKPOINTS / rundir.checkpoint_name(step))
        return tuple(float(state[k]["param_groups"][0]["lr"]) for k in ("opt_generator", "opt_critic"))

    # after k generator iterations the optimisers hold iteration k's rates (2e-4 both)
    for k in (1, 2, 3, 4):
        assert lrs(k) == pytest.approx((lr_at(2e-4, k, 4),) * 2), k
    # from the checkpoint of step 2, with --steps raised to 8: the rest decays over the new length
    code, _, err = run_cli("train", "--resume", run / rundir.CHECKPOINTS / rundir.checkpoint_name(2), "--steps", "8")
    assert code == 0, err
    assert lrs(4) == pytest.approx((lr_at(2e-4, 4, 8),) * 2) and lrs(8) == (0.0, 0.0)


def test_a_time_budget_ends_the_run_as_its_last_step_would_and_evaluations_follow_the_clock(tmp_path, fashion_idx_dir,
                                                                                            monkeypatch):
    """--max-train-seconds: the run stops where the losses are read once that much training time has passed,
    with the last step's grid, evaluation, checkpoint and generator; --eval-every-seconds: evaluations at
    every such stretch of training time (theirs not counted)."""
    from wgan.training import loop

    def quick_evaluator(*args, **kwargs):
        return lambda generator: {"fake_score": 1.0, "eval_s": 0.0}

    monkeypatch.setattr(loop, "training_evaluator", quick_evaluator)
    runs = tmp_path / "runs"
    code, _, err = run_cli("train", *TINY, "--data", fashion_idx_dir, "--runs-dir", runs, "--steps", "1000000",
                           "--max-train-seconds", "3", "--eval-metrics", "class-coverage", "--eval-every-seconds", "1",
                           "--checkpoint-every-steps", "0", "--log-every-steps", "10")  # the budget is read every 10
    assert code == 0, err
    (run,) = runs.iterdir()
    records = rundir.read_records(run)
    train = [r for r in records if rundir.is_training_record(r)]
    evals = [r for r in records if "fake_score" in r]
    last = train[-1]["step"]
    assert 3 <= train[-1]["time_s"] < 4 and last < 1000000
    assert rundir.newest_checkpoint_step(run) == last and (run / rundir.GENERATOR).is_file()
    assert rundir.run_status(run) == "finished"
    assert 3 <= len(evals) <= 5 and evals[-1]["step"] == last  # about one a second, and the last step's
    # The clock's evaluation that falls due with the budget is the last step's, a few steps on: not both.
    assert all(r["time_s"] < 3 for r in evals[:-1]), [(r["step"], r["time_s"]) for r in evals] + [last]
    code, _, err = run_cli("train", "--resume", run, "--no-progress")
    assert code == 2 and "already trained" in err and "--max-train-seconds" in err


@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_a_run_ended_by_its_time_budget_decays_to_zero_on_its_own_clock(tmp_path, fashion_idx_dir, monkeypatch, clock):
    """--lr-decay linear with --max-train-seconds and a step cap far off: the rates follow the time spent, so
    the last checkpoint's are at (or next to) 0; --train-clock picks the clock the budget is read from (here
    one that moves 0.05 s a reading, the other clock never moving)."""
    from wgan.training import loop

    readings = iter(range(10**9))
    monkeypatch.setitem(loop.CLOCKS, clock, lambda: next(readings) * 0.05)
    monkeypatch.setitem(loop.CLOCKS, "cpu" if clock == "wall" else "wall", lambda: 0.0)
    runs = tmp_path / "runs"
    code, _, err = run_cli("train", *TINY, "--data", fashion_idx_dir, "--runs-dir", runs, "--steps", "1000000",
                           "--max-train-seconds", "2", "--train-clock", clock, "--lr-decay", "linear",
                           "--lr-critic", "2e-4", "--lr-generator", "2e-4", "--checkpoint-every-steps", "0",
                           "--log-every-steps", "2", "--sample-every-steps", "0")
    assert code == 0, err
    (run,) = runs.iterdir()
    last = rundir.newest_checkpoint_step(run)
    assert last < 1000, "the budget, not --steps, ended the run"
    state = ckpt.load_checkpoint(run / rundir.CHECKPOINTS / rundir.checkpoint_name(last))
    lrs = [float(state[k]["param_groups"][0]["lr"]) for k in ("opt_generator", "opt_critic")]
    assert max(lrs) < 2e-4 * 0.05, lrs
