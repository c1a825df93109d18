"""Training: a run's plan, made once (plan.py), the paper's step (step.py), the GPU fast path (fast.py), the
state a checkpoint holds (state.py), and the loop (loop.py)."""

from wgan.training.loop import train

__all__ = ["train"]
