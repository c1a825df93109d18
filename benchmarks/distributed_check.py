"""GPU check of the several-process code path on a machine with one GPU.

Two NCCL processes need two GPUs; on one, a world-size-1 NCCL process group still runs every
collective the N-process path runs (the gradient all-reduce inside the step, the averaged losses,
the broadcasts), so this checks that the fast step's CUDA graph captures NCCL's all-reduce, that the
trained parameters match those of the run without a group, and what the all-reduce costs per step.

    python benchmarks/distributed_check.py [--preset fashion-gp] [--batch 64] [--steps 200]
"""

from __future__ import annotations

import argparse
import socket
import time

import torch
import torch.distributed as dist

from wgan import distributed
from wgan.config import preset_config
from wgan.data import Data
from wgan.training.fast import make_step
from wgan.training.state import TrainState


def synthetic_data(cfg) -> Data:
    gen = torch.Generator().manual_seed(0)
    channels, size = max(cfg.channels, 1), cfg.image_size
    x = torch.randint(0, 256, (4096, channels, size, size), dtype=torch.uint8, generator=gen)
    return Data("synthetic", x, torch.randint(0, 10, (4096,), generator=gen), num_classes=10)


def run(cfg, fast: bool, steps: int) -> tuple[float, dict, str]:
    """Generator iterations per second over `steps` after warm-up, the parameters and logged losses
    after the 5 warm-up steps (the fast path's capture among them), the step's kind."""
    state = TrainState.build(cfg, fast=fast, data=synthetic_data(cfg))
    step, _ = make_step(state, fast)
    for _ in range(5):
        step()
    params = {f"{m}.{k}": v.detach().clone() for m in ("generator", "critic")
              for k, v in getattr(state, m).state_dict().items()}
    params["_losses"] = torch.tensor(list(step.read_and_reset(5).values()))
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    its = steps / (time.perf_counter() - start)
    kind = type(step).__name__
    if kind == "CudaGraphStep":
        kind += " (captured)" if step.graph is not None else f" (not captured: {step.failed})"
    return its, params, kind


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="fashion-gp")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    cfg = preset_config(args.preset, batch_size=args.batch, device="cuda", tensorboard=False)
    print(f"{torch.cuda.get_device_name()} torch {torch.__version__} NCCL {torch.cuda.nccl.version()}")
    results = {}
    for fast in (False, True):
        results[("alone", fast)] = run(cfg, fast, args.steps)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1,
                                device_id=torch.device("cuda", 0))
        assert distributed.active()
        results[("nccl group", fast)] = run(cfg, fast, args.steps)
        dist.destroy_process_group()
    for fast in (False, True):
        (its_a, pa, kind_a), (its_g, pg, kind_g) = results[("alone", fast)], results[("nccl group", fast)]
        worst = max((pa[k].float() - pg[k].float()).abs().max().item() for k in pa)
        print(f"{'fast' if fast else 'eager'}: alone {its_a:.1f} it/s [{kind_a}]; with the NCCL group "
              f"{its_g:.1f} it/s [{kind_g}] ({its_g / its_a:.2f}x); largest parameter/loss difference after 5 steps {worst:.2e}")


if __name__ == "__main__":
    main()
