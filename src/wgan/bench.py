"""`wgan bench`: the fast step against a plain eager step of the same model, same batch, same data,
in one process, so the ratio is measured rather than assumed; and bf16 beside fp32 (tf32 on CUDA), on a
CPU too, where bf16 runs emulated if the CPU has no native bf16 (the row says so)."""

from __future__ import annotations

import math
import platform
import time

import torch

from wgan.config import TrainConfig, preset_config
from wgan.data import DATASETS, Data, load_dataset
from wgan.errors import UserError
from wgan.training.fast import make_step
from wgan.training.plan import RunPlan, make_plan
from wgan.training.state import TrainState, set_precision


def bench_data(cfg, device: torch.device, n: int = 20000) -> tuple[Data, str]:
    """The preset's dataset when its files are at hand, else random uint8 images of its shape: speed
    does not depend on pixel values."""
    try:
        data = load_dataset(cfg.dataset, data_path=cfg.data, image_size=cfg.image_size or None,
                            channels=cfg.channels or None)
        return data.to(device), f"{cfg.dataset} ({len(data)} samples)"
    except UserError:
        entry = DATASETS.get(cfg.dataset)
        classes = max(entry.num_classes if entry else 0, 2 if cfg.conditional else 0)
        if cfg.image_size:
            x = torch.randint(0, 256, (n, cfg.channels, cfg.image_size, cfg.image_size), dtype=torch.uint8)
        else:
            x = torch.randn(n, 2)
        y = torch.randint(0, classes, (n,)) if classes else None
        return Data(cfg.dataset, x, y, classes, source="synthetic").to(device), f"synthetic {tuple(x.shape[1:])} (no {cfg.dataset} files found)"


def time_step(step, seconds: float, device: torch.device, warmup_steps: int) -> tuple[float, int]:
    """Generator iterations per second over about `seconds`, after warm-up (capture included)."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup_steps):
        step()
    step.read_and_reset(1)
    sync()
    count, start = 0, time.perf_counter()
    chunk = 1
    while True:
        for _ in range(chunk):
            step()
        count += chunk
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
        # Sized to end near `seconds`: a doubling chunk overshoots it by up to 2x where a step takes
        # a second (a CPU); syncing at most every 64 steps keeps the GPU's queue full.
        chunk = max(1, min(64, math.ceil((seconds - elapsed) * count / elapsed)))
    step.read_and_reset(count)  # also proves the sums were readable
    return count / elapsed, count


def bench_variants(plan: RunPlan) -> list[tuple[str, RunPlan]]:
    """What is timed, in order: the plain step in fp32, then the fastest step the device runs in the precision
    the options resolve to and in the other one (bf16 beside fp32, or tf32 on CUDA), then on CUDA the plain step
    again (the ratio uses the better of the two eager runs)."""
    plain = ("eager (plain)", plan.variant(fast=False, precision="fp32"))
    fast_label = "fast" if plan.device.type == "cuda" else "eager fused"
    variants = [plain, (fast_label, plan.variant(fast=True))]
    if plan.precision.name != "bf16":
        variants.append((fast_label, plan.variant(fast=True, precision="bf16")))
    elif plan.device.type == "cpu":  # auto is bf16 on a CPU with native bf16: the fused step in fp32 beside it
        variants.insert(1, (fast_label, plan.variant(fast=True, precision="fp32")))
    if plan.device.type == "cuda":
        variants.append(plain)
    return variants


def run_bench(preset: str, *, batch_size: int | None, seconds: float, device_name: str, precision: str | None,
              data_path: str | None = None) -> tuple[list[dict], TrainConfig, torch.device]:
    """Each variant's timing (bench_variants), and the config and device they ran with."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise UserError(f"--seconds {seconds}: must be a finite number > 0")
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch {batch_size}: must be >= 1")
    overrides = dict(batch_size=batch_size, device=device_name, data=data_path)
    if precision:
        overrides["precision"] = precision
    plan = make_plan(preset_config(preset, **overrides), emulated_bf16=True)
    cfg, device = plan.cfg, plan.device
    results = []
    data, data_note = bench_data(cfg, device)
    print(f"data: {data_note}")
    for label, variant in bench_variants(plan):
        state = TrainState.build(variant, data=data)
        data = state.data
        set_precision(variant.precision.name, False)
        step, note = make_step(state, variant.step.fast)
        if variant.precision.why.startswith("emulated"):
            note = "; ".join(filter(None, [note, variant.precision.why]))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        # On CUDA the warm-up also autotunes cuDNN and captures the graph; a CPU step needs one to settle.
        its, count = time_step(step, seconds, device, warmup_steps=5 if device.type == "cuda" else 1)
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
        results.append(dict(variant=label, iterations_per_s=its,
                            critic_images_per_s=its * cfg.critic_steps * cfg.batch_size, iterations=count,
                            peak_mem_mib=peak, note=note or "", precision=variant.precision.name))
        del state, step
    return results, cfg, device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    return f"CPU {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads (torch {torch.__version__})"


def _its(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"  # a CPU step can take seconds: 0.43, not 0.4


def _mib(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"  # no peak memory figure on a CPU


def print_table(results: list[dict], cfg, device: torch.device) -> None:
    print(f"wgan bench: preset {cfg.preset}, model {cfg.model}, loss {cfg.loss}, batch {cfg.batch_size}, "
          f"{cfg.critic_steps} critic steps per generator step")
    print(f"device: {describe_device(device)}")
    print(f"{'variant':<16} {'precision':<9} {'gen it/s':>10} {'critic img/s':>14} {'peak MiB':>10} {'vs eager':>9}")
    print("(vs eager: against the faster of the eager runs)" if len(results) > 3 else "", end="\n" if len(results) > 3 else "")
    base = max(r["iterations_per_s"] for r in results if r["variant"] == "eager (plain)")
    for r in results:
        print(f"{r['variant']:<16} {r['precision']:<9} {_its(r['iterations_per_s']):>10} {r['critic_images_per_s']:>14.0f} "
              f"{_mib(r['peak_mem_mib']):>10} {r['iterations_per_s'] / base:>8.2f}x")
        if r["note"]:
            print(f"  note: {r['note']}")
    print(bf16_line(results))


def bf16_line(results: list[dict]) -> str:
    """bf16 against the other precision of the same (fast or fused) step, timed in the same process."""
    fast = [r for r in results if r["variant"] != "eager (plain)"]
    bf16 = [r for r in fast if r["precision"] == "bf16"]
    other = [r for r in fast if r["precision"] != "bf16"]
    if not (bf16 and other):
        return "bf16: not timed"
    b, o = bf16[0], other[0]
    return (f"bf16 vs {o['precision']} ({b['variant']}): {_its(b['iterations_per_s'])} vs {_its(o['iterations_per_s'])} "
            f"gen it/s = {b['iterations_per_s'] / o['iterations_per_s']:.2f}x")
