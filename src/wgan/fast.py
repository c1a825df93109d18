"""The GPU fast path: the whole generator iteration captured in one CUDA graph and replayed.

A WGAN step is dozens of small kernels (5 critic updates with a double backward each, then a
generator update); at the paper's batch of 64 the GPU spends most of its time waiting for the host
to launch them. A CUDA graph records those launches once and replays them with one call. What makes
the step capturable: the data are on the GPU and batches are index draws; random numbers come from
the CUDA generator (graph-safe); the optimisers are built with capturable=True (their step counts
live on the device); gradients are zeroed in place, never set to None; and losses are summed into a
device buffer that the loop reads every `log_every_steps`, so nothing in the step syncs the host.
"""

from __future__ import annotations

import torch

WARMUP_STEPS = 3  # eager steps before capture: they create optimiser state and let cuDNN pick kernels


def graph_unsupported_reason(trainer) -> str | None:
    """Why the step cannot be captured, or None if it can."""
    if trainer.device.type != "cuda":
        return "CUDA graphs need a CUDA device"
    if trainer.data.x.device.type != "cuda":
        return "the dataset is not resident on the GPU"
    if not all(g.get("capturable", False) for opt in (trainer.opt_g, trainer.opt_c) for g in opt.param_groups):
        return "the optimisers were not built capturable"
    return None


class CudaGraphStep:
    """Wraps a WganStep: a few eager warm-up steps, then capture once and replay every call after."""

    def __init__(self, step, warmup_steps: int = WARMUP_STEPS):
        self.step = step
        self.warmup_steps = warmup_steps
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed: str | None = None
        self.side_stream = torch.cuda.Stream()

    @property
    def sums(self) -> torch.Tensor:
        return self.step.sums

    def __call__(self) -> None:
        self.calls += 1
        if self.graph is not None:
            self.graph.replay()
            return
        if self.failed is not None or self.calls <= self.warmup_steps:
            # Warm-up on a side stream, as capture requires: the allocator then has the memory ready.
            self.side_stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side_stream):
                self.step()
            torch.cuda.current_stream().wait_stream(self.side_stream)
            return
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.step()
        except Exception as exc:  # an op that cannot be captured: fall back, say so, stay correct
            self.failed = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            print(f"fast path: CUDA graph capture failed ({self.failed}); continuing with the eager step")
            torch.cuda.synchronize()
            self.step()
            return
        self.graph = graph
        graph.replay()  # capture records but does not run: this replay is this call's step

    def read_and_reset(self, count: int) -> dict[str, float]:
        return self.step.read_and_reset(count)
