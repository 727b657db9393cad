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
def flare_map(xp: Any, ys: Any, xs: Any, size: tuple[int, int], center: Any, radius: Any, intensity: Any,
              rays: Any, ghost_t: Any, ghost_r: Any, ghost_a: Any, ghost_hue: Any) -> list[Any]:
    """Per-channel ``[B, mh, mw]`` flare light: a halo with a starburst and a row of coloured ghosts.

    ``center`` ``[B, 2]`` (x, y fractions), ``radius`` halo radius as a fraction of ``max(H, W)``,
    ``rays`` the starburst rotation (radians); ghost ``g`` sits at ``center + t_g (mid - center)``
    (the reflections line up through the image centre, as in a real lens), with radius
    ``ghost_r`` (fraction of ``max(H, W)``), opacity ``ghost_a`` and hue ``ghost_hue``.
    """
    h, w = size
    s = float(max(h, w))
    cx, cy = center[:, 0:1, None] * w, center[:, 1:2, None] * h
    dx, dy = xs - cx, ys - cy
    d = xp.sqrt(dx * dx + dy * dy) / (radius * s + 1e-3)
    # core (saturates), halo over ``radius``, and a faint glow over 2.5x it that washes out contrast
    halo = xp.clip(1.0 - 4.0 * d, 0.0, 1.0) + 0.9 * xp.clip(1.0 - d, 0.0, 1.0) ** 1.5
    halo = halo + 0.5 * xp.clip(1.0 - 0.4 * d, 0.0, 1.0) ** 2
    star = ((0.5 + 0.5 * xp.cos(6.0 * xp.atan2(dy, dx) + rays)) ** 8) * xp.clip(1.0 - 0.6 * d, 0.0, 1.0) ** 3
    light = intensity * (halo + 0.5 * star)
    chans = [light * c for c in FLARE_COLOR]
    for g in range(ghost_t.shape[1]):
        t = ghost_t[:, g : g + 1, None]
        gx, gy = cx + t * (0.5 * w - cx), cy + t * (0.5 * h - cy)
        dg = xp.sqrt((xs - gx) ** 2 + (ys - gy) ** 2) / (ghost_r[:, g : g + 1, None] * s + 1e-3)
        disc = xp.clip((1.0 - dg) * 4.0, 0.0, 1.0) * (0.6 + 0.4 * dg) * ghost_a[:, g : g + 1, None] * intensity
        hue = ghost_hue[:, g : g + 1, None] * (2.0 * math.pi)
        for ci in range(3):
            chans[ci] = chans[ci] + disc * (0.65 + 0.35 * xp.cos(hue + ci * (2.0 * math.pi / 3.0)))
    return [xp.clip(c, 0.0, 1.0) for c in chans]


def _flare_args(p: dict[str, Any], like: Tensor | None) -> list[Any]:
    if like is None:
        f = [np.asarray(p[k], np.float32) for k in ("ghost_t", "ghost_r", "ghost_a", "ghost_hue")]
        return [np.asarray(p["center"], np.float32).reshape(-1, 2), col(p["radius"]), col(p["intensity"]),
                col(p["rays"])] + [a.reshape(1, -1) for a in f]
    kw: dict[str, Any] = {"device": like.device, "dtype": torch.float32}
    return [torch.as_tensor(p["center"]).to(**kw), col(p["radius"], like), col(p["intensity"], like),
            col(p["rays"], like)] + [torch.as_tensor(p[k]).to(**kw) for k in ("ghost_t", "ghost_r", "ghost_a", "ghost_hue")]


def sun_flare(image: Tensor, p: dict[str, Any]) -> Tensor:
    """Screen-blend ``x + L (1 - x)`` of the ``flare_map`` light ``L`` (RGB; grey images get its mean)."""
    h, w = image.shape[-2:]
    mh, mw = map_size(h, w, 160)
    ys, xs = map_grid(h, w, mh, mw, image)
    light = upsample(torch.stack(flare_map(TORCH, ys, xs, (h, w), *_flare_args(p, image)), 1), (h, w))
    if image.shape[1] != 3:
        light = light.mean(1, keepdim=True)
    x = as01(image)
    return finish(image, x + light.to(x.dtype) * (1.0 - x))


def sun_flare_np(image: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    h, w = image.shape[:2]
    mh, mw = map_size(h, w, 160)
    ys, xs = map_grid(h, w, mh, mw)
    chans = flare_map(NP, ys, xs, (h, w), *_flare_args(p, None))
    light = upsample_np(np.ascontiguousarray(np.stack([c[0] for c in chans], -1), np.float32), (h, w))
    if image.ndim == 2 or image.shape[2] != 3:
        light = light.mean(-1, keepdims=image.ndim == 3)
    return blend_np(image, light, top_of(image))


# ---- shadows ----------------------------------------------------------------------------
def shadow_map(xp: Any, ys: Any, xs: Any, size: tuple[int, int], vx: Any, vy: Any, on: Any, soft: float) -> Any:
    """``[B, mh, mw]`` coverage of convex polygons: ``clip(0.5 + d / soft, 0, 1)``, ``d`` the signed
    distance to the nearest edge line (positive inside), so edges are a ``soft``-pixel penumbra.

    ``vx, vy`` ``[B, K, V]`` vertex pixels in order around each polygon; ``on`` ``[B, K]``.
    """
    cover = 0.0 * ys * xs
    nv = vx.shape[2]
    for k in range(vx.shape[1]):
        px, py = vx[:, k], vy[:, k]  # [B, V]
        area: Any = 0.0
        for v in range(nv):
            area = area + px[:, v] * py[:, (v + 1) % nv] - px[:, (v + 1) % nv] * py[:, v]
        sign = (area >= 0) * 2.0 - 1.0
        d: Any = None
        for v in range(nv):
            ax, ay = px[:, v : v + 1, None], py[:, v : v + 1, None]
            ex, ey = px[:, (v + 1) % nv : (v + 1) % nv + 1, None] - ax, py[:, (v + 1) % nv : (v + 1) % nv + 1, None] - ay
            norm = xp.sqrt(ex * ex + ey * ey) + 1e-6
            de = (ex * (ys - ay) - ey * (xs - ax)) / norm * sign[:, None, None]
            d = de if d is None else xp.minimum(d, de)
        cover = xp.maximum(cover, xp.clip(0.5 + d / soft, 0.0, 1.0) * on[:, k : k + 1, None])
    return cover


def _shadow_cover(xp: Any, size: tuple[int, int], vx: Any, vy: Any, on: Any, like: Tensor | None) -> Any:
    h, w = size
    mh, mw = map_size(h, w, 180)
    ys, xs = map_grid(h, w, mh, mw, like)
    soft = max(1.5, 1.5 * h / mh)  # at least one map cell, so the map resolves the penumbra
    return shadow_map(xp, ys, xs, size, vx, vy, on, soft)


def shadow(image: Tensor, vx: Tensor, vy: Tensor, on: Tensor, intensity: Tensor) -> Tensor:
    """Darken the polygons: ``x (1 - intensity * coverage)``."""
    h, w = image.shape[-2:]
    kw: dict[str, Any] = {"device": image.device, "dtype": torch.float32}
    cov = _shadow_cover(TORCH, (h, w), vx.to(**kw), vy.to(**kw), on.to(**kw), image)
    cov = upsample(cov[:, None], (h, w))
    x = as01(image)
    return finish(image, x * (1.0 - col(intensity, image, 3).to(x.dtype) * cov.to(x.dtype)))


def shadow_np(image: np.ndarray, vx: np.ndarray, vy: np.ndarray, on: np.ndarray, intensity: float) -> np.ndarray:
    if intensity == 0.0 or not np.asarray(on).any():
        return image
    h, w = image.shape[:2]
    f = [np.asarray(a, np.float32) for a in (vx, vy)]
    cov = _shadow_cover(NP, (h, w), f[0].reshape(1, *f[0].shape[-2:]), f[1].reshape(1, *f[1].shape[-2:]),
                        np.asarray(on, np.float32).reshape(1, -1), None)[0]
    factor = upsample_np(np.ascontiguousarray(1.0 - np.float32(intensity) * cov, np.float32), (h, w))
    if image.ndim == 3 and image.shape[2] > 1:
        factor = np.asarray(cv2.merge([factor] * image.shape[2]))
    factor = factor.reshape(image.shape)
    if image.dtype == np.uint8:
        return np.asarray(cv2.multiply(image, factor, dtype=cv2.CV_8U)).reshape(image.shape)
    return to_dtype_np(image.astype(np.float32) * factor, image)


# ---- night ------------------------------------------------------------------------------
def night_tint(blue: Any, channels: int) -> list[Any]:
    """Per-channel gains of the blue shift: red loses ``0.6 blue``, green ``0.3 blue``."""
    if channels != 3:
        return [1.0 + 0.0 * blue] * channels
    return [1.0 - 0.6 * blue, 1.0 - 0.3 * blue, 1.0 + 0.0 * blue]


def night(image: Tensor, brightness: Tensor, gamma: Tensor, blue: Tensor, sigma: Tensor, offset: Tensor) -> Tensor:
    """Low light: ``brightness * x ** gamma * tint_c`` (blue shift), then sensor noise ``sigma``."""
    x = as01(image)
    tint = torch.stack(night_tint(col(blue, image, 0), int(x.shape[1])), 1).reshape(x.shape[0], -1, 1, 1)
    tone = col(brightness, image, 3) * x.clamp_min(0.0).pow(col(gamma, image, 3)) * tint
    toned = finish(image, tone.to(x.dtype))  # uint8 rounds here, as the per-sample LUT does
    return fnoise.gaussian_noise(toned, sigma.to(image.device), offset.to(image.device))


def night_np(image: np.ndarray, brightness: float, gamma: float, blue: float, sigma: float, offset: int) -> np.ndarray:
    c = 1 if image.ndim == 2 else image.shape[2]
    tint = np.asarray(night_tint(np.float32(blue), c), np.float32)
    if image.dtype == np.uint8:
        levels = np.arange(256, dtype=np.float32) / np.float32(255.0)
        tone = np.float32(brightness) * levels ** np.float32(gamma)
        lut = np.rint(np.clip(tone[:, None] * tint[None, :], 0.0, 1.0) * 255.0).astype(np.uint8)
        if c == 1 or c > 4:
            toned = np.stack([cv2.LUT(image[..., i] if image.ndim == 3 else image, lut[:, i]) for i in range(c)], -1)
        else:
            toned = np.asarray(cv2.LUT(image, lut.reshape(256, 1, c)))
        toned = toned.reshape(image.shape)
    else:
        toned = to_dtype_np(np.float32(brightness) * np.maximum(image, 0.0) ** np.float32(gamma) * tint, image)
    return fnoise.gaussian_noise_np(toned, float(sigma), int(offset))


# ---- sensor noise -----------------------------------------------------------------------
def sensor_noise(image: Tensor, shot: Tensor, read: Tensor, chroma: Tensor, off_luma: Tensor, off_chroma: Tensor) -> Tensor:
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


def sensor_noise_np(image: np.ndarray, shot: float, read: float, chroma: float, off_luma: int, off_chroma: int) -> np.ndarray:
    if shot == 0.0 and read == 0.0:
        return image
    h, w = image.shape[:2]
    c = 1 if image.ndim == 2 else image.shape[2]
    zl = fnoise.noise_window_np(off_luma, h * w).reshape(h, w, 1)
    zc = fnoise.noise_window_np(off_chroma, h * w * c).reshape(h, w, c)
    chf = np.float32(chroma)
    z = np.sqrt(np.float32(1.0) - chf) * zl + np.sqrt(chf) * zc
    if image.dtype == np.uint8:
        lut = (255.0 * np.sqrt(np.float32(shot) * (np.arange(256, dtype=np.float32) / 255.0) + np.float32(read) ** 2))
        std = cv2.LUT(image, lut.astype(np.float32)).reshape(h, w, c)
        return to_dtype_np(image.reshape(h, w, c).astype(np.float32) + std * z, image)
    x = image.reshape(h, w, c).astype(np.float32)
    std = np.sqrt(np.float32(shot) * np.maximum(x, 0.0) + np.float32(read) ** 2)
    return to_dtype_np(x + std * z, image)


# ---- JPEG -------------------------------------------------------------------------------
def _u8(image: Tensor) -> Tensor:
    return image if image.dtype == torch.uint8 else (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)


def jpeg(image: Tensor, quality: Tensor) -> Tensor:
    """Real JPEG round trip per sample (``torchvision.io``); float images get a straight-through gradient."""
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

    u8 = _u8(image).cpu()
    mode = ImageReadMode.GRAY if u8.shape[1] == 1 else ImageReadMode.RGB
    rows = [decode_jpeg(encode_jpeg(u8[i].contiguous(), quality=int(q)), mode=mode)
            for i, q in enumerate(quality.reshape(-1).tolist())]
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
    return out if image.dtype == np.uint8 else (out.astype(np.float32) / np.float32(255.0)).astype(image.dtype)
