"""What the machine gives this process: the cores it may run on, and whether it computes bfloat16 natively."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask on Linux, else all of them).

    Example:
        >>> usable_cores() >= 1
        True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return frozenset()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` computes bfloat16 natively: CUDA with bf16 support, or a CPU with
    AVX512-BF16 or AMX-BF16 (elsewhere oneDNN emulates it, slower than float32).

    Example:
        >>> native_bf16("meta")
        False
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return dev.type == "cpu" and bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
