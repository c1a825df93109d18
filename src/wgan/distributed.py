"""Several processes (torchrun): the process group, rank helpers, and the averaging of gradients and
logged losses.

One code path for 1 and N processes. torchrun sets RANK, WORLD_SIZE and LOCAL_RANK in each process's
environment; with WORLD_SIZE > 1, `process_group` joins the job (NCCL on GPUs, one GPU per process:
cuda:LOCAL_RANK; gloo on CPUs). With one process there is no process group and every helper here
is a no-op or returns its input unchanged, so a single-process run is exactly what it was without them.

Why not DistributedDataParallel: its wrapper does not support the gradient penalty's double backward
(`autograd.grad(create_graph=True)` inside the forward it hooks). The steps instead call
`average_gradients` after each backward and before each optimiser step: one all-reduce of all the
gradients flattened into one buffer, as NVIDIA's StyleGAN2-ADA does. It only launches kernels and a
collective, so the CUDA-graph fast path can capture it (NCCL collectives are capturable).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from wgan.errors import AgreedError, Stopped, UserError


def launched_world_size() -> int:
    """How many processes the launcher started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched_rank() -> int:
    """This process's rank as the launcher numbered it (0 without torchrun), group or not."""
    return int(os.environ.get("RANK", "0"))


def restart_count() -> int:
    """How often torchrun has restarted the job's processes (--max-restarts); 0 in its first attempt."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def job_id() -> str | None:
    """What tells this torchrun job from every other live one, the same in all its attempts (None without
    torchrun): torchrun's run id (--rdzv-id; a fresh UUID for a one-machine job without --master-port), and
    for a static rendezvous, whose run id is "none" unless given, the address of its store, which no other
    live job can hold. A restarted attempt looks for the run directory marked with it."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if run_id is None:
        return None
    if run_id and run_id != "none":
        return run_id
    return f"none@{os.environ.get('MASTER_ADDR', '')}:{os.environ.get('MASTER_PORT', '')}"


def max_restarts() -> int:
    """torchrun's --max-restarts (0 without torchrun)."""
    return int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0"))


def node_count() -> int:
    """How many machines (torchrun agents) the job has (1 without torchrun)."""
    return int(os.environ.get("GROUP_WORLD_SIZE", "1"))


def local_world_size() -> int:
    """How many processes torchrun started on this machine (--nproc-per-node)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0, the one process that writes files and prints."""
    return rank() == 0


@contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """Join the torchrun job around a training run, when there is one (WORLD_SIZE > 1) and no group
    exists yet; leave the group on the way out. `device` is the resolved --device: cuda means this
    process's own GPU, cuda:LOCAL_RANK."""
    if launched_world_size() <= 1 or active():
        yield
        return
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if device.index is not None:
            raise UserError(f"--device {device}: with torchrun every process uses its own GPU (cuda:LOCAL_RANK); "
                            "pass --device cuda or auto")
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"process LOCAL_RANK {local_rank}: this machine shows {torch.cuda.device_count()} CUDA "
                            f"device(s); start at most that many processes per machine (--nproc-per-node)")
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank), **_attempt_store())
    else:
        dist.init_process_group("gloo", **_attempt_store())
    try:
        yield
    except (Stopped, AgreedError):
        # Raised alike on every process: an agreed stop (rank 0 then writes the generator and the report) or an
        # agreed refusal. Each exits non-zero, and torchrun ends the others as soon as one has: all wait here for
        # each other, and leave the group together. A gloo group left standing at exit while a peer is gone
        # aborts the process (SIGABRT) instead of its exit code.
        dist.barrier()
        dist.destroy_process_group()
        raise
    # Not on an error: tearing down NCCL while a peer still waits in a collective can block, and the
    # process is about to exit anyway (torchrun then ends the others). On the way out every process
    # waits for the others first (rank 0 still writes the generator and the report): a gloo group torn
    # down while its peer is busy has now and then aborted the leaving process (std::terminate).
    dist.barrier()
    dist.destroy_process_group()


def _attempt_store() -> dict[str, Any]:
    """torchrun's store (MASTER_ADDR:MASTER_PORT), its keys under a prefix of their own in each attempt.

    torchrun's static rendezvous keeps one store for all the attempts of a job, so after a restart
    the first attempt's keys are still there: gloo's peer addresses among them. A restarted process
    that reads them before its peer has written its new one connects to a process that is gone
    ("connectFullMesh ... Connection refused") and the restarted group fails to form. The same holds
    for a second group in one attempt (train called twice in a process): each gets a number too."""
    global _groups_made
    store, rank, world = next(dist.rendezvous("env://"))
    prefix = f"wgan/attempt-{restart_count()}/group-{_groups_made}"
    _groups_made += 1
    return {"store": dist.PrefixStore(prefix, store), "rank": rank, "world_size": world}


_groups_made = 0  # by this process: every process makes the same groups in the same order


def local_device(device: torch.device) -> torch.device:
    """`cuda` in a process group is this process's GPU (set by `process_group`)."""
    if active() and device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def memory_bytes(device: torch.device) -> int:
    """The memory of `device`: the GPU's, or this machine's RAM for the CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")


def resolve_device(name, option: str = "--device") -> torch.device:
    """--device as a torch device: auto is this process's GPU where there is one, else the CPU. A name torch
    does not know, a type that is no name, or a GPU this machine lacks is one UserError naming `option`."""
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        kind = type(name).__name__
        raise UserError(f"{option} {name!r}: a device name (auto, cpu, cuda or cuda:N), not "
                        f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}")
    if DEVICE_NAME.fullmatch(name) is None:
        raise UserError(f"{option} {name}: use auto, cpu, cuda or cuda:N")
    if name == "auto":
        return local_device(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{option} {name}: CUDA is not available on this machine; use {option} cpu")
    device = torch.device(name)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"{option} {name}: this machine shows {torch.cuda.device_count()} CUDA device(s), "
                        f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return local_device(device)


def _collective_device() -> torch.device:
    # NCCL moves only CUDA tensors; gloo works on CPU tensors.
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# Collectives used by the step (no host sync)


def average_gradients(optimizer: torch.optim.Optimizer) -> None:
    """Replace the gradients of the optimiser's parameters by their mean over all processes.

    Every process holds the gradient of its own batch's mean loss; their mean is the gradient of the
    mean loss over all N batches together, which is what one process with an N times larger batch
    would compute (batch norm aside: its statistics stay per process)."""
    if not active():
        return
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return
    flat = _flatten_dense_tensors(grads)  # one collective for the whole model, not one per tensor
    dist.all_reduce(flat)
    flat.mul_(1.0 / dist.get_world_size())  # gloo has no AVG reduction
    torch._foreach_copy_(grads, _unflatten_dense_tensors(flat, grads))


# ---------------------------------------------------------------------------------------------
# Collectives used by the loop, at points that read values back anyway


def average_(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of `tensor` over all processes, in place; returns it."""
    if active():
        dist.all_reduce(tensor)
        tensor.div_(dist.get_world_size())
    return tensor


def max_over_ranks(value: int) -> int:
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.int64, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` (picklable), on every process."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every process's `obj`, in rank order, on every process."""
    if not active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def require_same(value: Any, what: str, hint: str) -> None:
    """Raise UserError on every process if the processes hold different `value`s."""
    values = all_gather_object(value)
    if any(v != values[0] for v in values):
        shown = "; ".join(f"rank {r}: {v}" for r, v in enumerate(values[:4]))
        raise AgreedError(f"the processes disagree on {what} ({shown}); {hint}")


@torch.no_grad()
def broadcast_modules(*modules: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every process, so all start from the same models."""
    if not active():
        return
    for module in modules:
        for tensor in module.state_dict().values():  # detached views of the module's own storage
            dist.broadcast(tensor, src=0)


@torch.no_grad()
def parameters_identical(*modules: torch.nn.Module) -> bool:
    """Whether every process holds bitwise the same parameters as rank 0 (the same answer on all)."""
    if not active():
        return True
    params = [p.detach() for m in modules for p in m.parameters()]
    flat = _flatten_dense_tensors(params)
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    return max_over_ranks(int(not torch.equal(flat, reference))) == 0
