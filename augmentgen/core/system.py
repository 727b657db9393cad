"""What the machine gives this process: the cores it may run on, whether it computes bfloat16
natively, and whether Ctrl-C was pressed."""

from __future__ import annotations

import functools
import os
import signal
import threading
from pathlib import Path
from types import FrameType

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


_INTERRUPTED = threading.Event()


def note_interrupt(signum: int, frame: FrameType | None) -> None:
    """A SIGINT handler: remember the interrupt, then raise ``KeyboardInterrupt`` as Python's own does.

    A library that catches and drops the exception (one CI run saw a Ctrl-C vanish in the middle
    of a stage) cannot drop the note: ``raise_if_interrupted`` raises it again at the next check.
    """
    _INTERRUPTED.set()
    signal.default_int_handler(signum, frame)


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if ``note_interrupt`` saw a Ctrl-C (a check between units of work)."""
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


def reset_interrupt() -> None:
    """Forget a noted Ctrl-C (a command starts and ends with a clean slate)."""
    _INTERRUPTED.clear()
