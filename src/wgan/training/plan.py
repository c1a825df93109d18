"""A run's plan: everything about a training run that the options and the machine settle before any data is
read, decided once, where the run starts (`wgan train`, the Python API, `wgan bench`, `wgan claims`).

`make_plan` validates the config, fills in the dataset's image size and channels and stores the paths whole,
resolves --device and --precision on this machine, and chooses which step runs each generator iteration
(`choose_step`, the one rule for it); the loop, the training state and the step take the plan as it is and
decide none of it again. What only the data can tell (a dataset batched from host memory, one not resident
on the GPU) is settled where the step is made (training/fast.py: make_step).
"""

from __future__ import annotations

import dataclasses
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch

from wgan import checkpoint, distributed
from wgan.checkpoint import ResumePoint
from wgan.config import TrainConfig, resolve_sizes, validate
from wgan.errors import UserError
from wgan.training.precision import Precision, resolve_precision

STEP_KINDS = ("plain", "fused", "graph")  # the paper's step; fewer, larger kernels; that replayed from a CUDA graph

# Why a run trains with the plain step although --fast is on by default, in the order log.txt names the first that
# holds. On a CPU the plain step is the fast one (the fused step pays off only where kernel launches cost).
PLAIN_STEP_REASONS = (
    (lambda cfg, device, dry_run: device.type != "cuda", "the fast path is for CUDA"),
    (lambda cfg, device, dry_run: not cfg.fast, "--no-fast"),
    (lambda cfg, device, dry_run: dry_run, "a dry run"),
    # SyncBatchNorm's collectives and host-side checks are not captured in the fast path's CUDA graph
    (lambda cfg, device, dry_run: cfg.sync_batch_norm, "--sync-batch-norm's collectives are not captured"),
)


@dataclass(frozen=True)
class StepChoice:
    """Which step runs each generator iteration and, where it is not the CUDA graph, why."""

    kind: str  # one of STEP_KINDS
    why: str = ""  # for log.txt: why the plain step, or why no graph ("" where nothing held the step back)

    @property
    def fast(self) -> bool:
        """The fast path is asked for: the graph where the data allow it, else the fused step."""
        return self.kind != "plain"


def graph_device_reason(device: torch.device) -> str | None:
    """Why no CUDA graph can run on `device`, or None if one can."""
    return None if device.type == "cuda" else "CUDA graphs need a CUDA device"


def choose_step(cfg: TrainConfig, device: torch.device, *, dry_run: bool = False,
                fast: bool | None = None) -> StepChoice:
    """The step of a run of `cfg` on `device`. `fast`: the plain step (False) or the fastest one the device
    runs (True) whatever the options say, as `wgan bench` times them beside each other; None: the options'."""
    if fast is None:
        why = next((why for holds, why in PLAIN_STEP_REASONS if holds(cfg, device, dry_run)), None)
        if why is not None:
            return StepChoice("plain", why)
    elif not fast:
        return StepChoice("plain", "the plain step asked for")
    no_graph = graph_device_reason(device)
    return StepChoice("fused", no_graph) if no_graph else StepChoice("graph")


@dataclass(frozen=True)
class RunPlan:
    """What a training run is, settled before it starts: the validated config (sizes filled in, paths whole),
    the device, what the steps compute in and which step runs (each with why), the process group as known
    at launch (torchrun's WORLD_SIZE and RANK), and the checkpoint it resumes from."""

    cfg: TrainConfig
    device: torch.device
    precision: Precision
    step: StepChoice
    world_size: int = 1
    rank: int = 0
    resume: ResumePoint | None = None
    dry_run: bool = False

    @property
    def total_steps(self) -> int:
        """The step the run ends at: a dry run trains 2."""
        return 2 if self.dry_run else self.cfg.steps

    def variant(self, *, fast: bool, precision: str | None = None) -> "RunPlan":
        """This run with the plain or the fastest step, and --precision `precision`, whatever the options say:
        what `wgan bench` times beside each other (bf16 even where it is emulated). The same rules as make_plan."""
        cfg = dataclasses.replace(self.cfg, fast=fast, precision=precision or self.cfg.precision)
        precision_now = resolve_precision(cfg.precision, self.device, emulated_ok=True)
        return dataclasses.replace(self, cfg=cfg, precision=precision_now,
                                   step=choose_step(cfg, self.device, dry_run=self.dry_run, fast=fast))


@contextmanager
def in_process_group(plan: RunPlan) -> Iterator[RunPlan]:
    """The torchrun job joined around a run (distributed.process_group), and the plan inside it: `cuda` is this
    process's own GPU, and the group's shape is its own."""
    with distributed.process_group(plan.device):
        yield dataclasses.replace(plan, device=distributed.local_device(plan.device),
                                  world_size=distributed.world_size(), rank=distributed.rank())


def absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """--data and --inception-weights stored whole (after validate has named them as given), so that the run
    resumes and evaluates from any folder."""
    whole = {name: os.path.abspath(os.path.expanduser(value)) for name in ("data", "inception_weights")
             if (value := getattr(cfg, name))}
    return dataclasses.replace(cfg, **whole)


def make_plan(cfg: TrainConfig, *, resume: ResumePoint | None = None, dry_run: bool = False,
              fast: bool | None = None, emulated_bf16: bool = False) -> RunPlan:
    """The plan of a run of `cfg`: the one place its options are checked (a resumed run's against its checkpoint's
    too) and its device, precision and step chosen. `fast`: see choose_step; `emulated_bf16`: bf16 where this CPU
    only emulates it (`wgan bench`)."""
    cfg = absolute_paths(resolve_sizes(validate(cfg)))
    if resume is not None:  # only the resumable options may differ from the checkpoint's (launch names the option)
        problem = checkpoint.config_change_problem(resume, cfg.to_dict())
        if problem:
            raise UserError(problem)
    device = distributed.resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device, emulated_ok=emulated_bf16)  # refused before any data is read
    return RunPlan(cfg, device, precision, choose_step(cfg, device, dry_run=dry_run, fast=fast),
                   world_size=distributed.launched_world_size(), rank=distributed.launched_rank(), resume=resume,
                   dry_run=dry_run)
