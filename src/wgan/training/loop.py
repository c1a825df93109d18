"""The training loop: one code path for CPU, CUDA and N processes (torchrun; see wgan.distributed).

`train` takes a run's plan (training/plan.py: the options checked, the device, precision and step chosen,
the process group joined), starts or resumes the run, loops and finishes.
The loop reads top to bottom: train one generator iteration, then the chores that fall due at that
step (log the losses, save the samples, evaluate, write a checkpoint), each a method of its own.

In N processes every process runs this same loop on its own batches (its random streams are seeded
with seed + rank), the steps average the gradients over the processes, the logged losses are
averaged over them, and rank 0 alone writes files.
"""

from __future__ import annotations

import hashlib
import json
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from wgan import checkpoint as ckpt
from wgan import distributed, rundir, run_report
from wgan.config import TrainConfig
from wgan.data import to_uint8_images
from wgan.errors import Stopped, TrainingDiverged, UserError, os_reason, remedy, writing
from wgan.grids import save_grid
from wgan.metrics import training_evaluator
from wgan.rundir import NullLog, RunLog, quality_summary
from wgan.training.fast import describe_step, make_step
from wgan.training.plan import RunPlan
from wgan.training.samples import save_points_figure
from wgan.training.state import TrainState, check_finite_parameters, export_generator, grid_columns
from wgan.training.step import STAT_NAMES, generator_iteration


# --train-clock: the clock that training time (--max-train-seconds, --eval-every-seconds, time_s) is read from
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}

def train(plan: RunPlan, *, progress: bool = True, say: Callable[[str], None] = print) -> Path:
    """Train a WGAN as `plan` says (training/plan.py: make_plan; under torchrun, the plan inside the process
    group: in_process_group); returns the run directory. A resumed run's checkpoint is verified before anything
    in the run directory changes. Under torchrun every process calls this; they train together and rank 0
    writes the run directory.
    """
    run = TrainingRun.start(plan, progress=progress, say=say)
    try:
        run.loop()
        return run.finish()
    finally:
        run.release()


def due(step: int, every: int) -> bool:
    """Whether a chore done every `every` steps (0: never) falls due at `step`."""
    return bool(every) and step % every == 0


# ---------------------------------------------------------------------------------------------
# What the loop keeps besides the training state


@dataclass
class Interval:
    """The logging interval under way: its generator steps, the boosted steps' extra critic images,
    and when it began. The losses it sums stay on the device, in the step, until they are read."""

    steps: int = 0
    extra_critic_images: int = 0
    started: float = field(default_factory=time.perf_counter)

    def seconds(self, now: float | None = None) -> float:
        return (time.perf_counter() if now is None else now) - self.started


class StopSignal:
    """SIGINT and SIGTERM ask the loop to stop: one process stops at its next step, N processes at the
    next read of the losses, where they agree (a collective). A second signal stops at once, leaving
    the last checkpoint as it is. The previous handlers come back on exit."""

    def __init__(self, world: int):
        self.world = world
        self.asked: int | None = None  # a signal arrived in this process
        self.signum: int | None = None  # the loop stops

    def __enter__(self) -> "StopSignal":
        self.previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def _on_signal(self, signum, frame) -> None:
        if self.asked is not None:
            raise KeyboardInterrupt
        self.asked = signum
        if self.world == 1:
            self.signum = signum

    def agree(self) -> None:
        if self.world > 1:
            self.signum = distributed.max_over_ranks(self.asked or 0) or None


class Notes:
    """What the user should know, printed at once (rank 0) and written to log.txt once it is open."""

    def __init__(self, main: bool, say: Callable[[str], None] = print):
        self.main, self.print = main, say
        self.log: RunLog | NullLog | None = None
        self.waiting: list[str] = []

    def say(self, msg: str) -> None:
        if self.main:
            self.print(msg)
        if self.log is None:
            self.waiting.append(msg)
        else:
            self.log.line(msg)

    def attach(self, log: RunLog | NullLog) -> None:
        """From now on into `log`, after what was said before it was open."""
        self.log = log
        for msg in self.waiting:
            log.line(msg)
        self.waiting = []


def check_finite_losses(stats: dict[str, float], first_step: int, last_step: int) -> None:
    """Raise TrainingDiverged if a loss summed over steps first_step..last_step is NaN or infinite."""
    bad = [k for k, v in stats.items() if not math.isfinite(v)]
    if bad:
        where = f"at step {last_step}" if first_step == last_step else f"between steps {first_step} and {last_step}"
        raise TrainingDiverged(f"{' and '.join(bad)} became {stats[bad[0]]} {where}")


# ---------------------------------------------------------------------------------------------
# Before the first step


def resume_problem(point: ckpt.ResumePoint, total_steps: int) -> str | None:
    """Why the run cannot go on from `point` (its options the plan has checked against it: make_plan)."""
    if point.step > total_steps:
        return f"{point.checkpoint}: at step {point.step}, past --steps {total_steps}; pass --steps {point.step} or more"
    return None


def check_processes_agree(cfg: TrainConfig, resume: ckpt.ResumePoint | None) -> None:
    """What every machine read must agree before anyone trains or writes (--data may be a local path)."""
    distributed.require_same(None if resume is None else str(resume.checkpoint), "the checkpoint to resume from",
                             "every machine must see the same --runs-dir (shared storage) to resume")
    options = json.dumps({k: v for k, v in cfg.to_dict().items() if k != "data"}, sort_keys=True)
    distributed.require_same(hashlib.sha256(options.encode()).hexdigest()[:12], "the training options (digest)",
                             "start every process with the same options")


def open_run_dir(cfg: TrainConfig, resume: ckpt.ResumePoint | None,
                 dry_run: bool) -> tuple[Path, list[Path], rundir.RunLock | None]:
    """The run directory, locked for this trainer (rank 0) before anything in it is written: the resumed
    one, tidied (stale temporary files removed, checkpoints newer than the one resumed from set aside), or
    a new numbered one (NNNNN-name-dry-run for a dry run). Every process gets its path. Returns it, the
    checkpoints set aside, and the lock."""
    main = distributed.is_main()
    if resume is not None:
        superseded, lock = [], None
        if main:  # only now that the checkpoint has loaded does anything in the run directory change
            lock = rundir.RunLock(resume.run_dir).acquire("resume it")
            try:
                ckpt.remove_stale_temp_files(resume.run_dir / rundir.CHECKPOINTS)
                superseded = ckpt.set_aside_newer(resume.run_dir / rundir.CHECKPOINTS, resume.step)
                rundir.write_config(cfg.to_dict(), resume.run_dir)  # the run length may have changed
                rundir.mark_job(resume.run_dir, distributed.job_id())  # this job's now: its restarts resume it
            except OSError as exc:
                lock.release()
                raise UserError(f"--resume {resume.run_dir}: cannot write in the run directory ({os_reason(exc)}); "
                                "copy the run to a writable folder and resume the copy") from None
        return resume.run_dir, superseded, lock
    run_dir, lock = None, None
    if main:
        name = cfg.preset if cfg.preset != "custom" else f"{cfg.dataset}-{cfg.loss}"
        with writing("--runs-dir", cfg.runs_dir):
            run_dir = rundir.next_run_dir(Path(cfg.runs_dir), name + (rundir.DRY_RUN_SUFFIX if dry_run else ""))
            lock = rundir.RunLock(run_dir).acquire()
            rundir.mark_job(run_dir, distributed.job_id())  # before anything can fail: its restarts look for it
            rundir.write_config(cfg.to_dict(), run_dir)
    return Path(distributed.broadcast_object(None if run_dir is None else str(run_dir))), [], lock


# ---------------------------------------------------------------------------------------------
# The run


class TrainingRun:
    """One training run in one process: its state, step, run directory and log, and the chores of the loop."""

    def __init__(self, plan: RunPlan, state: TrainState, run_dir: Path, *, progress: bool, evaluator,
                 last_good: Path | None, say: Callable[[str], None] = print):
        self.plan, self.cfg, self.state, self.run_dir = plan, plan.cfg, state, run_dir
        self.total_steps, self.progress = plan.total_steps, progress
        self.evaluator = evaluator  # generator -> metrics.jsonl fields, or None
        self.last_good = last_good  # the newest checkpoint known to be intact
        self.main, self.world = plan.rank == 0, plan.world_size
        self.log: RunLog | NullLog = NullLog()
        self.step_fn = None
        self.interval = Interval()
        self.next_evaluation_s = math.inf  # --eval-every-seconds: the training time of the next evaluation
        self.clock = CLOCKS[plan.cfg.train_clock]  # what training time is counted in
        self.started = self.clock()  # training time is counted from here, less evaluations, plus what came before
        self.stopped_by: int | None = None
        self.bar = None
        self.lock: rundir.RunLock | None = None
        self.last_quality: tuple[int, dict] | None = None  # the newest evaluation, said again at the end
        self.say = say  # what the user is told (the Python API's progress=False: nothing)

    @classmethod
    def start(cls, plan: RunPlan, *, progress: bool, say: Callable[[str], None] = print) -> "TrainingRun":
        """Everything before the first step: check, build, open the run directory and its log."""
        cfg, resume, total_steps = plan.cfg, plan.resume, plan.total_steps
        check_processes_agree(cfg, resume)
        problem = None if resume is None else resume_problem(resume, total_steps)
        if problem:
            raise UserError(problem)
        if resume is not None and resume.step == total_steps:  # nothing to train: write nothing either
            raise UserError(f"{resume.run_dir}: already at step {resume.step}, the end of its --steps {total_steps}; "
                            f"to train it longer: wgan train --resume {resume.run_dir} --steps {2 * total_steps}")
        state = TrainState.build(plan)
        notes = Notes(plan.rank == 0, say)
        # The metrics' shared parts (the classifier, the test split) are built before the run directory, so a
        # missing test split or a mismatched classifier leaves no half-made run behind. Their notes are printed
        # at once (training a classifier takes a minute) and logged once log.txt exists.
        evaluator = None
        if cfg.eval_metrics and not plan.dry_run and plan.rank == 0:  # rank 0 alone measures and writes
            evaluator = training_evaluator(cfg, state.data, state.shape, plan.device, note=notes.say)
        if resume is not None:
            state.load_state_dict(resume.state, resume.checkpoint)
            if cfg.max_train_seconds and state.elapsed_s >= cfg.max_train_seconds:
                raise UserError(f"{resume.run_dir}: already trained {state.elapsed_s:.0f} s of its --max-train-seconds "
                                f"{cfg.max_train_seconds:g}; to train it longer, pass a larger --max-train-seconds")
        run_dir, superseded, lock = open_run_dir(cfg, resume, plan.dry_run)
        run = cls(plan, state, run_dir, progress=progress, evaluator=evaluator,
                  last_good=None if resume is None else resume.checkpoint, say=say)
        run.lock = lock
        try:
            run.open_log(resume, superseded, notes)
            if state.step == 0 and cfg.sample_every_steps and run.main:
                run.sample(0)
        except OSError as exc:  # a full disk before the first step: the same one line as during the run
            run.release()
            raise run.write_failed(exc) from None
        except BaseException:
            run.release()
            raise
        return run

    def release(self) -> None:
        """The run directory's lock (the process's end releases it too)."""
        if self.lock is not None:
            self.lock.release()

    def open_log(self, resume: ckpt.ResumePoint | None, superseded: list[Path], notes: Notes) -> None:
        """log.txt's opening lines: what trains where, and everything said so far; then the step."""
        cfg, state, world = self.cfg, self.state, self.world
        if self.main:
            self.log = RunLog(self.run_dir, cfg.tensorboard, resume_step=state.step if resume is not None else None)
        batch = f"batch={cfg.batch_size}" if world == 1 else \
            f"batch={cfg.batch_size} per process x {world} processes = {world * cfg.batch_size} (effective)"
        self.log.line(f"{rundir.RESUMED + ' ' + str(resume.checkpoint) if resume else rundir.STARTED}: "
                      f"preset={cfg.preset} dataset={cfg.dataset} ({len(state.data)} samples from {state.data.source}) "
                      f"model={cfg.model} loss={cfg.loss} device={state.device} "
                      f"precision={state.precision} {batch}")
        if world > 1:
            self.log.line(f"processes: world size {world} on {distributed.node_count()} node(s), "
                          f"{distributed.local_world_size()} per node (torchrun)")
        if distributed.restart_count():
            self.log.line(f"{rundir.RESTARTED} (restart {distributed.restart_count()} of {distributed.max_restarts()}) "
                          + (f"from step {state.step}" if resume is not None else "before its first checkpoint: a new run"))
        saved_world = len(resume.state.get("rng_ranks") or [None]) if resume is not None else world
        if saved_world != world:
            self.log.line(f"the checkpoint was written by {saved_world} process(es), this run has {world}: the "
                          f"effective batch is now {world * cfg.batch_size}, and each process's random draws "
                          f"restart from (seed, rank, step)")
        for data_note in state.data.notes:
            self.log.line(data_note)
            if self.main:
                self.say(data_note)
        notes.attach(self.log)
        for path in superseded:
            self.log.line(f"{path.name}: set aside, newer than the checkpoint this run resumed from")
        for restore_note in state.notes:
            notes.say(restore_note)
        self.step_fn, fast_note = make_step(state, self.plan.step.fast)
        if fast_note:
            notes.say(fast_note)
        self.log.line(f"step: {describe_step(self.step_fn, self.plan.step.why)}")

    # --- the loop ---------------------------------------------------------------------------
    def loop(self) -> None:
        cfg, state = self.cfg, self.state
        with StopSignal(self.world) as stop:
            # Into a log file or a pipe every redraw is another line (tqdm's 0.1 s would add ten a second):
            # once a minute there; log.txt has the losses anyway.
            self.bar = tqdm(total=self.total_steps, initial=state.step, disable=not self.progress or not self.main,
                            unit="it", dynamic_ncols=True, mininterval=0.1 if sys.stderr.isatty() else 60)
            try:
                self.continue_interval()
                done = state.step >= self.total_steps
                while not done and stop.signum is None:
                    # Update the critic `critic_steps` times (more on boosted steps), then the generator once.
                    extra = generator_iteration(self.step_fn, cfg, state.step)
                    state.step += 1
                    self.interval.steps += 1
                    self.interval.extra_critic_images += extra * cfg.batch_size
                    self.bar.update(1)
                    at = state.step
                    last = at == self.total_steps or self.out_of_time(at)
                    checkpoint_due = due(at, cfg.checkpoint_every_steps)
                    # Read the losses back and log them. Checkpoint steps always read them: a resumed run then
                    # starts with empty sums, as this one goes on, and no checkpoint follows an unchecked interval.
                    if due(at, cfg.log_every_steps) or last or checkpoint_due:
                        self.log_losses()
                        stop.agree()
                    # Save the fixed-noise samples.
                    if self.main and cfg.sample_every_steps and (due(at, cfg.sample_every_steps) or last):
                        self.sample(at)
                    # Evaluate the generator.
                    if self.evaluator and (last or due(at, cfg.eval_every_steps) or self.evaluation_time()):
                        self.evaluate(at)
                    # Write a checkpoint.
                    if checkpoint_due or last:
                        self.checkpoint()
                    done = last
                if stop.signum is not None:
                    self.stop_on_signal(stop.signum)
                state.elapsed_s = self.training_seconds()
            except TrainingDiverged as exc:
                raise self.diverged(exc) from None
            except OSError as exc:  # a full disk or a lost mount on a rented machine: say so, and how to go on
                raise self.write_failed(exc) from None
            finally:
                self.bar.close()

    def continue_interval(self) -> None:
        """Start the clocks; a resumed run continues its training time and the interval its checkpoint cut."""
        now = time.perf_counter()
        self.started = self.clock() - self.state.elapsed_s
        every = self.cfg.eval_every_seconds
        self.next_evaluation_s = (self.state.elapsed_s // every + 1) * every if every else math.inf
        self.interval = Interval(started=now)
        pending = self.state.pending
        if pending is not None:
            self.step_fn.sums.copy_(pending["sums"])
            self.interval = Interval(steps=pending["steps"], started=now - pending["seconds"])

    def training_seconds(self, now: float | None = None) -> float:
        """Seconds of training so far on the run's --train-clock (`now`: a reading of that clock)."""
        return (self.clock() if now is None else now) - self.started

    def out_of_time(self, step: int) -> bool:
        """--max-train-seconds reached: looked at where the losses are read, where N processes agree anyway."""
        limit = self.cfg.max_train_seconds
        if not limit or not due(step, self.cfg.log_every_steps):
            return False
        return bool(distributed.max_over_ranks(int(self.training_seconds() >= limit)))

    def evaluation_time(self) -> bool:
        """--eval-every-seconds: whether another such stretch of training time has passed (rank 0 evaluates)."""
        every, limit = self.cfg.eval_every_seconds, self.cfg.max_train_seconds
        if not every or self.training_seconds() < self.next_evaluation_s:
            return False
        if limit and self.training_seconds() >= limit:
            return False  # the run ends at the next loss read, whose step evaluates as the last: not twice
        self.next_evaluation_s = (self.training_seconds() // every + 1) * every
        return True

    # --- the chores -------------------------------------------------------------------------
    def log_losses(self) -> None:
        """The one host sync per interval: read the summed losses, check them, log them."""
        cfg, interval, step = self.cfg, self.interval, self.state.step
        stats = self.step_fn.read_and_reset(interval.steps)
        now = time.perf_counter()
        check_finite_losses(stats, step - interval.steps + 1, step)
        # a clipping run has no penalty: leave it out rather than log a zero that reads as a measurement
        logged = {k: round(v, 6) for k, v in stats.items() if k != "penalty" or cfg.uses_penalty}
        images = (interval.steps * cfg.critic_steps * cfg.batch_size + interval.extra_critic_images) * self.world
        record = {"step": step, "time_s": round(self.training_seconds(), 3), **logged,
                  "critic_images_per_s": round(images / interval.seconds(now), 1)}
        self.log.record(record)
        self.decay_by_time()
        self.size_bar_by_time(interval.steps / max(interval.seconds(now), 1e-9))
        self.bar.set_postfix(W=f"{stats['wasserstein']:.3f}", loss_c=f"{stats['loss_critic']:.3f}",
                             loss_g=f"{stats['loss_generator']:.3f}", img_s=f"{record['critic_images_per_s']:.0f}")
        self.interval = Interval(started=now)

    def size_bar_by_time(self, steps_per_s: float) -> None:
        """A run that --max-train-seconds ends first: the bar's end (and so its estimate of the time left) is the
        step the budget will reach at the measured rate, not --steps."""
        limit = self.cfg.max_train_seconds
        if limit and self.cfg.train_clock == "wall":
            reachable = self.state.step + max(0.0, limit - self.training_seconds()) * steps_per_s
            self.bar.total = max(self.state.step, min(self.total_steps, int(reachable)))

    def decay_by_time(self) -> None:
        """A linear decay in a run that --max-train-seconds may end first follows the time spent too."""
        schedule = self.step_fn.schedule
        if schedule is not None and self.cfg.max_train_seconds:
            # the processes' clocks differ: all take the furthest one's, in millionths, or their rates would differ
            millionths = distributed.max_over_ranks(int(1e6 * self.training_seconds() / self.cfg.max_train_seconds))
            schedule.set_time_fraction(millionths / 1e6)

    def sample(self, at: int) -> None:
        """The fixed-noise grid (images), or the generated and real points over the critic's contours."""
        path = rundir.sample_path(self.run_dir, at)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = self.state
        fake = state.generate(state.fixed_z, state.fixed_labels)
        if state.data.is_points:
            save_points_figure(path, state, fake)
        else:
            save_grid(path, to_uint8_images(fake), nrow=grid_columns(state.shape, fake.shape[0]))
        self.log.image(at, path)

    def evaluate(self, at: int) -> None:
        """The metrics of the sampled generator and, beside them, of the raw one where they differ."""
        t_eval, t_eval_clock = time.perf_counter(), self.clock()
        record = self.evaluator(self.state.sampled_generator())
        if self.state.ema is not None:  # what the average buys, in every run: fcd beside fcd_raw
            raw = rundir.raw_generator_fields(self.evaluator(self.state.generator))
            raw_samples, raw_seconds = raw.pop("samples", {}), raw.pop("eval_s", 0.0)
            record.update(raw)
            record["eval_s"] = round(record["eval_s"] + raw_seconds, 3)
            record["samples"] = {**record.get("samples", {}), **raw_samples}
        self.log.record({"step": at, "time_s": round(self.training_seconds(t_eval_clock), 3), **record})
        self.last_quality = (at, record)
        # evaluating is neither training time nor training throughput
        self.started += self.clock() - t_eval_clock
        self.interval.started += time.perf_counter() - t_eval

    def checkpoint(self) -> None:
        """Everything that shapes the rest of the run, with the interval under way; rank 0 writes it."""
        state = self.state
        check_finite_parameters(state)
        if not distributed.parameters_identical(state.generator, state.critic):
            raise RuntimeError(f"the processes' parameters differ at step {state.step}: gradients were not "
                               "averaged alike on every process")
        state.elapsed_s = self.training_seconds()
        state.pending = {"steps": self.interval.steps, "sums": self.step_fn.sums.detach().cpu().clone(),
                         "seconds": self.interval.seconds()}
        path = self.run_dir / rundir.CHECKPOINTS / rundir.checkpoint_name(state.step)
        contents = state.state_dict()  # on every process: it gathers their random states
        if self.main:  # rank 0's batch-norm running statistics are the ones saved (each process keeps its own)
            ckpt.save_checkpoint(path, contents)
            ckpt.prune_checkpoints(self.run_dir / rundir.CHECKPOINTS, self.cfg.keep_checkpoints)
        self.last_good = path

    # --- the endings ------------------------------------------------------------------------
    def stop_on_signal(self, signum: int) -> None:
        step, steps = self.state.step, self.interval.steps
        if steps:  # checked, not logged: the checkpoint carries them to the next record
            pending = dict(zip(STAT_NAMES, (self.step_fn.sums / steps).tolist()))
            check_finite_losses(pending, step - steps + 1, step)
        self.checkpoint()
        self.stopped_by = signum
        self.log.line(f"{rundir.STOPPED_BY_SIGNAL} {signum} at step {step}; checkpoint written")
        if self.main:  # above the progress bar, on a line of its own
            self.bar.write(f"stopped at step {step}; checkpoint written. Resume: wgan train --resume {self.run_dir}",
                           file=sys.stdout)

    def kept_checkpoint_sentence(self) -> str:
        """Which checkpoint survives a run that stops on an error, as the sentence its message ends with."""
        return (f"the last good checkpoint {self.last_good} is intact" if self.last_good is not None
                else "no checkpoint had been written yet")

    def diverged(self, exc: TrainingDiverged) -> TrainingDiverged:
        message = f"{exc}; stopped without writing a checkpoint: {self.kept_checkpoint_sentence()}"
        self.log.line(f"{rundir.DIVERGED} {message}")
        self.log.close()
        return TrainingDiverged(message)

    def write_failed(self, exc: OSError) -> UserError:
        where = f" {exc.filename}" if exc.filename else ""
        resume = f"; {remedy(exc)} and resume: wgan train --resume {self.run_dir}" if self.last_good is not None else ""
        message = (f"could not write{where} at step {self.state.step} ({os_reason(exc)}); "
                   f"{self.kept_checkpoint_sentence()}{resume}")
        try:
            self.log.line(f"stopped: {message}")  # "stopped: could not write": rundir.WRITE_FAILED
            self.log.close()
        except OSError:
            pass  # the log is on the same full disk
        return UserError(message)

    def finish(self) -> Path:
        """The trained generator on its own, the last log line and the report (rank 0). Raises Stopped, after
        all that, when a signal stopped the run."""
        if not self.main:
            if self.stopped_by is not None:
                raise Stopped(self.stopped_by, self.run_dir)
            return self.run_dir
        state, run_dir = self.state, self.run_dir
        try:
            export_generator(state, run_dir / rundir.GENERATOR)
        except OSError as exc:
            raise UserError(f"could not write {run_dir / rundir.GENERATOR} ({os_reason(exc)}); "
                            f"the checkpoint {self.last_good} is intact: {remedy(exc)}, then "
                            f"wgan export --run {run_dir} --out {run_dir / rundir.GENERATOR}") from None
        agreed = f"; parameters identical on all {self.world} processes" if self.world > 1 else ""
        try:
            self.log.line(f"{'stopped at step' if self.stopped_by else rundir.FINISHED} {state.step} "
                          f"({state.elapsed_s:.1f} s of training){agreed}")
            if self.last_quality is not None:  # the run's last word is how good it got
                at, record = self.last_quality
                summary = f"quality at step {at}: {quality_summary(record)}"
                self.log.line(summary)
                self.say(summary)
            self.log.close()
            run_report.build_report(run_dir)
        except OSError as exc:  # the trained generator is written: say what was not, and how to make it
            where = f" {exc.filename}" if exc.filename else ""
            raise UserError(f"could not write{where} after step {state.step} ({os_reason(exc)}); {run_dir / rundir.GENERATOR}"
                            f" and the checkpoint are written: {remedy(exc)}, then wgan report --run {run_dir}") from None
        except Exception as exc:  # a plot must never cost the user a trained model
            self.say(f"report: could not build the report ({exc}); run `wgan report --run {run_dir}`")
        if self.stopped_by is not None:
            raise Stopped(self.stopped_by, run_dir)
        return run_dir
