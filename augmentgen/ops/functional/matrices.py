"""Pure builders of ``[B, 3, 3]`` geometric matrices, numpy and torch from one formula each.

Every matrix maps INPUT continuous pixel coordinates to OUTPUT continuous coordinates
(pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``; see ``core.batch``). Rotation, scale and
shear act about the image centre ``(W/2, H/2)``; a positive angle turns the picture
counter-clockwise on screen (OpenCV and ``torchvision.transforms.v2.functional.rotate``).

Each formula is written once over values that are Python floats, ``[B]`` tensors or
``[B]`` float64 arrays:

- tensor arguments give a torch ``[B, 3, 3]`` on their device (float32, float64 kept);
- numpy/float arguments give a numpy float64 ``[B, 3, 3]``: one row in plain ``math`` floats
  (the cheap way for the per-sample CPU path), several rows as float64 columns with ``math``
  applied per value, which gives every row the bits of its one-row build.

Zero magnitude gives the exact identity (``cos 0 = 1``, translations are written as
``c - L c``), so a no-op stays bit-identical after the warp's identity shortcut.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor

from augmentgen.core.rng import Array

Num = Union[float, Tensor, np.ndarray]  # a Python float, a [B] tensor or a [B] float64 array
Entries = tuple[Num, Num, Num, Num, Num, Num, Num, Num, Num]


def _elementwise(f: Callable[[float], float], x: np.ndarray) -> np.ndarray:
    """``f`` (a ``math`` function) on every value: the same bits a one-row build gets."""
    return np.fromiter((f(v) for v in x.tolist()), np.float64, x.shape[0])


def _trig(f: Callable[[float], float], tf: Callable[[Tensor], Tensor]) -> Callable[[Num], Num]:
    """``f`` on a float, ``f`` per value on a float64 array (``_elementwise``), ``tf`` on a tensor."""

    def g(x: Num) -> Num:
        if type(x) is float:
            return f(x)
        if type(x) is np.ndarray:
            return _elementwise(f, x)
        return tf(x)  # type: ignore[arg-type]

    return g


_cos, _sin, _tan = _trig(math.cos, torch.cos), _trig(math.sin, torch.sin), _trig(math.tan, torch.tan)


# ---- formulas (floats or [B] tensors) ---------------------------------------------------------
def affine_entries(
    angle: Num, scale: Num, shear_x: Num, shear_y: Num, tx: Num, ty: Num, w: float, h: float
) -> Entries:
    """Entries of ``T(c + d) . s R(angle) . Sh(shear_x, shear_y) . T(-c)``, ``c = (W/2, H/2)``.

    ``R`` turns counter-clockwise on screen (y points down): ``[[cos, sin], [-sin, cos]]``;
    ``Sh = [[1, tan(shear_x)], [tan(shear_y), 1]]``; angles in degrees; the shift
    ``d = (tx W, ty H)`` is given in fractions of the canvas.
    """
    a = angle * (math.pi / 180.0)
    c, s = _cos(a), _sin(a)
    kx, ky = _tan(shear_x * (math.pi / 180.0)), _tan(shear_y * (math.pi / 180.0))
    m00 = (c + s * ky) * scale
    m01 = (c * kx + s) * scale
    m10 = (c * ky - s) * scale
    m11 = (c - s * kx) * scale
    cx, cy = w * 0.5, h * 0.5
    t0 = cx + tx * w - (m00 * cx + m01 * cy)  # written as c - L c: exactly 0 when L = I and tx = 0
    t1 = cy + ty * h - (m10 * cx + m11 * cy)
    return (m00, m01, t0, m10, m11, t1, 0.0, 0.0, 1.0)


def crop_entries(x0: Num, y0: Num, cw: Num, ch: Num, out_w: float, out_h: float) -> Entries:
    """Entries mapping the region ``[x0, x0+cw) x [y0, y0+ch)`` onto an ``out_h x out_w`` canvas."""
    sx, sy = out_w / cw, out_h / ch
    return (sx, 0.0, -x0 * sx, 0.0, sy, -y0 * sy, 0.0, 0.0, 1.0)


def quad_entries(
    x0: Num, y0: Num, x1: Num, y1: Num, x2: Num, y2: Num, x3: Num, y3: Num, w: float, h: float
) -> Entries:
    """Homography taking the canvas corners (0,0), (W,0), (W,H), (0,H) to the quad ``(x_k, y_k)``.

    Closed form of Heckbert (1989), "Fundamentals of Texture Mapping", sec. 2.2.3 (unit square
    to quad), composed with ``diag(1/W, 1/H)``. No linear solve, so it vectorizes on any
    device, and an undistorted quad gives the exact identity.
    """
    dx1, dx2, dx3 = x1 - x2, x3 - x2, x0 - x1 + x2 - x3
    dy1, dy2, dy3 = y1 - y2, y3 - y2, y0 - y1 + y2 - y3
    den = dx1 * dy2 - dx2 * dy1
    g = (dx3 * dy2 - dx2 * dy3) / den
    k = (dx1 * dy3 - dx3 * dy1) / den
    a, b, c = x1 - x0 + g * x1, x3 - x0 + k * x3, x0
    d, e, f = y1 - y0 + g * y1, y3 - y0 + k * y3, y0
    return (a / w, b / h, c, d / w, e / h, f, g / w, k / h, 1.0)


# ---- assembly ---------------------------------------------------------------------------------
def _first_tensor(values: Sequence[Any]) -> Tensor | None:
    for v in values:
        tp = type(v)
        if tp is float or tp is np.ndarray:  # the common cases, checked cheaply first
            continue
        if isinstance(v, Tensor):
            return v
    return None


def _assemble_torch(entries: Entries, like: Tensor) -> Tensor:
    b = int(like.shape[0])
    cols = [e if isinstance(e, Tensor) else like.new_full((b,), float(e)) for e in entries]
    return torch.stack(cols, dim=-1).reshape(b, 3, 3)


def build(formula: Callable[..., Entries], args: Sequence[Array | float], *consts: float) -> Array:
    """``[B, 3, 3]`` from ``formula(*row_args, *consts)`` for ``args`` that are floats or ``[B]`` arrays.

    Args:
        formula: one of the ``*_entries`` functions.
        args: per-sample values (torch ``[B]``, numpy ``[B]`` or float); any tensor makes
            the result torch on its device, else numpy float64.
        consts: trailing float arguments shared by every row (centre, canvas size).

    Example:
        >>> build(affine_entries, [np.zeros(2), 1.0, 0.0, 0.0, 0.0, 0.0], 4.0, 4.0).shape
        (2, 3, 3)
    """
    t = _first_tensor(args)
    if t is not None:
        # float64 stays float64; everything else (ints, half) builds in float32
        dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
        targs = [a.to(dtype) if isinstance(a, Tensor) else float(a) for a in args]
        like = torch.empty(int(t.shape[0]), dtype=dtype, device=t.device)
        return _assemble_torch(formula(*targs, *consts), like)
    # numpy: one row at a time in plain floats, the cheap way for B=1
    try:
        row = [a if type(a) is float else a.item() for a in args]  # type: ignore[union-attr]
    except (AttributeError, ValueError):  # an int, or several rows: the general path below
        pass
    else:
        return np.array(formula(*row, *consts), dtype=np.float64).reshape(1, 3, 3)
    cols = [np.array([float(a)]) if isinstance(a, float | int) else np.asarray(a, np.float64).reshape(-1) for a in args]
    n = max(len(c) for c in cols)
    if any(len(c) not in (1, n) for c in cols):
        raise ValueError(
            f"matrix arguments must all have one or B rows, got lengths {[len(c) for c in cols]}"
        )
    if n == 1:
        return np.array(formula(*[float(c[0]) for c in cols], *consts), dtype=np.float64).reshape(1, 3, 3)
    # several rows: the same formula over float64 columns. + - * / are correctly rounded in
    # numpy and in Python alike, and cos/sin/tan go through ``math`` per value, so every row
    # has the bits of its one-row build (a sample's matrix does not depend on its batch).
    vec = [float(c[0]) if len(c) == 1 else c for c in cols]
    out = np.empty((n, 9), np.float64)
    for k, e in enumerate(formula(*vec, *consts)):
        out[:, k] = e
    return out.reshape(n, 3, 3)


# ---- public builders -----------------------------------------------------------------------
def affine_matrix(
    size: tuple[int, int],
    *,
    angle: Array | float = 0.0,
    scale: Array | float = 1.0,
    shear_x: Array | float = 0.0,
    shear_y: Array | float = 0.0,
    tx: Array | float = 0.0,
    ty: Array | float = 0.0,
) -> Array:
    """Rotation (degrees, counter-clockwise), zoom, shear (degrees) about the centre, then a shift.

    Args:
        size: (H, W) of the input.
        angle, scale, shear_x, shear_y: ``[B]`` or scalars.
        tx, ty: shift as a fraction of W and H.

    Shape:
        ``[B, 3, 3]`` (torch when any argument is a tensor, else numpy float64).

    Example:
        >>> affine_matrix((4, 4), angle=np.array([90.0])).round(6)[0, :2].tolist()
        [[0.0, 1.0, 0.0], [-1.0, 0.0, 4.0]]
    """
    return build(affine_entries, [angle, scale, shear_x, shear_y, tx, ty], float(size[1]), float(size[0]))


def crop_matrix(
    x0: Array | float, y0: Array | float, w: Array | float, h: Array | float, out_size: tuple[int, int]
) -> Array:
    """Map the crop ``(x0, y0, w, h)`` (pixels) onto ``out_size`` (H, W); ``[B, 3, 3]``.

    Example:
        >>> crop_matrix(np.array([2.0]), 1.0, 4.0, 4.0, (4, 4))[0, :2].tolist()
        [[1.0, 0.0, -2.0], [0.0, 1.0, -1.0]]
    """
    return build(crop_entries, [x0, y0, w, h], float(out_size[1]), float(out_size[0]))


def perspective_matrix(size: tuple[int, int], offsets: Array) -> Array:
    """Homography moving each canvas corner inward by ``offsets`` (fractions of W, H).

    Args:
        size: (H, W).
        offsets: ``[B, 4, 2]`` inward displacement of the top-left, top-right,
            bottom-right and bottom-left corners, as fractions of (W, H).

    Shape:
        ``[B, 3, 3]``.

    Example:
        >>> bool(np.array_equal(perspective_matrix((8, 8), np.zeros((1, 4, 2)))[0], np.eye(3)))
        True
    """
    h, w = float(size[0]), float(size[1])
    o: Array = (
        offsets.to(torch.float64 if offsets.dtype == torch.float64 else torch.float32)
        if isinstance(offsets, Tensor)
        else np.asarray(offsets, np.float64)
    )
    ox, oy = o[..., 0] * w, o[..., 1] * h  # [B, 4]
    quad = [ox[:, 0], oy[:, 0], w - ox[:, 1], oy[:, 1], w - ox[:, 2], h - oy[:, 2], ox[:, 3], h - oy[:, 3]]
    return build(quad_entries, quad, w, h)


def flip_matrix(size: tuple[int, int], *, horizontal: bool, like: Array, n: int) -> Array:
    """``n`` copies of the mirror ``x -> W - x`` (or ``y -> H - y``), typed like ``like``.

    Example:
        >>> flip_matrix((2, 4), horizontal=True, like=np.zeros(1), n=1)[0, 0].tolist()
        [-1.0, 0.0, 4.0]
    """
    h, w = size
    m = [[-1.0, 0.0, float(w)], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    if not horizontal:
        m = [[1.0, 0.0, 0.0], [0.0, -1.0, float(h)], [0.0, 0.0, 1.0]]
    return _const(m, like, n)


def translate_pixels_matrix(dx: float, dy: float, *, like: Array, n: int) -> Array:
    """``n`` copies of the shift by ``(dx, dy)`` pixels, typed like ``like``."""
    return _const([[1.0, 0.0, float(dx)], [0.0, 1.0, float(dy)], [0.0, 0.0, 1.0]], like, n)


def _const(m: list[list[float]], like: Array, n: int) -> Array:
    if isinstance(like, Tensor):
        dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
        return torch.tensor(m, dtype=dtype, device=like.device).expand(n, 3, 3).clone()
    return np.repeat(np.array(m, np.float64)[None], n, axis=0)
