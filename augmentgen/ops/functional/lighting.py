"""Lighting and sensor kernels: sun flare, shadows, night, sensor noise, JPEG; two backends.

The same conventions as ``ops.functional.weather``: smooth maps are computed at a low
resolution by one function over the ``NP`` / ``TORCH`` namespaces and upsampled with the
same bilinear rule; noise comes from the fixed bank of ``ops.functional.noise``; JPEG is a
real encode/decode per sample (OpenCV on the per-sample path, ``torchvision.io`` on the
batched path, both libjpeg-turbo at the same quality and 4:2:0 chroma subsampling).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from augmentgen.ops.functional import noise as fnoise
from augmentgen.ops.functional.weather import (
    NP,
    TORCH,
    as01,
    blend_np,
    cells,
    col,
    finish,
    map_grid,
    map_size,
    to_dtype_np,
    top_of,
    upsample,
    upsample_np,
)

FLARE_COLOR = (1.0, 0.93, 0.78)  # warm white of the sun's core


# ---- sun flare --------------------------------------------------------------------------
def flare_map(
    xp: Any,
    ys: Any,
    xs: Any,
    size: tuple[int, int],
    center: Any,
    radius: Any,
    intensity: Any,
    rays: Any,
    ghost_t: Any,
    ghost_r: Any,
    ghost_a: Any,
    ghost_hue: Any,
) -> list[Any]:
    """Per-channel ``[B, mh, mw]`` flare light: a halo with a starburst and a row of coloured ghosts.

    ``center`` ``[B, 2]`` (x, y fractions), ``radius`` ``[B, 1, 1]`` halo radius as a fraction of
    ``max(H, W)``, ``rays`` the starburst rotation (radians); ghost ``g`` sits at
    ``center + t_g (mid - center)`` (the reflections line up through the image centre, as in a
    real lens), with radius ``ghost_r`` (fraction of ``max(H, W)``), opacity ``ghost_a`` and hue
    ``ghost_hue``. A ghost is exactly 0 outside its radius, so one sample on the numpy path
    only computes the map cells its ghosts cover.
    """
    h, w = size
    s = float(max(h, w))
    cx, cy = center[:, 0:1, None] * w, center[:, 1:2, None] * h
    dy, dx = ys - cy, xs - cx  # [B, mh, 1], [B, 1, mw]
    d = xp.sqrt(dy * dy + dx * dx) * (1.0 / (radius * s + 1e-3))
    # core (saturates), halo over ``radius``, and a faint glow over 2.5x it that washes out contrast
    halo = xp.clip(1.0 - 4.0 * d, 0.0, 1.0) + 0.9 * xp.clip(1.0 - d, 0.0, 1.0) ** 1.5
    halo = halo + 0.5 * xp.clip(1.0 - 0.4 * d, 0.0, 1.0) ** 2
    star = ((0.5 + 0.5 * xp.cos(6.0 * xp.atan2(dy, dx) + rays)) ** 8) * xp.clip(1.0 - 0.6 * d, 0.0, 1.0) ** 3
    light = intensity * (halo + 0.5 * star)
    chans = [light * c for c in FLARE_COLOR]
    crop = xp is NP and center.shape[0] == 1
    mh, mw = int(ys.shape[1]), int(xs.shape[2])
    for g in range(ghost_t.shape[1]):
        t = ghost_t[:, g : g + 1, None]
        gx, gy = cx + t * (0.5 * w - cx), cy + t * (0.5 * h - cy)
        rg = ghost_r[:, g : g + 1, None] * s + 1e-3
        if crop:
            r0, x0, y0 = float(rg.item()), float(gx.item()), float(gy.item())
            sy, sx = cells(y0 - r0, y0 + r0, h, mh), cells(x0 - r0, x0 + r0, w, mw)
        else:
            sy = sx = slice(None)
        gys, gxs = ys[:, sy] - gy, xs[:, :, sx] - gx
        dg = xp.sqrt(gys * gys + gxs * gxs) * (1.0 / rg)
        disc = (
            xp.clip((1.0 - dg) * 4.0, 0.0, 1.0) * (0.6 + 0.4 * dg) * (ghost_a[:, g : g + 1, None] * intensity)
        )
        hue = ghost_hue[:, g : g + 1, None] * (2.0 * math.pi)
        for ci in range(3):
            tint = 0.65 + 0.35 * xp.cos(hue + ci * (2.0 * math.pi / 3.0))
            if crop:
                chans[ci][:, sy, sx] += disc * tint
            else:
                chans[ci] = chans[ci] + disc * tint
    return [xp.clip(c, 0.0, 1.0) for c in chans]


def _flare_args(p: dict[str, Any], like: Tensor | None) -> list[Any]:
    if like is None:
        f = [np.asarray(p[k], np.float32) for k in ("ghost_t", "ghost_r", "ghost_a", "ghost_hue")]
        return [
            np.asarray(p["center"], np.float32).reshape(-1, 2),
            col(p["radius"]),
            col(p["intensity"]),
            col(p["rays"]),
        ] + [a.reshape(1, -1) for a in f]
    kw: dict[str, Any] = {"device": like.device, "dtype": torch.float32}
    return [
        torch.as_tensor(p["center"]).to(**kw),
        col(p["radius"], like),
        col(p["intensity"], like),
        col(p["rays"], like),
    ] + [torch.as_tensor(p[k]).to(**kw) for k in ("ghost_t", "ghost_r", "ghost_a", "ghost_hue")]


FLARE_ROWS = 96  # the flare's map resolution: smooth light, ghosts of >= 1% of the image


def sun_flare(image: Tensor, p: dict[str, Any]) -> Tensor:
    """Screen-blend ``x + L (1 - x)`` of the ``flare_map`` light ``L`` (RGB; grey images get its mean).

    uint8 quantizes ``L`` to levels at map resolution, then ``(255 - x) L / 255`` to whole levels,
    as the per-sample path does with ``cv2.multiply`` and ``cv2.add``.
    """
    h, w = image.shape[-2:]
    mh, mw = map_size(h, w, FLARE_ROWS)
    ys, xs = map_grid(h, w, mh, mw, image)
    light = torch.stack(flare_map(TORCH, ys, xs, (h, w), *_flare_args(p, image)), 1)
    if image.shape[1] != 3:
        light = light.mean(1, keepdim=True)
    if image.dtype == torch.uint8:
        l8 = upsample((light * 255.0).round(), (h, w)).round()
        x8 = image.to(torch.float32)
        return (x8 + ((255.0 - x8) * l8 / 255.0).round()).clamp_(0, 255).to(torch.uint8)
    x = as01(image)
    return finish(image, x + upsample(light, (h, w)).to(x.dtype) * (1.0 - x))


def sun_flare_np(image: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    h, w = image.shape[:2]
    mh, mw = map_size(h, w, FLARE_ROWS)
    ys, xs = map_grid(h, w, mh, mw)
    chans = flare_map(NP, ys, xs, (h, w), *_flare_args(p, None))
    light = np.stack([c[0] for c in chans], -1)
    if image.ndim == 2 or image.shape[2] != 3:
        light = light.mean(-1, keepdims=True)
    if image.dtype == np.uint8:
        l8 = np.rint(light * np.float32(255.0)).astype(np.uint8)
        up = np.asarray(cv2.resize(l8, (w, h), interpolation=cv2.INTER_LINEAR)).reshape(image.shape)
        out = cv2.add(image, cv2.multiply(cv2.bitwise_not(image), up, scale=1.0 / 255.0))
        return np.asarray(out).reshape(image.shape)
    up_f = upsample_np(np.ascontiguousarray(light, np.float32), (h, w)).reshape(image.shape)
    return blend_np(image, up_f, top_of(image))


# ---- shadows ----------------------------------------------------------------------------
def shadow_map(xp: Any, ys: Any, xs: Any, vx: Any, vy: Any, on: Any, soft: float) -> Any:
    """``[B, mh, mw]`` coverage of convex polygons: ``clip(0.5 + d / soft, 0, 1)``, ``d`` the signed
    distance to the nearest edge line (positive inside), so edges are a ``soft``-pixel penumbra.

    ``vx, vy`` ``[B, K, V]`` vertex pixels in order around each polygon; ``on`` ``[B, K]``. Each
    edge's distance is linear in (x, y): a ``[B, mh, 1]`` term plus a ``[B, 1, mw]`` term.
    """
    cover = 0.0 * ys * xs
    nv = vx.shape[2]
    for k in range(vx.shape[1]):
        px, py = vx[:, k], vy[:, k]  # [B, V]
        area: Any = 0.0
        for v in range(nv):
            area = area + px[:, v] * py[:, (v + 1) % nv] - px[:, (v + 1) % nv] * py[:, v]
        sign = ((area >= 0) * 2.0 - 1.0)[:, None, None]
        d: Any = None
        for v in range(nv):
            u = (v + 1) % nv
            ax, ay = px[:, v : v + 1, None], py[:, v : v + 1, None]
            ex, ey = px[:, u : u + 1, None] - ax, py[:, u : u + 1, None] - ay
            g = sign / ((xp.sqrt(ex * ex + ey * ey) + 1e-6) * soft)
            if xp is NP:
                g = g.astype(np.float32)  # the bool-derived sign is float64; keep the map float32
            de = ((ex * g) * (ys - ay) + 0.5) + (-ey * g) * (xs - ax)  # [B, mh, 1] + [B, 1, mw]
            d = de if d is None else xp.minimum(d, de)
        cover = xp.maximum(cover, xp.clip(d, 0.0, 1.0) * on[:, k : k + 1, None])
    return cover


SHADOW_ROWS = 128  # penumbra of 1.5 map cells: ~8 px at 720p


def _shadow_factor(
    xp: Any, size: tuple[int, int], vx: Any, vy: Any, on: Any, intensity: Any, like: Tensor | None
) -> Any:
    """``[B, mh, mw]`` light factor ``1 - intensity * coverage`` at map resolution."""
    h, w = size
    mh, mw = map_size(h, w, SHADOW_ROWS)
    ys, xs = map_grid(h, w, mh, mw, like)
    soft = max(1.5, 1.5 * h / mh)  # at least one map cell, so the map resolves the penumbra
    return 1.0 - intensity * shadow_map(xp, ys, xs, vx, vy, on, soft)


def shadow(image: Tensor, vx: Tensor, vy: Tensor, on: Tensor, intensity: Tensor) -> Tensor:
    """Darken the polygons: ``x (1 - intensity * coverage)`` (uint8: the factor in whole levels, as
    ``shadow_np`` does with ``cv2.multiply``)."""
    h, w = image.shape[-2:]
    kw: dict[str, Any] = {"device": image.device, "dtype": torch.float32}
    f = _shadow_factor(TORCH, (h, w), vx.to(**kw), vy.to(**kw), on.to(**kw), col(intensity, image), image)
    if image.dtype == torch.uint8:
        f8 = upsample((f[:, None] * 255.0).round(), (h, w)).round()
        return (image.to(torch.float32) * f8 / 255.0).round_().clamp_(0, 255).to(torch.uint8)
    x = as01(image)
    return finish(image, x * upsample(f[:, None], (h, w)).to(x.dtype))


def shadow_np(
    image: np.ndarray, vx: np.ndarray, vy: np.ndarray, on: np.ndarray, intensity: float
) -> np.ndarray:
    if intensity == 0.0 or not np.asarray(on).any():
        return image
    h, w = image.shape[:2]
    c = 1 if image.ndim == 2 else image.shape[2]
    fv = [np.asarray(a, np.float32) for a in (vx, vy)]
    f = _shadow_factor(
        NP,
        (h, w),
        fv[0].reshape(1, *fv[0].shape[-2:]),
        fv[1].reshape(1, *fv[1].shape[-2:]),
        np.asarray(on, np.float32).reshape(1, -1),
        col([intensity]),
        None,
    )[0]
    if image.dtype == np.uint8:
        f8 = np.asarray(
            cv2.resize(
                np.rint(f * np.float32(255.0)).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR
            )
        )
        f8 = f8 if c == 1 else np.asarray(cv2.merge([f8] * c))
        return np.asarray(cv2.multiply(image, f8.reshape(image.shape), scale=1.0 / 255.0)).reshape(
            image.shape
        )
    up = upsample_np(np.ascontiguousarray(f, np.float32), (h, w))
    return to_dtype_np(image.astype(np.float32) * (up if image.ndim == 2 else up[:, :, None]), image)


# ---- night ------------------------------------------------------------------------------
def night_tint(blue: Any, channels: int) -> list[Any]:
    """Per-channel gains of the blue shift: red loses ``0.6 blue``, green ``0.3 blue``."""
    if channels != 3:
        return [1.0 + 0.0 * blue] * channels
    return [1.0 - 0.6 * blue, 1.0 - 0.3 * blue, 1.0 + 0.0 * blue]


def night(
    image: Tensor, brightness: Tensor, gamma: Tensor, blue: Tensor, sigma: Tensor, offset: Tensor
) -> Tensor:
    """Low light: ``brightness * x ** gamma * tint_c`` (blue shift), then sensor noise ``sigma``."""
    x = as01(image)
    tint = torch.stack(night_tint(col(blue, image, 0), int(x.shape[1])), 1).reshape(x.shape[0], -1, 1, 1)
    tone = col(brightness, image, 3) * x.clamp_min(0.0).pow(col(gamma, image, 3)) * tint
    toned = finish(image, tone.to(x.dtype))  # uint8 rounds here, as the per-sample LUT does
    return fnoise.gaussian_noise(toned, sigma.to(image.device), offset.to(image.device))


def night_np(
    image: np.ndarray, brightness: float, gamma: float, blue: float, sigma: float, offset: int
) -> np.ndarray:
    c = 1 if image.ndim == 2 else image.shape[2]
    tint = np.asarray(night_tint(np.float32(blue), c), np.float32)
    if image.dtype == np.uint8:
        levels = np.arange(256, dtype=np.float32) / np.float32(255.0)
        tone = np.float32(brightness) * levels ** np.float32(gamma)
        lut = np.rint(np.clip(tone[:, None] * tint[None, :], 0.0, 1.0) * 255.0).astype(np.uint8)
        if c == 1 or c > 4:
            toned = np.stack(
                [cv2.LUT(image[..., i] if image.ndim == 3 else image, lut[:, i]) for i in range(c)], -1
            )
        else:
            toned = np.asarray(cv2.LUT(image, lut.reshape(256, 1, c)))
        toned = toned.reshape(image.shape)
    else:
        toned = to_dtype_np(
            np.float32(brightness) * np.maximum(image, 0.0) ** np.float32(gamma) * tint, image
        )
    return fnoise.gaussian_noise_np(toned, float(sigma), int(offset))


# ---- sensor noise -----------------------------------------------------------------------
def sensor_noise(
    image: Tensor, shot: Tensor, read: Tensor, chroma: Tensor, off_luma: Tensor, off_chroma: Tensor
) -> Tensor:
    """Poissonian-Gaussian noise ``x + sqrt(shot x + read^2) z`` (Foi et al. 2008,
    https://doi.org/10.1109/TIP.2008.2001399), ``z`` mixing a luma field shared by the
    channels with per-channel chroma noise: ``z = sqrt(1 - chroma) z_l + sqrt(chroma) z_c``."""
    b, c, h, w = image.shape
    zl = fnoise.noise_windows(off_luma, h * w, image.device).reshape(b, 1, h, w)
    zc = fnoise.noise_windows(off_chroma, h * w * c, image.device).reshape(b, h, w, c).permute(0, 3, 1, 2)
    ch = col(chroma, image, 3)
    z = (1.0 - ch).sqrt() * zl + ch.sqrt() * zc
    x = as01(image)
    if image.dtype == torch.uint8:  # the std of a uint8 pixel, computed as the per-sample LUT does
        std = 255.0 * (col(shot, image, 3) * x + col(read, image, 3) ** 2).sqrt()
        out: Tensor = (image.to(torch.float32) + std * z).round_().clamp_(0, 255).to(torch.uint8)
        return out
    var = col(shot, image, 3).to(x.dtype) * x.clamp_min(0.0) + col(read, image, 3).to(x.dtype) ** 2
    std = torch.where(var > 0, var.clamp_min(1e-12).sqrt(), torch.zeros_like(var))
    return finish(image, x + std * z.to(x.dtype))


def sensor_noise_np(
    image: np.ndarray, shot: float, read: float, chroma: float, off_luma: int, off_chroma: int
) -> np.ndarray:
    if shot == 0.0 and read == 0.0:
        return image
    h, w = image.shape[:2]
    c = 1 if image.ndim == 2 else image.shape[2]
    zl = fnoise.noise_window_np(off_luma, h * w).reshape(h, w, 1)
    zc = fnoise.noise_window_np(off_chroma, h * w * c).reshape(h, w, c)
    chf = np.float32(chroma)
    zl3 = zl.reshape(h, w) if c == 1 else np.asarray(cv2.merge([zl.reshape(h, w)] * c))
    # one OpenCV pass each (numpy broadcasting over the channel axis is several times slower)
    z = np.asarray(
        cv2.addWeighted(zl3, float(np.sqrt(1.0 - chf)), zc.reshape(zl3.shape), float(np.sqrt(chf)), 0.0)
    )
    if image.dtype == np.uint8:
        lut = 255.0 * np.sqrt(
            np.float32(shot) * (np.arange(256, dtype=np.float32) / 255.0) + np.float32(read) ** 2
        )
        img = image.reshape(z.shape)
        std = cv2.LUT(img, lut.astype(np.float32))
        out = cv2.add(img, cv2.multiply(std, z), dtype=cv2.CV_8U)  # rounds and saturates
        return np.asarray(out).reshape(image.shape)
    z = z.reshape(h, w, c)
    x = image.reshape(h, w, c).astype(np.float32)
    std = np.sqrt(np.float32(shot) * np.maximum(x, 0.0) + np.float32(read) ** 2)
    return to_dtype_np(x + std * z, image)


# ---- JPEG -------------------------------------------------------------------------------
def _u8(image: Tensor) -> Tensor:
    return (
        image
        if image.dtype == torch.uint8
        else (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    )


def jpeg(image: Tensor, quality: Tensor) -> Tensor:
    """Real JPEG round trip per sample (``torchvision.io``); float images get a straight-through gradient."""
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

    u8 = _u8(image).cpu()
    mode = ImageReadMode.GRAY if u8.shape[1] == 1 else ImageReadMode.RGB
    rows = [
        decode_jpeg(encode_jpeg(u8[i].contiguous(), quality=int(q)), mode=mode)
        for i, q in enumerate(quality.reshape(-1).tolist())
    ]
    dec = torch.stack(rows).to(image.device)
    if image.dtype == torch.uint8:
        return dec
    coded = (dec.to(torch.float32) / 255.0).to(image.dtype)
    return image + (coded - image).detach()


def jpeg_np(image: np.ndarray, quality: int) -> np.ndarray:
    """Real JPEG round trip with ``cv2.imencode``/``cv2.imdecode`` (RGB is coded as the BGR it is)."""
    u8 = image if image.dtype == np.uint8 else np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    gray = u8.ndim == 2 or u8.shape[2] == 1
    src = u8.reshape(u8.shape[:2]) if gray else np.asarray(cv2.cvtColor(u8, cv2.COLOR_RGB2BGR))
    ok, buf = cv2.imencode(".jpg", src, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"jpeg: OpenCV could not encode an image of shape {image.shape}")
    dec = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if dec is None:
        raise ValueError(f"jpeg: OpenCV could not decode its own encoding of an image of shape {image.shape}")
    out = dec.reshape(image.shape) if gray else np.asarray(cv2.cvtColor(dec, cv2.COLOR_BGR2RGB))
    return (
        out if image.dtype == np.uint8 else (out.astype(np.float32) / np.float32(255.0)).astype(image.dtype)
    )
