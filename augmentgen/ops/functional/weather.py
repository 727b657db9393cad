"""Weather kernels: fog and lens droplets, and the helpers every weather/lighting kernel shares.

Every effect is a pure function of ``(image, params)``, no RNG inside, so replay is exact
and the batched torch path (``[B, C, H, W]``) and the per-sample OpenCV/numpy path (one
HWC image) agree (uint8: within a few levels). Two devices keep them in step:

- Smooth maps (fog density, droplet alpha) are computed at a low resolution by ONE function
  written against a tiny array namespace (``NP`` or ``TORCH``), then upsampled bilinearly
  (``cv2.resize`` / ``F.interpolate``, the same half-pixel convention).
- Rain and snow are rasterized exactly on integer pixels (``ops.functional.precipitation``).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

NP = SimpleNamespace(
    clip=np.clip,
    minimum=np.minimum,
    maximum=np.maximum,
    exp=np.exp,
    sqrt=np.sqrt,
    cos=np.cos,
    sin=np.sin,
    atan2=np.arctan2,
    abs=np.abs,
)
TORCH = SimpleNamespace(
    clip=torch.clamp,
    minimum=torch.minimum,
    maximum=torch.maximum,
    exp=torch.exp,
    sqrt=torch.sqrt,
    cos=torch.cos,
    sin=torch.sin,
    atan2=torch.atan2,
    abs=torch.abs,
)


# ---- shared ---------------------------------------------------------------------------
def map_size(h: int, w: int, rows: int) -> tuple[int, int]:
    """Low-resolution map size: at most ``rows`` rows, the image's aspect ratio."""
    mh = max(1, min(h, rows))
    return mh, max(1, min(w, round(mh * w / h)))


def map_grid(h: int, w: int, mh: int, mw: int, like: Tensor | None = None) -> tuple[Any, Any]:
    """Full-resolution pixel-centre coordinates of the map's cells: ``ys [1, mh, 1]``, ``xs [1, 1, mw]``."""
    if like is None:
        ys = (np.arange(mh, dtype=np.float32) + np.float32(0.5)) * np.float32(h / mh)
        xs = (np.arange(mw, dtype=np.float32) + np.float32(0.5)) * np.float32(w / mw)
        return ys.reshape(1, mh, 1), xs.reshape(1, 1, mw)
    yt = (torch.arange(mh, device=like.device, dtype=torch.float32) + 0.5) * float(np.float32(h / mh))
    xt = (torch.arange(mw, device=like.device, dtype=torch.float32) + 0.5) * float(np.float32(w / mw))
    return yt.reshape(1, mh, 1), xt.reshape(1, 1, mw)


def col(v: Any, like: Tensor | None = None, dims: int = 2) -> Any:
    """A ``[B]`` param as ``[B, 1, ...]`` float32 (``dims`` trailing ones), numpy or torch."""
    if like is None:
        return np.asarray(v, np.float32).reshape(-1, *([1] * dims))
    return torch.as_tensor(v).to(device=like.device, dtype=torch.float32).reshape(-1, *([1] * dims))


def cells(lo: float, hi: float, full: int, n: int) -> slice:
    """Map cells (of ``n`` across ``full`` pixels) whose centres may fall in ``[lo, hi]`` pixels, with margin."""
    f = n / full
    return slice(max(0, int(math.floor(lo * f - 0.5)) - 1), min(n, int(math.ceil(hi * f - 0.5)) + 2))


def upsample(m: Tensor, size: tuple[int, int]) -> Tensor:
    """``[B, K, mh, mw]`` -> ``[B, K, H, W]`` bilinear, half-pixel (== ``cv2.resize`` INTER_LINEAR)."""
    if tuple(m.shape[-2:]) == size:
        return m
    return F.interpolate(m, size=size, mode="bilinear", align_corners=False)


def upsample_np(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``[mh, mw(, K)]`` float32 -> ``[H, W(, K)]`` with ``cv2.resize`` INTER_LINEAR."""
    if m.shape[:2] == size:
        return m
    return np.asarray(cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_LINEAR))


def as01(image: Tensor) -> Tensor:
    if image.dtype == torch.uint8:
        return image.to(torch.float32) / 255.0
    if not image.is_floating_point():
        raise TypeError(f"weather kernels need float or uint8 images, got {image.dtype}")
    return image


def finish(image: Tensor, out01: Tensor) -> Tensor:
    """Clamp an [0, 1] result and return it in ``image``'s dtype (uint8 rounds half to even, like OpenCV).

    ``out01`` must be a fresh tensor (every kernel builds one): without autograd it is clamped in place.
    """
    if image.dtype == torch.uint8:
        return (out01 * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    clamped = out01.clamp(0.0, 1.0) if out01.requires_grad else out01.clamp_(0.0, 1.0)
    return clamped.to(image.dtype)


def top_of(image: np.ndarray) -> float:
    return 255.0 if image.dtype == np.uint8 else 1.0


def to_dtype_np(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Float32 result in ``like``'s units back to ``like``'s dtype (rounded, saturated for uint8)."""
    if like.dtype == np.uint8:
        # cv2.add with dtype=CV_8U rounds half to even and saturates (astype would wrap)
        return np.asarray(cv2.add(out, np.float64(0.0), dtype=cv2.CV_8U)).reshape(like.shape)  # type: ignore[call-overload]
    return np.clip(out, 0.0, 1.0, out=out).reshape(like.shape).astype(like.dtype, copy=False)


def blend_np(image: np.ndarray, alpha: np.ndarray, target: np.ndarray | float) -> np.ndarray:
    """``x + alpha * (target - x)`` per pixel; ``alpha`` ``[H, W]`` or ``[H, W, C]`` in [0, 1], target in image units."""
    xf = image.astype(np.float32)
    a = alpha if alpha.ndim == 3 or image.ndim == 2 else alpha[:, :, None]
    tgt = np.asarray(target, np.float32)
    out = np.subtract(tgt if tgt.ndim else np.float32(tgt), xf)
    out *= a
    out += xf
    return to_dtype_np(out, image)


# ---- fog --------------------------------------------------------------------------------
FOG_WAVES = 6  # random cosines summed into the fog texture


def fog_map(
    xp: Any,
    ys: Any,
    xs: Any,
    size: tuple[int, int],
    density: Any,
    gradient: Any,
    texture: float,
    freq: Any,
    phase: Any,
) -> Any:
    """``[B, mh, mw]`` fog opacity ``t = density * (1 - gradient * y / H) * (1 + texture * n)``, clipped to [0, 1].

    ``n`` is a sum of ``FOG_WAVES`` cosines of random low frequency (``freq`` ``[B, K, 2]``
    cycles per image height, ``phase`` ``[B, K]``), scaled to about [-1, 1]: patches of thicker
    and thinner fog a few per image, so the haze is not a flat grey sheet.
    """
    h, w = size
    n = 0.0
    for k in range(freq.shape[1]):
        fy, fx, ph = freq[:, k, 0:1, None], freq[:, k, 1:2, None], phase[:, k : k + 1, None]
        n = n + xp.cos((fy * ys + fx * xs) * (2.0 * math.pi / h) + ph)
    n = n * (1.0 / math.sqrt(0.5 * freq.shape[1]))  # unit variance
    t = density * (1.0 - gradient * (ys / h)) * (1.0 + texture * 0.5 * n)
    return xp.clip(t, 0.0, 1.0)


def fog(
    image: Tensor,
    density: Tensor,
    gradient: Tensor,
    airlight: Tensor,
    texture: float,
    freq: Tensor,
    phase: Tensor,
) -> Tensor:
    """Depth-free haze ``x (1 - t) + A t`` with the opacity map ``t`` of ``fog_map``, batched."""
    h, w = image.shape[-2:]
    mh, mw = map_size(h, w, 48)
    ys, xs = map_grid(h, w, mh, mw, image)
    t = fog_map(
        TORCH,
        ys,
        xs,
        (h, w),
        col(density, image),
        col(gradient, image),
        texture,
        freq.to(image.device, torch.float32),
        phase.to(image.device, torch.float32),
    )
    t = upsample(t[:, None], (h, w))
    x = as01(image)
    return finish(image, x + t.to(x.dtype) * (col(airlight, image, 3).to(x.dtype) - x))


def fog_np(
    image: np.ndarray,
    density: float,
    gradient: float,
    airlight: float,
    texture: float,
    freq: np.ndarray,
    phase: np.ndarray,
) -> np.ndarray:
    """Per-sample ``fog``; the map is built at <= 48 rows and upsampled with ``cv2.resize``."""
    if density == 0.0:
        return image
    h, w = image.shape[:2]
    mh, mw = map_size(h, w, 48)
    ys, xs = map_grid(h, w, mh, mw)
    t = fog_map(
        NP,
        ys,
        xs,
        (h, w),
        col([density]),
        col([gradient]),
        texture,
        np.asarray(freq, np.float32).reshape(1, -1, 2),
        np.asarray(phase, np.float32).reshape(1, -1),
    )[0]
    t = upsample_np(np.ascontiguousarray(t, np.float32), (h, w))
    return blend_np(image, t, airlight * top_of(image))


# ---- box filters (precipitation and droplets) ----------------------------------------
def _per_value(values: Tensor, layer: Tensor, fn: Any) -> Tensor:
    """Apply ``fn(layer_rows, v)`` to the rows sharing each distinct int ``v`` (few distinct values)."""
    distinct = torch.unique(values).tolist()
    if len(distinct) == 1:  # e.g. a fixed size: no gather/scatter of rows
        out: Tensor = fn(layer, int(distinct[0]))
        return out
    out = layer.clone()
    for v in distinct:
        sel = values == v
        out[sel] = fn(layer[sel], int(v))
    return out


def dilate(layer: Tensor, size: Tensor) -> Tensor:
    """Per-sample square dilation by odd ``size`` ``[B]`` (== ``cv2.dilate`` with a ones kernel)."""
    return _per_value(
        size.to(layer.device),
        layer,
        lambda t, k: t if k <= 1 else F.max_pool2d(t, k, stride=1, padding=k // 2),
    )


def _box(t: Tensor, k: int) -> Tensor:
    h, w = t.shape[-2:]
    if k <= 1:
        return t
    p = k // 2
    mode = "reflect" if p < h and p < w else "replicate"
    t = F.pad(t, (p, p, p, p), mode=mode)
    if k <= 9:  # a few shifted adds beat avg_pool2d (slow on the CPU) and cumsum
        rows = t[..., 0:h, :].clone()
        for i in range(1, k):
            rows += t[..., i : i + h, :]
        out = rows[..., 0:w].clone()
        for i in range(1, k):
            out += rows[..., i : i + w]
        return out * (1.0 / (k * k))
    # large boxes: running sums in float64 (exact enough for any image size)
    c = F.pad(t.to(torch.float64).cumsum(-2), (0, 0, 1, 0))
    c = F.pad((c[..., k:, :] - c[..., :-k, :]).cumsum(-1), (1, 0))
    return ((c[..., k:] - c[..., :-k]) / (k * k)).to(t.dtype)


def box_blur(layer: Tensor, size: Tensor) -> Tensor:
    """Per-sample box blur by odd ``size`` ``[B]``, reflect-101 borders (== ``cv2.blur``)."""
    return _per_value(size.to(layer.device), layer, _box)


def box_blur_np(layer: np.ndarray, k: int) -> np.ndarray:
    if k <= 1:
        return layer
    h, w = layer.shape[:2]
    border = cv2.BORDER_REFLECT_101 if k // 2 < h and k // 2 < w else cv2.BORDER_REPLICATE
    return np.asarray(cv2.blur(layer, (k, k), borderType=border))


# ---- lens droplets ----------------------------------------------------------------------
def droplet_map(
    xp: Any, ys: Any, xs: Any, size: tuple[int, int], centers: Any, radii: Any, on: Any
) -> tuple[Any, Any]:
    """``[B, mh, mw]`` droplet alpha (soft discs) and rim weight (a ring at the edge of each disc).

    ``centers`` ``[B, K, 2]`` (x, y as fractions of W, H), ``radii`` ``[B, K]`` fractions of
    ``min(H, W)``, ``on`` ``[B, K]`` 1 for the droplets a sample has, 0 for the rest.
    """
    h, w = size
    alpha, rim = 0.0 * ys * xs, 0.0 * ys * xs
    crop = xp is NP and centers.shape[0] == 1  # one sample: only the cells a drop covers
    mh, mw = int(ys.shape[1]), int(xs.shape[2])
    for k in range(centers.shape[1]):
        if crop and float(on[0, k]) == 0.0:
            continue
        cx, cy = centers[:, k, 0:1, None] * w, centers[:, k, 1:2, None] * h
        r = radii[:, k : k + 1, None] * min(h, w) + 1e-3
        sy = sx = slice(None)
        if crop:  # disc and ring are exactly 0 beyond the radius
            r0, x0, y0 = float(r.item()), float(cx.item()), float(cy.item())
            sy, sx = cells(y0 - r0, y0 + r0, h, mh), cells(x0 - r0, x0 + r0, w, mw)
        d = xp.sqrt((xs[:, :, sx] - cx) ** 2 + (ys[:, sy] - cy) ** 2) / r  # 1 at the edge
        disc = xp.clip((1.0 - d) * 6.0, 0.0, 1.0) * on[:, k : k + 1, None]
        ring = xp.clip(1.0 - xp.abs(d - 0.85) * 8.0, 0.0, 1.0) * on[:, k : k + 1, None]
        if crop:
            np.maximum(alpha[:, sy, sx], disc, out=alpha[:, sy, sx])
            np.maximum(rim[:, sy, sx], ring, out=rim[:, sy, sx])
        else:
            alpha, rim = xp.maximum(alpha, disc), xp.maximum(rim, ring)
    return alpha, rim


def lens_droplets(image: Tensor, centers: Tensor, radii: Tensor, on: Tensor, blur: Tensor) -> Tensor:
    """Out-of-focus water drops: inside a drop the view is a box-blurred, brightened copy, the rim darker."""
    h, w = image.shape[-2:]
    mh, mw = map_size(h, w, 160)
    ys, xs = map_grid(h, w, mh, mw, image)
    f32: dict[str, Any] = {"device": image.device, "dtype": torch.float32}
    alpha, rim = droplet_map(TORCH, ys, xs, (h, w), centers.to(**f32), radii.to(**f32), on.to(**f32))
    a = upsample(torch.stack([alpha, rim], 1), (h, w))
    x = as01(image)
    blurred = box_blur(box_blur(x, blur), blur)
    inside = x + a[:, :1].to(x.dtype) * (blurred * 1.08 - x)
    return finish(image, inside * (1.0 - 0.35 * a[:, 1:].to(x.dtype)))


def lens_droplets_np(
    image: np.ndarray, centers: np.ndarray, radii: np.ndarray, on: np.ndarray, blur: int
) -> np.ndarray:
    """Per-sample ``lens_droplets`` (two ``cv2.blur`` passes, a map at <= 160 rows)."""
    if not np.asarray(on).any():
        return image
    h, w = image.shape[:2]
    mh, mw = map_size(h, w, 160)
    ys, xs = map_grid(h, w, mh, mw)
    c32 = np.asarray(centers, np.float32).reshape(1, -1, 2)
    r32, o32 = np.asarray(radii, np.float32).reshape(1, -1), np.asarray(on, np.float32).reshape(1, -1)
    alpha, rim = droplet_map(NP, ys, xs, (h, w), c32, r32, o32)
    a = upsample_np(np.ascontiguousarray(np.stack([alpha[0], rim[0]], -1), np.float32), (h, w))
    xf = image.astype(np.float32)
    blurred = box_blur_np(box_blur_np(xf, blur), blur).reshape(image.shape) * np.float32(1.08)
    al = a[:, :, :1] if image.ndim == 3 else a[:, :, 0]
    rm = a[:, :, 1:] if image.ndim == 3 else a[:, :, 1]
    out = (xf + al * (blurred - xf)) * (1.0 - np.float32(0.35) * rm)
    return to_dtype_np(np.asarray(out, np.float32), image)
