"""Erasing kernels: fill per-sample integer rectangles with a constant (random erasing, cutout)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _fill_value(fill: float | tuple[float, ...], c: int, uint8: bool) -> list[float]:
    vals = [float(fill)] if isinstance(fill, (int, float)) else [float(v) for v in fill]
    if len(vals) == 1:
        vals = vals * c
    if len(vals) != c:
        raise ValueError(f"erase: fill {fill} must have 1 or C={c} values")
    return [round(v * 255.0) if uint8 else v for v in vals]


def erase(image: Tensor, boxes: Tensor, fill: float | tuple[float, ...] = 0.0) -> Tensor:
    """Fill ``boxes`` ``[B, K, 4]`` (int ``y0, x0, y1, x1``, end exclusive) with ``fill`` in [0, 1] units.

    One mask built from broadcast comparisons, no loop over samples; empty boxes erase nothing.
    Differentiable w.r.t. the image outside the boxes.

    Example:
        >>> x = torch.ones(1, 1, 4, 4)
        >>> erase(x, torch.tensor([[[0, 0, 2, 2]]]))[0, 0, :, 0].tolist()
        [0.0, 0.0, 1.0, 1.0]
    """
    b, c, h, w = image.shape
    bx = boxes.to(device=image.device, dtype=torch.int64).reshape(b, -1, 4)
    rows = torch.arange(h, device=image.device).reshape(1, 1, h, 1)
    cols = torch.arange(w, device=image.device).reshape(1, 1, 1, w)
    y0, x0, y1, x1 = (bx[..., i].reshape(b, -1, 1, 1) for i in range(4))
    inside = (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)  # [B, K, H, W]
    mask = inside.any(dim=1, keepdim=True)  # [B, 1, H, W]
    vals = _fill_value(fill, c, image.dtype == torch.uint8)
    fill_t = torch.tensor(vals, dtype=image.dtype, device=image.device).reshape(1, c, 1, 1)
    return torch.where(mask, fill_t, image)


def erase_np(image: np.ndarray, boxes: np.ndarray, fill: float | tuple[float, ...] = 0.0) -> np.ndarray:
    """Per-sample ``erase``: ``boxes`` ``[K, 4]`` int ``y0, x0, y1, x1``; returns a copy when any box is non-empty."""
    bx = np.asarray(boxes, np.int64).reshape(-1, 4)
    live = [r for r in bx.tolist() if r[2] > r[0] and r[3] > r[1]]
    if not live:
        return image
    c = image.shape[2] if image.ndim == 3 else 1
    vals = _fill_value(fill, c, image.dtype == np.uint8)
    fv = np.asarray(vals, image.dtype)
    out = image.copy()
    for y0, x0, y1, x1 in live:
        out[y0:y1, x0:x1] = fv if image.ndim == 3 else fv[0]
    return out
