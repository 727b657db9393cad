"""Weather kernels: fog, rain and snow streaks, lens droplets; one formula, two backends.

Every effect is a pure function of ``(image, params)``, no RNG inside, so replay is exact
and the batched torch path (``[B, C, H, W]``) and the per-sample OpenCV/numpy path (one
HWC image) agree (uint8: within a few levels). Two devices keep them in step:

- Smooth maps (fog density, droplet alpha) are computed at a low resolution by ONE function
  written against a tiny array namespace (``NP`` or ``TORCH``), then upsampled bilinearly
  (``cv2.resize`` / ``F.interpolate``, the same half-pixel convention).
- Precipitation is rasterized exactly on integer pixels: drop ``k`` of a sample starts at
  a position read from a fixed uniform bank at ``offset + 2k`` (like the noise bank of
  ``ops.functional.noise``), and its streak covers pixels ``(y0 + j, x0 + round(j tan a))``
  for ``j < length``; both backends compute the same integer coordinates in float64, then
  blur the layer with the same box filter.
"""

from __future__ import annotations

import math
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

UBANK_SIZE = 1 << 20
_UBANK_KEY = 0x3C6EF372FE94F82B  # fixed: changing it moves every replayed drop

NP = SimpleNamespace(clip=np.clip, minimum=np.minimum, maximum=np.maximum, exp=np.exp, sqrt=np.sqrt,
                     cos=np.cos, sin=np.sin, atan2=np.arctan2, abs=np.abs)
TORCH = SimpleNamespace(clip=torch.clamp, minimum=torch.minimum, maximum=torch.maximum, exp=torch.exp,
                        sqrt=torch.sqrt, cos=torch.cos, sin=torch.sin, atan2=torch.atan2, abs=torch.abs)


# ---- shared ---------------------------------------------------------------------------
@lru_cache(maxsize=1)
def ubank_np() -> np.ndarray:
    """``[UBANK_SIZE]`` float64 uniforms in [0, 1) from splitmix64 (machine- and version-independent)."""
    x = np.arange(UBANK_SIZE, dtype=np.uint64) ^ np.uint64(_UBANK_KEY)
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    u = (x >> np.uint64(11)).astype(np.float64) * 2.0**-53
    u.flags.writeable = False
    return u


@lru_cache(maxsize=8)
def _ubank_torch(device: torch.device) -> Tensor:
    return torch.from_numpy(np.array(ubank_np())).to(device)


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
    """Clamp an [0, 1] result and return it in ``image``'s dtype (uint8 rounds half to even, like OpenCV)."""
    if image.dtype == torch.uint8:
        return (out01 * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    return out01.clamp(0.0, 1.0).to(image.dtype)


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


def fog_map(xp: Any, ys: Any, xs: Any, size: tuple[int, int], density: Any, gradient: Any, texture: float,
            freq: Any, phase: Any) -> Any:
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


def fog(image: Tensor, density: Tensor, gradient: Tensor, airlight: Tensor, texture: float,
        freq: Tensor, phase: Tensor) -> Tensor:
    """Depth-free haze ``x (1 - t) + A t`` with the opacity map ``t`` of ``fog_map``, batched."""
    h, w = image.shape[-2:]
    mh, mw = map_size(h, w, 48)
    ys, xs = map_grid(h, w, mh, mw, image)
    t = fog_map(TORCH, ys, xs, (h, w), col(density, image), col(gradient, image), texture,
                freq.to(image.device, torch.float32), phase.to(image.device, torch.float32))
    t = upsample(t[:, None], (h, w))
    x = as01(image)
    return finish(image, x + t.to(x.dtype) * (col(airlight, image, 3).to(x.dtype) - x))


def fog_np(image: np.ndarray, density: float, gradient: float, airlight: float, texture: float,
           freq: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Per-sample ``fog``; the map is built at <= 48 rows and upsampled with ``cv2.resize``."""
    if density == 0.0:
        return image
    h, w = image.shape[:2]
    mh, mw = map_size(h, w, 48)
    ys, xs = map_grid(h, w, mh, mw)
    t = fog_map(NP, ys, xs, (h, w), col([density]), col([gradient]), texture,
                np.asarray(freq, np.float32).reshape(1, -1, 2), np.asarray(phase, np.float32).reshape(1, -1))[0]
    t = upsample_np(np.ascontiguousarray(t, np.float32), (h, w))
    return blend_np(image, t, airlight * top_of(image))


# ---- rain and snow: exact streak rasterization ------------------------------------------
def _streak_coords(xp_t: bool, off: Any, count: Any, length: Any, slope: Any, size: tuple[int, int],
                   device: torch.device | None = None) -> tuple[Any, Any, Any]:
    """Flat pixel indices ``[B, K, L]`` of every streak pixel, and their validity mask.

    Drop ``k`` starts at ``y0 = floor(u0 (H + L)) - L``, ``x0 = floor(u1 (W + 2m)) - m`` with
    ``(u0, u1) = bank[offset + 2k], bank[offset + 2k + 1]`` and ``m = ceil(L |slope|)``, so
    streaks may enter through any border; pixel ``j`` of it is ``(y0 + j, x0 + round(j slope))``.
    """
    h, w = size
    if xp_t:
        bank = _ubank_torch(device or torch.device("cpu"))
        kmax, lmax = int(count.max()), int(length.max())
        k = torch.arange(kmax, device=bank.device, dtype=torch.int64)
        j = torch.arange(lmax, device=bank.device, dtype=torch.float64)
        i0 = (off.to(bank.device, torch.int64).reshape(-1, 1) + 2 * k) % UBANK_SIZE
        u0, u1 = bank[i0], bank[(i0 + 1) % UBANK_SIZE]
        ln = length.to(bank.device, torch.float64).reshape(-1, 1)
        sl = slope.to(bank.device, torch.float64).reshape(-1, 1)
        m = torch.ceil(ln * sl.abs())
        y0, x0 = torch.floor(u0 * (h + ln)) - ln, torch.floor(u1 * (w + 2 * m)) - m
        dx = torch.round(j * sl)  # [B, L]
        ys = y0[:, :, None] + j[None, None, :]
        xs = x0[:, :, None] + dx[:, None, :]
        valid = (k.reshape(1, -1, 1) < count.to(bank.device).reshape(-1, 1, 1)) & (j.reshape(1, 1, -1) < ln[:, :, None])
        valid &= (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        return ys, xs, valid
    bank_n = ubank_np()
    kk = np.arange(int(count))
    i0n = (int(off) + 2 * kk) % UBANK_SIZE
    ln_f, sl_f = float(length), float(slope)
    mm = math.ceil(ln_f * abs(sl_f))
    y0n = np.floor(bank_n[i0n] * (h + ln_f)) - ln_f
    x0n = np.floor(bank_n[(i0n + 1) % UBANK_SIZE] * (w + 2 * mm)) - mm
    jn = np.arange(int(length), dtype=np.float64)
    ysn = y0n[:, None] + jn[None, :]
    xsn = x0n[:, None] + np.rint(jn * sl_f)[None, :]
    validn = (ysn >= 0) & (ysn < h) & (xsn >= 0) & (xsn < w)
    return ysn, xsn, validn


def streak_layer(off: Tensor, count: Tensor, length: Tensor, slope: Tensor, size: tuple[int, int],
                 device: torch.device) -> Tensor:
    """``[B, 1, H, W]`` float32 layer, 1 on streak pixels and 0 elsewhere (see ``_streak_coords``)."""
    h, w = size
    b = int(off.shape[0])
    layer = torch.zeros(b * h * w, device=device, dtype=torch.float32)
    if int(count.max()) > 0 and int(length.max()) > 0:
        ys, xs, valid = _streak_coords(True, off, count, length, slope, size, device)
        rows = torch.arange(b, device=ys.device, dtype=torch.float64).reshape(-1, 1, 1) * (h * w)
        flat = (rows + ys * w + xs)[valid].to(torch.int64)
        layer[flat.to(device)] = 1.0  # every write is the same value: duplicates are harmless
    return layer.reshape(b, 1, h, w)


def streak_layer_np(off: int, count: int, length: int, slope: float, size: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` uint8 layer, 1 on streak pixels (the same pixels as ``streak_layer``)."""
    layer = np.zeros(size, np.uint8)
    if count > 0 and length > 0:
        ys, xs, valid = _streak_coords(False, off, count, length, slope, size)
        layer.reshape(-1)[(ys * size[1] + xs)[valid].astype(np.int64)] = 1
    return layer


def _per_value(values: Tensor, layer: Tensor, fn: Any) -> Tensor:
    """Apply ``fn(layer_rows, v)`` to the rows sharing each distinct int ``v`` (few distinct values)."""
    out = layer.clone()
    for v in torch.unique(values).tolist():
        sel = values == v
        out[sel] = fn(layer[sel], int(v))
    return out


def dilate(layer: Tensor, size: Tensor) -> Tensor:
    """Per-sample square dilation by odd ``size`` ``[B]`` (== ``cv2.dilate`` with a ones kernel)."""
    return _per_value(size.to(layer.device), layer,
                      lambda t, k: t if k <= 1 else F.max_pool2d(t, k, stride=1, padding=k // 2))


def _box(t: Tensor, k: int) -> Tensor:
    h, w = t.shape[-2:]
    if k <= 1:
        return t
    p = k // 2
    mode = "reflect" if p < h and p < w else "replicate"
    t = F.pad(t, (p, p, p, p), mode=mode)
    return F.avg_pool2d(F.avg_pool2d(t, (k, 1), stride=1), (1, k), stride=1)


def box_blur(layer: Tensor, size: Tensor) -> Tensor:
    """Per-sample box blur by odd ``size`` ``[B]``, reflect-101 borders (== ``cv2.blur``)."""
    return _per_value(size.to(layer.device), layer, _box)


def box_blur_np(layer: np.ndarray, k: int) -> np.ndarray:
    if k <= 1:
        return layer
    h, w = layer.shape[:2]
    border = cv2.BORDER_REFLECT_101 if k // 2 < h and k // 2 < w else cv2.BORDER_REPLICATE
    return np.asarray(cv2.blur(layer, (k, k), borderType=border))


def soften(layer: Tensor, size: Tensor, gain: Tensor) -> Tensor:
    """Box-blur a 0/1 streak layer twice by ``size`` (a tent: soft, round-ish flakes and streaks),
    scale by ``gain`` and quantize to uint8 levels ``[B, 1, H, W]`` (as ``soften_np``)."""
    soft = box_blur(box_blur(layer, size), size)
    out: Tensor = (soft * (255.0 * col(gain, layer, 3))).round_().clamp_(0, 255)
    return out


def soften_np(layer: np.ndarray, k: int, gain: float) -> np.ndarray:
    """Per-sample ``soften``: two ``cv2.blur`` passes in float32, one saturating conversion to uint8."""
    f = box_blur_np(box_blur_np(layer.astype(np.float32), k), k) if k > 1 else layer.astype(np.float32)
    return np.asarray(cv2.convertScaleAbs(f, alpha=255.0 * gain))  # f >= 0: abs is a no-op


def precipitation(image: Tensor, layer255: Tensor, keep: Tensor, add: Tensor, bright: Tensor) -> Tensor:
    """``keep * x + add + bright * layer`` (``layer255`` in uint8 levels)."""
    x = as01(image)
    lay = layer255.to(x.dtype) / 255.0
    out = col(keep, image, 3).to(x.dtype) * x + col(add, image, 3).to(x.dtype) + col(bright, image, 3).to(x.dtype) * lay
    return finish(image, out)


def precipitation_np(image: np.ndarray, layer: np.ndarray, keep: float, add: float, bright: float) -> np.ndarray:
    """Per-sample ``precipitation`` (``layer`` uint8 ``[H, W]``): one saturating ``cv2.addWeighted`` for uint8."""
    c = 1 if image.ndim == 2 else image.shape[2]
    lay = layer if c == 1 else np.asarray(cv2.merge([layer] * c))
    lay = lay.reshape(image.shape)
    if image.dtype == np.uint8:
        return np.asarray(cv2.addWeighted(image, keep, lay, bright, add * 255.0, dtype=cv2.CV_8U)).reshape(image.shape)
    out = image.astype(np.float32) * np.float32(keep) + lay.astype(np.float32) * np.float32(bright / 255.0)
    out += np.float32(add)
    return to_dtype_np(out, image)


# ---- lens droplets ----------------------------------------------------------------------
def droplet_map(xp: Any, ys: Any, xs: Any, size: tuple[int, int], centers: Any, radii: Any, on: Any) -> tuple[Any, Any]:
    """``[B, mh, mw]`` droplet alpha (soft discs) and rim weight (a ring at the edge of each disc).

    ``centers`` ``[B, K, 2]`` (x, y as fractions of W, H), ``radii`` ``[B, K]`` fractions of
    ``min(H, W)``, ``on`` ``[B, K]`` 1 for the droplets a sample has, 0 for the rest.
    """
    h, w = size
    alpha, rim = 0.0 * ys * xs, 0.0 * ys * xs
    for k in range(centers.shape[1]):
        cx, cy = centers[:, k, 0:1, None] * w, centers[:, k, 1:2, None] * h
        r = radii[:, k : k + 1, None] * min(h, w) + 1e-3
        d = xp.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) / r  # 1 at the edge
        disc = xp.clip((1.0 - d) * 6.0, 0.0, 1.0) * on[:, k : k + 1, None]
        ring = xp.clip(1.0 - xp.abs(d - 0.85) * 8.0, 0.0, 1.0) * on[:, k : k + 1, None]
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


def lens_droplets_np(image: np.ndarray, centers: np.ndarray, radii: np.ndarray, on: np.ndarray, blur: int) -> np.ndarray:
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
    blurred = box_blur_np(box_blur_np(xf, blur), blur) * np.float32(1.08)
    al = a[:, :, :1] if image.ndim == 3 else a[:, :, 0]
    rm = a[:, :, 1:] if image.ndim == 3 else a[:, :, 1]
    out = (xf + al * (blurred - xf)) * (1.0 - np.float32(0.35) * rm)
    return to_dtype_np(np.asarray(out, np.float32), image)
