"""Rain and snow kernels: drops rasterized exactly on integer pixels, then softened and composited.

Drop ``k`` of a sample starts at a position read from a fixed uniform bank at
``offset + 2k`` (like the noise bank of ``ops.functional.noise``), and its streak covers
pixels ``(y0 + j, x0 + round(j tan a))`` for ``j < length``; both backends compute the same
integer coordinates in float64, then blur the layer with the same box filters, so the
batched torch path and the per-sample OpenCV path agree (uint8: exactly, up to rounding).
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np
import torch
from torch import Tensor

from augmentgen.ops.functional.weather import as01, box_blur, box_blur_np, col, finish, to_dtype_np

UBANK_SIZE = 1 << 20
_UBANK_KEY = 0x3C6EF372FE94F82B  # fixed: changing it moves every replayed drop


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
    with torch.inference_mode(False):  # cached past any inference_mode block (see color._basis_t)
        return torch.from_numpy(np.array(ubank_np())).to(device)


# ---- rain and snow: exact streak rasterization ------------------------------------------
def _streak_coords(
    off: Tensor, count: Tensor, length: Tensor, slope: Tensor, size: tuple[int, int], device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    """Flat pixel indices ``[B, K, L]`` of every streak pixel, and their validity mask.

    Drop ``k`` starts at ``y0 = floor(u0 (H + L)) - L``, ``x0 = floor(u1 (W + 2m)) - m`` with
    ``(u0, u1) = bank[offset + 2k], bank[offset + 2k + 1]`` and ``m = ceil(L |slope|)``, so
    streaks may enter through any border; pixel ``j`` of it is ``(y0 + j, x0 + round(j slope))``.
    """
    h, w = size
    bank = _ubank_torch(device)
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
    valid = (k.reshape(1, -1, 1) < count.to(bank.device).reshape(-1, 1, 1)) & (
        j.reshape(1, 1, -1) < ln[:, :, None]
    )
    valid &= (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    return ys, xs, valid


def streak_layer(
    off: Tensor, count: Tensor, length: Tensor, slope: Tensor, size: tuple[int, int], device: torch.device
) -> Tensor:
    """``[B, 1, H, W]`` float32 layer, 1 on streak pixels and 0 elsewhere (see ``_streak_coords``)."""
    h, w = size
    b = int(off.shape[0])
    layer = torch.zeros(b * h * w, device=device, dtype=torch.float32)
    if int(count.max()) > 0 and int(length.max()) > 0:
        ys, xs, valid = _streak_coords(off, count, length, slope, size, device)
        rows = torch.arange(b, device=ys.device, dtype=torch.float64).reshape(-1, 1, 1) * (h * w)
        flat = (rows + ys * w + xs)[valid].to(torch.int64)
        layer[flat.to(device)] = 1.0  # every write is the same value: duplicates are harmless
    return layer.reshape(b, 1, h, w)


def streak_layer_np(off: int, count: int, length: int, slope: float, size: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` uint8 layer, 1 on streak pixels (the same pixels as ``streak_layer``).

    Draws into a canvas padded by the longest reach of a streak, so no pixel needs a bounds
    check: one broadcast add gives every flat index; the image is a view into the canvas.
    """
    h, w = size
    if count <= 0 or length <= 0:
        return np.zeros(size, np.uint8)
    bank = ubank_np()
    ln, sl = int(length), float(slope)
    m = math.ceil(ln * abs(sl))
    i0 = (int(off) + 2 * np.arange(int(count))) % UBANK_SIZE
    y0 = np.floor(bank[i0] * (h + ln)) - ln  # as in _streak_coords, float64 then whole
    x0 = np.floor(bank[(i0 + 1) % UBANK_SIZE] * (w + 2 * m)) - m
    wp = w + 4 * m
    canvas = np.zeros((h + 2 * ln, wp), np.uint8)
    base = ((y0 + ln) * wp + (x0 + 2 * m)).astype(np.int64)  # int64: numpy indexes with it directly
    j = np.arange(ln)
    step = (j * wp + np.rint(j * sl)).astype(np.int64)
    canvas.reshape(-1)[base[:, None] + step[None, :]] = 1
    return canvas[ln : ln + h, 2 * m : 2 * m + w]


def soften(layer: Tensor, size: Tensor) -> Tensor:
    """Box-blur a 0/1 streak layer twice by odd ``size`` ``[B]`` (a tent: soft, round-ish flakes)."""
    return box_blur(box_blur(layer, size), size)


def precipitation(
    image: Tensor, soft: Tensor, keep: Tensor, add: Tensor, levels: Tensor, ksize: Tensor | None = None
) -> Tensor:
    """``keep * x + add + levels / 255 * soft`` per sample (``levels`` = drop brightness in uint8 levels).

    uint8 rounds as ``precipitation_np`` does: the sum once where the blur ``ksize`` is at most
    3, the drop layer to whole levels first and then the sum for wider blurs.
    """
    x = as01(image)
    k, a, lv = col(keep, image, 3), col(add, image, 3), col(levels, image, 3)
    if image.dtype == torch.uint8:
        lay = soft * lv
        if ksize is not None:
            wide = col(ksize, image, 3) > 3
            lay = torch.where(wide, lay.round().clamp(0, 255), lay)
        out: Tensor = (k * image.to(torch.float32) + a * 255.0 + lay).round_().clamp_(0, 255)
        return out.to(torch.uint8)
    out_f = x * k.to(x.dtype)
    out_f = out_f + a.to(x.dtype) if out_f.requires_grad else out_f.add_(a.to(x.dtype))
    drops = (lv / 255.0).to(x.dtype) * soft.to(x.dtype)  # [B, 1, H, W]
    return finish(image, out_f + drops if out_f.requires_grad else out_f.add_(drops))


def precipitation_np(
    image: np.ndarray, layer: np.ndarray, k: int, keep: float, add: float, levels: float
) -> np.ndarray:
    """Per-sample ``soften`` + ``precipitation`` (``layer`` uint8 0/1 ``[H, W]``).

    uint8: a 3-box is blurred exactly in uint8 (a drop of 243 = 3 * 3^4 keeps every partial sum
    whole), so with no blur or a 3-box the whole composite is one saturating ``cv2.addWeighted``
    of the scene and the grey drop layer spread to the channels (``keep x + scale drops + add``,
    rounded once); wider boxes blur in float32 and round the layer to whole levels first.
    """
    c = 1 if image.ndim == 2 else image.shape[2]
    if image.dtype == np.uint8:
        if k == 3:
            lay, scale = box_blur_np(box_blur_np(layer * np.uint8(243), 3), 3), levels / 243.0
        elif k < 3:
            lay, scale = layer, levels
        else:  # wider blurs: the layer in whole levels first
            soft = box_blur_np(box_blur_np(layer.astype(np.float32), k), k)
            lay, scale = np.asarray(cv2.convertScaleAbs(soft, alpha=levels)), 1.0  # soft >= 0: abs is a no-op
        if c == 3:
            lay = np.asarray(cv2.cvtColor(lay, cv2.COLOR_GRAY2RGB))
        elif c != 1:
            lay = np.repeat(lay[:, :, None], c, axis=2)
        out8 = cv2.addWeighted(image, keep, lay.reshape(image.shape), scale, add * 255.0, dtype=cv2.CV_8U)
        return np.asarray(out8).reshape(image.shape)
    soft = box_blur_np(box_blur_np(layer.astype(np.float32), k), k) if k > 1 else layer.astype(np.float32)
    layf = soft * np.float32(levels / 255.0)
    outf = image.astype(np.float32) * np.float32(keep) + (layf if image.ndim == 2 else layf[:, :, None])
    outf += np.float32(add)
    return to_dtype_np(np.asarray(outf, np.float32), image)
