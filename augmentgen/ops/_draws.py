"""Shared helpers of the photometric ops: range hyperparameters and one-call parameter draws.

A draw of ``k`` per-sample parameters is ONE call to ``rng`` (``rng.random((n, k))`` or
``torch.rand((n, k))``), then an affine map per column: ~1 us on the per-sample path,
where separate ``rng.uniform`` / ``rng.integers`` calls cost 1.5-5 us each.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TypeVar, Union

import numpy as np
import torch
from torch import Tensor

from augmentgen.core.params import Params
from augmentgen.core.rng import RNG, Array

Range = Union[float, tuple[float, float]]


def as_range(
    owner: str, name: str, value: object, low: float | None = None, high: float | None = None
) -> tuple[float, float]:
    """``(lo, hi)`` from a ``(lo, hi)`` pair or one number (a fixed value); ValueError names ``owner.name``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo = hi = float(value)
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, float)) for v in value)
    ):
        lo, hi = float(value[0]), float(value[1])
    else:
        raise ValueError(f"{owner}.{name} must be a number or a (low, high) pair, got {value!r}")
    if lo > hi:
        raise ValueError(f"{owner}.{name} must have low <= high, got {value!r}")
    if (low is not None and lo < low) or (high is not None and hi > high):
        raise ValueError(f"{owner}.{name} must lie in [{low}, {high}], got {value!r}")
    return lo, hi


def uniform_cols(rng: RNG, ranges: Sequence[tuple[float, float]], n: int) -> tuple[list[Array], Array]:
    """Float32 columns ``U[lo, hi)`` per range, and the raw ``[n, k]`` uniforms (float64 on numpy).

    A range with ``lo == hi`` gives exactly ``lo`` (``u * 0 + lo``), so magnitude 0 is exact.
    """
    k = len(ranges)
    # numpy first: isinstance(x, torch.Generator) costs ~0.6 us (metaclass check), numpy's 0.08
    if isinstance(rng, np.random.Generator):
        span, lo = _span_lo(tuple(ranges))
        if n == 1 and type(rng) is np.random.Generator:  # per-sample path: in-place math on a [k, 1] draw
            u1 = rng.random((k, 1))
            v1 = u1 * span
            v1 += lo
            return list(v1.astype(np.float32)), u1.T
        u = rng.random((n, k))
        vals = (u * span.T + lo.T).astype(np.float32)
        return [vals[:, j] for j in range(k)], u
    u_t = torch.rand((n, k), generator=rng, device=rng.device)
    lo_t = torch.tensor([r[0] for r in ranges], device=rng.device)
    span_t = torch.tensor([r[1] - r[0] for r in ranges], device=rng.device)
    vals_t = u_t * span_t + lo_t
    return [vals_t[:, j] for j in range(k)], u_t


@lru_cache(maxsize=256)
def _span_lo(ranges: tuple[tuple[float, float], ...]) -> tuple[np.ndarray, np.ndarray]:
    span = np.array([[r[1] - r[0]] for r in ranges])
    lo = np.array([[r[0]] for r in ranges])
    span.flags.writeable = lo.flags.writeable = False
    return span, lo


def offsets(u: Array, size: int) -> Array:
    """int64 ``floor(u * size)`` for uniforms ``u`` in [0, 1) (noise-bank offsets)."""
    if isinstance(u, Tensor):
        return torch.floor(u.to(torch.float64) * size).to(torch.int64)
    return np.asarray(np.floor(np.asarray(u) * size), np.int64)


def whole(u: Array, high: int) -> Array:
    """``floor(u)`` clamped to ``high``, as int64 on ``u``'s backend: uniform draws on ``[lo, high + 1)``
    to equally likely whole numbers (a float32 draw may round up to the open end).

    Example:
        >>> whole(np.array([0.2, 2.99, 3.0], np.float32), 2).tolist()
        [0, 2, 2]
    """
    if isinstance(u, Tensor):
        return u.floor().clamp(max=high).to(torch.int64)
    return np.minimum(np.floor(u), high).astype(np.int64)


def scalar(a: Array) -> float:
    """The single value of a one-row param (per-sample path)."""
    if isinstance(a, np.ndarray) and a.size == 1:
        return float(a.item())
    if isinstance(a, Tensor):
        return float(a.reshape(-1)[0].item())
    return float(np.asarray(a).reshape(-1)[0])


def one_row_np(*arrays: Array) -> bool:
    """Whether every array is a one-row numpy array (then float math beats array math)."""
    for a in arrays:
        if not (isinstance(a, np.ndarray) and a.shape[0] == 1):
            return False
    return True


P = TypeVar("P", bound=Params)


def expect(params: Params, cls: type[P], owner: object) -> P:
    """``params`` narrowed to ``cls``; TypeError naming the op when replayed with the wrong kind."""
    if not isinstance(params, cls):
        raise TypeError(f"{type(owner).__name__} needs {cls.__name__}, got {type(params).__name__}")
    return params
