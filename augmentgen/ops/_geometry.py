"""Shared helpers of the geometric ops: hyperparameter checks and one-call parameter draws.

A draw of ``k`` per-sample values is ONE call to ``rng`` (``rng.random`` or ``torch.rand``)
followed by an affine map per row: on the per-sample path an rng call costs ~1-3 us, more
than the numbers it returns, so ops with several parameters draw them together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar, cast

import numpy as np
import torch

from augmentgen.core.params import Params
from augmentgen.core.rng import RNG, Array

P = TypeVar("P", bound=Params)


def expect(params: Params, cls: type[P], where: str) -> P:
    """``params`` narrowed to ``cls``; TypeError naming ``where`` otherwise."""
    if not isinstance(params, cls):
        raise TypeError(f"{where} needs {cls.__name__}, got {type(params).__name__}")
    return params


def span(where: str, v: Any, *, symmetric: bool, positive: bool = False) -> tuple[float, float]:
    """A ``(lo, hi)`` range from a pair, or ``(-v, v)`` from one number when ``symmetric``."""
    if isinstance(v, int | float) and not isinstance(v, bool) and symmetric:
        lo, hi = -abs(float(v)), abs(float(v))
    elif isinstance(v, tuple | list) and len(v) == 2 and all(isinstance(x, int | float) for x in v):
        lo, hi = float(v[0]), float(v[1])
    else:
        raise ValueError(
            f"{where} must be a (low, high) pair{' or one number' if symmetric else ''}, got {v!r}"
        )
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"{where} must be finite with low <= high, got {v!r}")
    if positive and lo <= 0:
        raise ValueError(f"{where} must be > 0, got {v!r}")
    return lo, hi


# A shift field: one number, (max_dx, max_dy), or ((lo_x, hi_x), (lo_y, hi_y)) (see ``max_shift``)
Shift = float | tuple[float, float] | tuple[tuple[float, float], tuple[float, float]]


def max_shift(where: str, v: Any) -> tuple[float, float] | tuple[tuple[float, float], tuple[float, float]]:
    """A shift field, normalized: ``(max_dx, max_dy)`` fractions in [0, 1] from a pair or one number
    (shifts drawn in ``[-max, max]``), or ``((lo_x, hi_x), (lo_y, hi_y))`` fractions in [-1, 1] for
    a range per axis (albumentations' ``translate_percent`` per axis; ``((0.1, 0.1), (0, 0))`` is a
    fixed shift of a tenth of the width to the right).
    """
    if isinstance(v, int | float) and not isinstance(v, bool):
        v = (v, v)
    if isinstance(v, tuple | list) and len(v) == 2 and all(isinstance(a, tuple | list) for a in v):
        axes = []
        for axis, r in zip("xy", v):
            if not (
                len(r) == 2
                and all(isinstance(x, int | float) and not isinstance(x, bool) and -1 <= x <= 1 for x in r)
                and r[0] <= r[1]
            ):
                raise ValueError(f"{where}: the {axis} range must be (low, high) fractions in [-1, 1], got {r!r}")
            axes.append((float(r[0]), float(r[1])))
        return axes[0], axes[1]
    if not (
        isinstance(v, tuple | list)
        and len(v) == 2
        and all(isinstance(x, int | float) and not isinstance(x, bool) and 0 <= x <= 1 for x in v)
    ):
        raise ValueError(
            f"{where} must be (max_dx, max_dy) fractions in [0, 1], one number, or "
            f"((lo_x, hi_x), (lo_y, hi_y)) fractions in [-1, 1], got {v!r}"
        )
    return float(v[0]), float(v[1])


def shift_ranges(v: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    """The ``(lo, hi)`` shift range of each axis from a field ``max_shift`` normalized."""
    if isinstance(v[0], tuple):
        return cast(tuple[tuple[float, float], tuple[float, float]], v)
    mx, my = pair(v)
    return (-mx, mx), (-my, my)


def hw(where: str, v: Any) -> tuple[int, int]:
    """An (H, W) size from an int (square) or a pair of positive ints."""
    if isinstance(v, int) and not isinstance(v, bool):
        v = (v, v)
    if not (isinstance(v, tuple | list) and len(v) == 2 and all(isinstance(x, int) and x > 0 for x in v)):
        raise ValueError(f"{where} must be a positive int or an (H, W) pair of positive ints, got {v!r}")
    return int(v[0]), int(v[1])


def ltrb(where: str, v: Any) -> tuple[int, int, int, int]:
    """Padding (left, top, right, bottom) from an int, an (x, y) pair or four ints (torchvision's order)."""
    if isinstance(v, int) and not isinstance(v, bool):
        v = (v,) * 4
    if isinstance(v, tuple | list) and len(v) == 2:
        v = (v[0], v[1], v[0], v[1])
    if not (isinstance(v, tuple | list) and len(v) == 4 and all(isinstance(x, int) and x >= 0 for x in v)):
        raise ValueError(
            f"{where} must be a non-negative int, (x, y) or (left, top, right, bottom), got {v!r}"
        )
    return int(v[0]), int(v[1]), int(v[2]), int(v[3])


def pair(v: Any) -> tuple[float, float]:
    """A field already normalized by ``span``/``max_shift`` in ``validate``, typed as the pair it is."""
    return cast(tuple[float, float], v)


def block(rng: RNG, n: int, k: int) -> Array:
    """``[k, n]`` U[0, 1) float32 from one rng call (torch: on the generator's device).

    Example:
        >>> block(np.random.default_rng(0), 3, 2).shape
        (2, 3)
    """
    if type(rng) is np.random.Generator:  # checked first: isinstance on torch.Generator costs ~0.6 us
        return rng.random((k, n), dtype=np.float32)
    if isinstance(rng, np.random.Generator):  # StreamRNG: the leading axis is the sample streams
        return rng.random((n, k), dtype=np.float32).T
    return torch.rand((k, n), generator=rng, device=rng.device)


def uniforms(rng: RNG, n: int, ranges: Sequence[tuple[float, float]]) -> list[Array]:
    """One ``[n]`` U[lo, hi) float32 array per range, from a single rng call.

    ``lo + (hi - lo) u`` is exactly ``lo`` when ``hi == lo``, so zero magnitude stays the
    exact identity. For n=1 on numpy the arithmetic runs on floats (cheaper than ufuncs).

    Example:
        >>> a, b = uniforms(np.random.default_rng(0), 4, [(0.0, 1.0), (2.0, 2.0)])
        >>> b.tolist()
        [2.0, 2.0, 2.0, 2.0]
    """
    u = block(rng, n, len(ranges))
    if type(u) is not np.ndarray:
        return [u[i] * (hi - lo) + lo for i, (lo, hi) in enumerate(ranges)]
    if n == 1 and type(rng) is np.random.Generator:
        vals = u[:, 0].tolist()
        return [np.array([lo + (hi - lo) * v], np.float32) for v, (lo, hi) in zip(vals, ranges, strict=True)]
    return [(u[i] * (hi - lo) + lo).astype(np.float32) for i, (lo, hi) in enumerate(ranges)]


def int_below(u: Array, lo: int, count: int) -> Array:
    """Integers ``lo + floor(u * count)`` in ``[lo, lo + count)`` (int64) from uniforms ``u``."""
    if isinstance(u, torch.Tensor):
        return (
            torch.floor(u.to(torch.float64 if u.device.type != "mps" else torch.float32) * count).clamp(
                max=count - 1
            )
            + lo
        ).to(torch.int64)
    return (np.minimum(np.floor(u.astype(np.float64) * count), count - 1) + lo).astype(np.int64)
