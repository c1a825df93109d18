"""What a training step computes in: --precision resolved on the run's device, with the reason log.txt
gives, and the autocast region that applies it.

On CUDA, tf32 allows TF32 matmuls and bf16 runs the models under CUDA autocast. On a CPU, tf32 is no
setting (fp32), and bf16 runs them under CPU autocast where the CPU has native bf16 instructions
(AVX512-BF16 or AMX on x86, BF16 on Arm). Without them bf16 is emulated: on a 2-core AMD EPYC without
AVX-512 the quick preset's step ran at 0.09-0.14x its fp32 speed in bf16, so a run that asks for it
there is refused, and only `wgan bench` times it. In every case the losses and the penalty's gradient norm are fp32.

`auto` (the default): tf32 on CUDA; on a CPU bf16 where the CPU has it natively (bf16 training was
measured equal in quality to fp32 there: CPU_BF16_MEASURED_EQUAL, docs/levers.md), fp32 elsewhere.
"""

from __future__ import annotations

import functools
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from wgan.errors import UserError

# /proc/cpuinfo's names of native bf16 instructions: x86 "flags", Arm "Features".
CPUINFO_BF16 = {"amx_bf16": "AMX", "avx512_bf16": "AVX512-BF16", "bf16": "Arm BF16"}
CPUINFO = Path("/proc/cpuinfo")

# Whether bf16 training on a CPU was measured equal in quality to fp32 at equal steps (FCD within the
# run-to-run spread): `auto` picks bf16 on a CPU only once it was. Measured on a 2-core AMD EPYC with
# AVX512-BF16, the quick preset, three seeds each at 1,000 steps: FCD 114.4-115.5 in bf16 against 116.0-127.5
# in fp32, in 0.68x the CPU time (docs/levers.md).
CPU_BF16_MEASURED_EQUAL = True


@dataclass(frozen=True)
class Precision:
    name: str  # fp32, tf32 or bf16: what the step computes in
    why: str  # how it was chosen, for log.txt and `wgan bench`

    def __str__(self) -> str:
        return f"{self.name} ({self.why})"


def bf16_in_cpuinfo(text: str) -> str | None:
    """The native bf16 instructions named in /proc/cpuinfo's text (the first processor's), or None."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            names = set(value.split())
            return next((shown for flag, shown in CPUINFO_BF16.items() if flag in names), None)
    return None


@functools.lru_cache(maxsize=1)
def cpu_bf16_instructions() -> str | None:
    """This CPU's native bf16 instructions (e.g. "AVX512-BF16"), or None where it has none or nothing
    can tell: torch's own CPU probes first (any OS), then /proc/cpuinfo (Linux, Arm included)."""
    probes = (("AMX", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported"))
    for shown, name in probes:
        try:
            if getattr(torch.cpu, name)():
                return shown
        except Exception:  # a private probe that a torch build lacks: the next way of telling
            pass
    try:
        return bf16_in_cpuinfo(CPUINFO.read_text(errors="replace"))
    except OSError:
        return None


def cuda_has_bf16(device: torch.device) -> bool:
    try:
        with torch.cuda.device(device):
            return torch.cuda.is_bf16_supported(including_emulation=False)
    except (RuntimeError, AssertionError):
        return False


def resolve_precision(requested: str, device: torch.device, *, emulated_ok: bool = False) -> Precision:
    """--precision on `device`. bf16 where the device cannot run it natively is a UserError, unless
    `emulated_ok` (`wgan bench`, which times it to show what it costs)."""
    if device.type == "cuda":
        if requested == "auto":
            return Precision("tf32", "auto: TF32 matmuls on CUDA")
        if requested == "bf16" and not cuda_has_bf16(device):
            raise UserError(f"--precision bf16: {device} has no native bf16 (it needs compute capability 8.0 or "
                            "newer); use --precision tf32 or fp32")
        return Precision(requested, "asked for")
    native = cpu_bf16_instructions()
    if requested == "auto":
        if native is None:
            return Precision("fp32", "auto: this CPU has no native bf16, AVX512-BF16 or AMX")
        if not CPU_BF16_MEASURED_EQUAL:
            return Precision("fp32", f"auto: bf16 on this CPU's {native} is opt-in until measured equal in "
                                     "quality to fp32; --precision bf16 to use it")
        return Precision("bf16", f"auto: CPU autocast on {native}")
    if requested == "tf32":
        return Precision("fp32", "tf32 is a CUDA setting; a CPU computes in fp32")
    if requested == "bf16":
        if native is not None:
            return Precision("bf16", f"asked for; CPU autocast on {native}")
        if emulated_ok:
            return Precision("bf16", "emulated: this CPU has no native bf16, AVX512-BF16 or AMX")
        raise UserError("--precision bf16: this CPU has no native bf16 (AVX512-BF16 or AMX), and emulated bf16 trains several times "
                        "slower than fp32 (`wgan bench --device cpu` times both); use --precision fp32 or auto")
    return Precision(requested, "asked for")


def autocast_region(precision: Precision, device: torch.device):
    """The context the models run in: bf16 autocast on the device, or nothing."""
    if precision.name != "bf16":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
