"""Level kernels of AutoAugment / RandAugment: posterize, solarize, invert, autocontrast, equalize, sharpness.

Batched over ``[B, C, H, W]`` with a value per sample; uint8 follows the PIL definitions (and
torchvision's uint8 results, bit for bit: tested), float images in [0, 1] take the same
arithmetic on the 0..1 scale (posterize and equalize quantize to the 256 uint8 levels first).
Per-sample numpy callers go through the same kernels with B = 1.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def _per_sample(v: Tensor, image: Tensor, dtype: torch.dtype) -> Tensor:
    return torch.as_tensor(v, device=image.device).to(dtype).reshape(-1, 1, 1, 1)


def _levels(image: Tensor) -> Tensor:
    """int64 uint8 levels 0..255 of an image of either dtype."""
    if image.dtype == torch.uint8:
        return image.to(torch.int64)
    return (image.clamp(0, 1) * 255).round().to(torch.int64)


def _from_levels(levels: Tensor, like: Tensor) -> Tensor:
    if like.dtype == torch.uint8:
        return levels.to(torch.uint8)
    return levels.to(like.dtype) / 255


def posterize(image: Tensor, bits: Tensor) -> Tensor:
    """Keep the top ``bits`` (1..8, ``[B]``) bits of every 8-bit level.

    Example:
        >>> posterize(torch.tensor([[[[255, 77]]]], dtype=torch.uint8), torch.tensor([3])).tolist()
        [[[[224, 64]]]]
    """
    b = _per_sample(bits, image, torch.int64)
    mask = (255 >> (8 - b)) << (8 - b)  # bits = 8: 255 (identity)
    return _from_levels(_levels(image) & mask, image)


def solarize(image: Tensor, threshold: Tensor) -> Tensor:
    """Invert the values at or above ``threshold`` (``[B]``, in [0, 1] image units).

    Example:
        >>> solarize(torch.tensor([[[[0.2, 0.8]]]]), torch.tensor([0.5])).tolist()
        [[[[0.20000000298023224, 0.19999998807907104]]]]
    """
    if image.dtype == torch.uint8:
        t = _per_sample(threshold, image, torch.float32) * 255
        return torch.where(image.to(torch.float32) >= t, 255 - image, image)
    t = _per_sample(threshold, image, image.dtype)
    return torch.where(image >= t, 1 - image, image)


def invert(image: Tensor) -> Tensor:
    """``255 - x`` for uint8, ``1 - x`` for float images in [0, 1] (torchvision ``invert``).

    Example:
        >>> invert(torch.tensor([[[[0, 77, 255]]]], dtype=torch.uint8)).tolist()
        [[[[255, 178, 0]]]]
    """
    return 255 - image if image.dtype == torch.uint8 else 1 - image


def autocontrast(image: Tensor) -> Tensor:
    """Stretch each channel of each image to the full range (a flat channel stays as it is).

    uint8 truncates toward zero, as PIL's and torchvision's do.

    Example:
        >>> autocontrast(torch.tensor([[[[0.25, 0.5, 0.75]]]])).tolist()
        [[[[0.0, 0.5, 1.0]]]]
    """
    bound = 255.0 if image.dtype == torch.uint8 else 1.0
    x = image.to(torch.float32) if image.dtype == torch.uint8 else image
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    flat = hi == lo
    per_level = torch.where(flat, torch.ones_like(hi), (hi - lo) * (1.0 / bound))  # one output level's width
    lo = torch.where(flat, torch.zeros_like(lo), lo)
    out = ((x - lo) / per_level).clamp(0, bound)
    return out.to(torch.uint8) if image.dtype == torch.uint8 else out


def equalize(image: Tensor) -> Tensor:
    """Histogram-equalize each channel of each image, PIL's way.

    With ``h`` the channel's histogram of 8-bit levels and ``step = (N - h[max level]) // 255``,
    level ``i`` maps to ``(step // 2 + sum(h[:i])) // step`` (at most 255); ``step == 0`` (a
    channel of one or two levels in a small image) leaves the channel as it is.

    Example:
        >>> two = torch.tensor([0, 10], dtype=torch.uint8).repeat_interleave(256).reshape(1, 1, 2, 256)
        >>> equalize(two).unique().tolist()  # 256 pixels at 0 and 256 at 10: spread to both ends
        [0, 255]
        >>> equalize(torch.tensor([[[[0, 0, 10, 10, 10, 200]]]], dtype=torch.uint8)).tolist()  # step 0
        [[[[0, 0, 10, 10, 10, 200]]]]
    """
    lv = _levels(image)  # [B, C, H, W]
    b, c = lv.shape[:2]
    flat = lv.reshape(b * c, -1)
    n = flat.shape[1]
    hist = torch.zeros(b * c, 256, dtype=torch.int64, device=image.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    top = flat.amax(dim=1, keepdim=True)
    step = (n - hist.gather(1, top)) // 255  # [BC, 1]
    before = hist.cumsum(1) - hist  # pixels below each level
    safe = step.clamp_min(1)
    lut = ((step // 2 + before) // safe).clamp_(max=255)
    mapped = lut.gather(1, flat)
    out = torch.where(step > 0, mapped, flat).reshape(lv.shape)
    return _from_levels(out, image)


_SMOOTH = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13
_SMOOTH_NP = _SMOOTH.numpy()


def sharpness(image: Tensor, factor: Tensor) -> Tensor:
    """Blend with PIL's smoothed image: ``factor`` (``[B]``) 1 is the identity, 0 the smoothed one, 2 sharper.

    The smoothing is the 3x3 kernel ``[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13`` on the interior
    (the one-pixel border keeps its values, as PIL does); uint8 rounds the smoothed image and
    truncates the blend, as torchvision does.

    Example:
        >>> x = torch.zeros(1, 1, 3, 3); x[0, 0, 1, 1] = 0.65
        >>> round(float(sharpness(x, torch.tensor([0.0]))[0, 0, 1, 1]), 4)
        0.25
    """
    if image.shape[-1] <= 2 or image.shape[-2] <= 2:
        return image
    x = image.to(torch.float32) if image.dtype == torch.uint8 else image
    c = x.shape[1]
    k = _SMOOTH.to(device=x.device, dtype=x.dtype).expand(c, 1, 3, 3)
    inner = F.conv2d(x, k, groups=c)
    if image.dtype == torch.uint8:
        inner = inner.round()
    smooth = x.clone()
    smooth[..., 1:-1, 1:-1] = inner
    f = _per_sample(factor, image, x.dtype)
    bound = 255.0 if image.dtype == torch.uint8 else 1.0
    out = (smooth + f * (x - smooth)).clamp(0, bound)  # the border (smooth == x) stays exactly x
    return out.to(torch.uint8) if image.dtype == torch.uint8 else out


# ---- one HWC numpy image (the per-sample path): OpenCV lookup tables, the same results ----------
def _lut(image: np.ndarray, table: np.ndarray, planes: list[np.ndarray] | None = None) -> np.ndarray:
    """``image`` (uint8 HWC) through a 256-entry table, or one table per channel (``[256, C]``, on its planes)."""
    h, w, c = image.shape
    if table.ndim == 1 or c == 1:
        flat = np.ascontiguousarray(image).reshape(h, w * c)
        return np.asarray(cv2.LUT(flat, np.ascontiguousarray(table.reshape(256, -1)[:, 0]))).reshape(image.shape)
    planes = planes if planes is not None else list(cv2.split(np.ascontiguousarray(image)))
    out = [cv2.LUT(p, np.ascontiguousarray(table[:, k])) for k, p in enumerate(planes)]
    return np.asarray(cv2.merge(out)).reshape(image.shape)


def _planes(image: np.ndarray) -> list[np.ndarray]:
    if image.shape[2] == 1:
        return [np.ascontiguousarray(image[..., 0])]
    return list(cv2.split(np.ascontiguousarray(image)))


def _as_levels_np(image: np.ndarray) -> np.ndarray:
    return image if image.dtype == np.uint8 else np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _back_np(levels: np.ndarray, like: np.ndarray) -> np.ndarray:
    return levels if like.dtype == np.uint8 else (levels.astype(like.dtype) / like.dtype.type(255))


_RAMP = np.arange(256)


def posterize_np(image: np.ndarray, bits: int) -> np.ndarray:
    """``posterize`` of one HWC image (uint8 through a lookup table)."""
    mask = np.uint8((255 >> (8 - bits)) << (8 - bits))
    return _back_np(np.bitwise_and(_as_levels_np(image), mask), image)


def solarize_np(image: np.ndarray, threshold: float) -> np.ndarray:
    """``solarize`` of one HWC image (the uint8 comparison in float32, as the batched kernel)."""
    if image.dtype == np.uint8:
        t = np.float32(threshold) * np.float32(255)
        table = np.where(_RAMP.astype(np.float32) >= t, 255 - _RAMP, _RAMP).astype(np.uint8)
        return _lut(image, table)
    t = image.dtype.type(threshold)
    return np.where(image >= t, 1 - image, image).astype(image.dtype)


def invert_np(image: np.ndarray) -> np.ndarray:
    """``invert`` on one HWC image (``cv2.bitwise_not`` for uint8)."""
    if image.dtype == np.uint8:
        return cv2.bitwise_not(image).reshape(image.shape)
    return np.asarray(1 - image, image.dtype)


def autocontrast_np(image: np.ndarray) -> np.ndarray:
    """``autocontrast`` of one HWC image: per-channel min and max, then one lookup table per channel."""
    if image.dtype != np.uint8:
        return autocontrast(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    planes = _planes(image)  # per-plane extrema: ~40x faster than a numpy reduction over the pixels
    ext = [cv2.minMaxLoc(p)[:2] for p in planes]
    lo = np.array([e[0] for e in ext], np.float32)
    hi = np.array([e[1] for e in ext], np.float32)
    # the batched kernel's float32 arithmetic on the 256 levels, channel by channel
    lo_t = torch.from_numpy(lo.astype(np.float32))
    hi_t = torch.from_numpy(hi.astype(np.float32))
    flat_c = hi_t == lo_t
    per_level = torch.where(flat_c, torch.ones_like(hi_t), (hi_t - lo_t) * (1.0 / 255.0))
    lo_t = torch.where(flat_c, torch.zeros_like(lo_t), lo_t)
    ramp = torch.arange(256, dtype=torch.float32)[:, None]
    table = ((ramp - lo_t) / per_level).clamp(0, 255).to(torch.uint8).numpy()  # [256, C]
    return _lut(image, table, planes)


def equalize_np(image: np.ndarray) -> np.ndarray:
    """``equalize`` of one HWC image: integer histograms (OpenCV), PIL's table per channel."""
    lv = _as_levels_np(image)
    c = lv.shape[2]
    n = lv.shape[0] * lv.shape[1]
    tables = np.empty((256, c), np.uint8)
    planes = _planes(lv)
    for k, plane in enumerate(planes):
        hist = cv2.calcHist([plane], [0], None, [256], [0, 256]).reshape(256).astype(np.int64)
        step = (n - int(hist[int(plane.max())])) // 255
        if step == 0:
            tables[:, k] = _RAMP
            continue
        before = np.cumsum(hist) - hist
        tables[:, k] = np.minimum((step // 2 + before) // step, 255)
    return _back_np(_lut(lv, tables, planes), image)


def sharpness_np(image: np.ndarray, factor: float) -> np.ndarray:
    """``sharpness`` of one HWC image with OpenCV (uint8: the filter and the blend round where the
    batched kernel truncates the blend, so values may differ from it by one level)."""
    h, w = image.shape[:2]
    if h <= 2 or w <= 2:
        return image
    if image.dtype == np.uint8:  # OpenCV filters and blends uint8 with rounding, in one pass each
        smooth = cv2.filter2D(image, -1, _SMOOTH_NP, borderType=cv2.BORDER_REPLICATE).reshape(image.shape)
        smooth[0], smooth[-1], smooth[:, 0], smooth[:, -1] = image[0], image[-1], image[:, 0], image[:, -1]
        out = cv2.addWeighted(image, float(factor), smooth, 1.0 - float(factor), 0.0)
        return np.asarray(out).reshape(image.shape)
    inner = cv2.filter2D(image, -1, _SMOOTH_NP.astype(image.dtype), borderType=cv2.BORDER_REPLICATE)
    smooth = image.copy()
    smooth[1:-1, 1:-1] = inner.reshape(image.shape)[1:-1, 1:-1]
    return np.asarray(np.clip(smooth + image.dtype.type(factor) * (image - smooth), 0, 1), image.dtype)
