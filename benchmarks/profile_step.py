"""Where one fused step spends its time: the costliest ops with their shapes, and how many layout
copies it makes.

python benchmarks/profile_step.py --preset fashion-gp --batch 64 --data data/fashion-mnist          # CUDA
python benchmarks/profile_step.py --preset celeba-clip --batch 32 --device cpu --channels-last      # CPU
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from wgan.bench import bench_data
from wgan.config import preset_config, validate
from wgan.training.fast import FusedWganStep, use_channels_last
from wgan.training.state import TrainState, set_precision

COPY_OPS = ("aten::copy_", "aten::clone", "aten::contiguous")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="fashion-gp")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--data", default=None)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", default="tf32", choices=("fp32", "tf32", "bf16"))
    ap.add_argument("--channels-last", action="store_true", help="as the CUDA fast path does")
    ap.add_argument("--steps", type=int, default=3, help="profiled steps (after 2 unprofiled)")
    args = ap.parse_args()

    cfg = validate(preset_config(args.preset, batch_size=args.batch, data=args.data, device=args.device,
                                 precision=args.precision))
    device = torch.device(args.device)
    data, note = bench_data(cfg, device)
    print("data:", note)
    state = TrainState.build(cfg, fast=device.type == "cuda", data=data)
    set_precision(cfg.precision, False)
    if args.channels_last:
        use_channels_last(state)
    step = FusedWganStep(cfg, state.generator, state.critic, state.opt_g, state.opt_c, state.data, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(2):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    print(f"unprofiled: {(time.perf_counter() - start) / args.steps * 1e3:.1f} ms per generator iteration")

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        for _ in range(args.steps):
            step()
        sync()
    events = prof.key_averages()
    copies = sum(e.count for e in events if e.key in COPY_OPS) / args.steps
    print(f"copy ops ({', '.join(COPY_OPS)}) per generator iteration: {copies:.0f}")
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages(group_by_input_shape=True).table(sort_by=sort, row_limit=25, max_name_column_width=40,
                                                              max_shapes_column_width=110))


if __name__ == "__main__":
    main()
