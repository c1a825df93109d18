"""Variants of the fast step, timed side by side on a CUDA machine (used to choose the defaults).

python benchmarks/explore_fast.py --preset fashion-gp --batch 64 --data DIR
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from wgan.bench import bench_data, time_step
from wgan.config import preset_config, validate
from wgan.training.fast import CudaGraphStep, FusedWganStep
from wgan.training.state import TrainState, set_precision
from wgan.training.step import WganStep


def build(cfg, data, *, fused_step: bool, adam_fused: bool, channels_last: bool, graph: bool, benchmark=True,
          cl_data=False, unfold=True, compile_models=False):
    if cl_data and data.x.dim() == 4:
        data = dataclasses.replace(data, x=data.x.contiguous(memory_format=torch.channels_last))
    state = TrainState.build(cfg, fast=True, data=data)
    set_precision(cfg.precision, False)
    torch.backends.cudnn.benchmark = benchmark
    if channels_last:
        state.generator.to(memory_format=torch.channels_last)
        state.critic.to(memory_format=torch.channels_last)
    if adam_fused and isinstance(state.opt_c, torch.optim.Adam):
        cls = type(state.opt_c)
        kw = lambda o: {k: v for k, v in o.defaults.items() if k not in ("foreach", "fused", "params")}
        state.opt_c = cls(state.critic.parameters(), **{**kw(state.opt_c), "fused": True, "capturable": True})
        state.opt_g = cls(state.generator.parameters(), **{**kw(state.opt_g), "fused": True, "capturable": True})
    if compile_models:
        state.generator.compile()
        state.critic.compile()
    args = (cfg, state.generator, state.critic, state.opt_g, state.opt_c, state.data, state.device)
    step = FusedWganStep(*args, unfold_first_conv=unfold) if fused_step else WganStep(*args)
    return CudaGraphStep(step) if graph else step


def kernel_profile(step, n=5):
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(n):
            step()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    kernels = sum(e.count for e in events) / n
    gpu_us = sum(e.self_device_time_total for e in events) / n
    top = sorted(events, key=lambda e: -e.self_device_time_total)[:12]
    return kernels, gpu_us, top


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="fashion-gp")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--data", default=None)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    from wgan.data import DATASETS
    over = {} if preset_config(args.preset).dataset in DATASETS else dict(dataset="fashion-mnist")  # same shapes after resizing
    cfg = validate(preset_config(args.preset, batch_size=args.batch, data=args.data, device="cuda", **over))
    device = torch.device("cuda")
    data, note = bench_data(cfg, device)
    print("data:", note)
    F = dict(fused_step=True, adam_fused=False, graph=True)
    variants = {
        "eager plain fp32": (dict(precision="fp32"), dict(fused_step=False, adam_fused=False, channels_last=False, graph=False)),
        "graph plain tf32 nchw": ({}, dict(F, fused_step=False, channels_last=False)),
        "graph plain tf32 cl": ({}, dict(F, fused_step=False, channels_last=True, cl_data=True)),
        "graph fused tf32 nchw": ({}, dict(F, channels_last=False)),
        "graph fused tf32 cl": ({}, dict(F, channels_last=True, cl_data=True)),
        "graph fused bf16 nchw": (dict(precision="bf16"), dict(F, channels_last=False)),
        "graph fused bf16 cl": (dict(precision="bf16"), dict(F, channels_last=True, cl_data=True)),
        "graph fused tf32 nchw compile": ({}, dict(F, channels_last=False, compile_models=True)),
        "graph fused tf32 cl compile": ({}, dict(F, channels_last=True, cl_data=True, compile_models=True)),
        "graph fused bf16 cl compile": (dict(precision="bf16"), dict(F, channels_last=True, cl_data=True, compile_models=True)),
    }
    base = None
    for name, (change, opts) in variants.items():
        vcfg = dataclasses.replace(cfg, **change)
        try:
            step = build(vcfg, data, **opts)
            its, _ = time_step(step, args.seconds, device, warmup_steps=5)
        except Exception as exc:
            print(f"{name:<30} failed: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        base = base or its
        print(f"{name:<30} {its:8.1f} it/s  {its / base:5.2f}x", flush=True)
        if args.profile and name.startswith("graph") and "compile" not in name:
            inner = step.step if isinstance(step, CudaGraphStep) else step
            k, us, top = kernel_profile(inner)
            print(f"   eager kernels/iter {k:.0f}, GPU busy {us:.0f} us/iter")
            for e in top:
                print(f"     {e.self_device_time_total / 5:8.0f} us {e.count / 5:6.0f}x  {e.key[:90]}")


if __name__ == "__main__":
    main()
