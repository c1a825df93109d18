"""The learning rates' schedule: constant (the papers' image models) or decayed linearly to 0 over the
run's generator steps, as the WGAN-GP paper's CIFAR-10 code does for both optimisers
(lr_k = lr_0 * max(0, 1 - k / steps) during generator iteration k, its critic updates included).

A run whose length is also set by time (--max-train-seconds) decays over whichever end comes first: the
loop tells the schedule the fraction of its time spent, at every loss read, and the rates follow
lr_0 * max(0, 1 - max(k / steps, seconds / max_train_seconds)).

Eager steps set each param group's float learning rate from the host's step count. In the CUDA-graph
fast path the learning rates are device tensors, updated from a device step counter inside the
graph: a float there would be baked into the captured kernels, and a host counter would need a sync.
"""

from __future__ import annotations

import torch



def lr_at(lr0: float, step: int, total_steps: int) -> float:
    """The linearly decayed learning rate of generator iteration `step` (counted from 0)."""
    return lr0 * max(0.0, 1.0 - step / total_steps)


class LinearDecay:
    def __init__(self, optimizers: list[tuple[torch.optim.Optimizer, float]], total_steps: int, start_step: int,
                 on_device: bool):
        """`optimizers`: (optimiser, its initial learning rate) pairs; `start_step`: the next iteration."""
        self.total_steps = total_steps
        self.groups = [(group, lr0) for opt, lr0 in optimizers for group in opt.param_groups]
        self.on_device = on_device
        if on_device:
            device = self.groups[0][0]["params"][0].device
            for group, lr0 in self.groups:
                group["lr"] = torch.tensor(lr0, dtype=torch.float32, device=device)
            self.step = torch.tensor(float(start_step), dtype=torch.float64, device=device)
            # the time spent, as a step count: a device tensor the graph reads, set between replays
            self.time_as_steps = torch.zeros((), dtype=torch.float64, device=device)
        else:
            self.step = start_step
            self.time_as_steps = 0.0
        self._apply()

    def set_time_fraction(self, fraction: float) -> None:
        """The fraction of --max-train-seconds spent so far: the rates decay as if that fraction of the
        steps had passed, where it is ahead of the step count."""
        as_steps = min(max(fraction, 0.0), 1.0) * self.total_steps
        if self.on_device:
            self.time_as_steps.fill_(as_steps)
        else:
            self.time_as_steps = as_steps
        self._apply()

    def _apply(self) -> None:
        if self.on_device:
            factor = (1.0 - torch.maximum(self.step, self.time_as_steps) / self.total_steps).clamp_min(0.0).float()
            for group, lr0 in self.groups:
                group["lr"].copy_(lr0 * factor)
        else:
            for group, lr0 in self.groups:
                group["lr"] = lr_at(lr0, max(self.step, self.time_as_steps), self.total_steps)

    def advance(self) -> None:
        """A generator iteration is done: the next one's learning rates."""
        self.step += 1
        self._apply()
