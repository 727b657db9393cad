"""Erasing ops: random erasing (torchvision semantics) and cutout, per-sample rectangles.

Params hold integer boxes ``[B, K, 4]`` (``y0, x0, y1, x1``, end exclusive) drawn for the
image size given to ``draw``; an empty box erases nothing.

Example:
    >>> import numpy as np
    >>> from augmentgen.core import Sample
    >>> op = Cutout(num_holes=2, size=(0.25, 0.25))
    >>> s = Sample(np.full((8, 8, 3), 200, np.uint8))
    >>> int((op.apply_sample(s, op.sample_params(s, np.random.default_rng(0))).image == 0).any())
    1
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import numpy as np
import torch
from torch import Tensor

from augmentgen.core.params import Params
from augmentgen.core.registry import register
from augmentgen.core.rng import RNG, Array
from augmentgen.ops._draws import Range, as_range, expect, uniform_cols
from augmentgen.ops.base import Op
from augmentgen.ops.functional import erase as ferase

Fill = Union[float, tuple[float, ...]]


@dataclass(frozen=True)
class EraseParams(Params):
    boxes: Array  # [B, K, 4] int64 y0, x0, y1, x1


def _boxes(hh: Array, ww: Array, uy: Array, ux: Array, size: tuple[int, int]) -> Array:
    """Integer boxes from float heights/widths (pixels) and uniform positions; all ``[n, K]``."""
    h, w = size
    if isinstance(hh, Tensor):
        bh = hh.round().clamp(0, h).to(torch.int64)
        bw = torch.as_tensor(ww).round().clamp(0, w).to(torch.int64)
        y0 = torch.floor(torch.as_tensor(uy) * (h - bh + 1)).to(torch.int64).clamp(max=h - bh)
        x0 = torch.floor(torch.as_tensor(ux) * (w - bw + 1)).to(torch.int64).clamp(max=w - bw)
        return torch.stack([y0, x0, y0 + bh, x0 + bw], -1)
    if np.size(hh) <= 16:  # per-sample path: Python ints beat a dozen tiny array ops (~40 us)
        rows = []
        for hv, wv, yv, xv in zip(*(np.asarray(v, np.float64).ravel().tolist() for v in (hh, ww, uy, ux))):
            bh, bw = min(max(round(hv), 0), h), min(max(round(wv), 0), w)
            y0, x0 = min(math.floor(yv * (h - bh + 1)), h - bh), min(math.floor(xv * (w - bw + 1)), w - bw)
            rows.append((y0, x0, y0 + bh, x0 + bw))
        return np.array(rows, np.int64).reshape(*np.shape(hh), 4)
    bh_n = np.clip(np.round(hh), 0, h).astype(np.int64)
    bw_n = np.clip(np.round(np.asarray(ww)), 0, w).astype(np.int64)
    y0_n = np.minimum(np.floor(np.asarray(uy) * (h - bh_n + 1)).astype(np.int64), h - bh_n)
    x0_n = np.minimum(np.floor(np.asarray(ux) * (w - bw_n + 1)).astype(np.int64), w - bw_n)
    return np.stack([y0_n, x0_n, y0_n + bh_n, x0_n + bw_n], -1)


def _check_fill(owner: str, fill: Fill) -> None:
    vals = [fill] if isinstance(fill, (int, float)) else list(fill)
    if not vals or any(not 0.0 <= float(v) <= 1.0 for v in vals):
        raise ValueError(f"{owner}.fill must be a value (or one per channel) in [0, 1], got {fill!r}")


def _erase(op: Op, image: Tensor, params: Params, fill: Fill) -> Tensor:
    return ferase.erase(image, torch.as_tensor(expect(params, EraseParams, op).boxes), fill)


def _erase_np(op: Op, image: np.ndarray, params: Params, fill: Fill) -> np.ndarray:
    return ferase.erase_np(image, np.asarray(expect(params, EraseParams, op).boxes)[0], fill)


@register("random_erasing")
@dataclass(kw_only=True)
class RandomErasing(Op):
    """Erase one rectangle of random area and aspect ratio (torchvision ``RandomErasing``).

    Area fraction is uniform in ``scale``, aspect ratio log-uniform in ``ratio``; a rectangle
    larger than the image is clipped to it (torchvision retries ten times instead).

    Args:
        scale: ``(low, high)`` fraction of the image area; 0 is the identity.
        ratio: ``(low, high)`` aspect ratio h / w.
        fill: value in [0, 1] units, or one per channel.
    """

    scale: Range = (0.02, 0.33)
    ratio: Range = (0.3, 3.3)
    fill: Fill = 0.0

    def validate(self) -> None:
        as_range("RandomErasing", "scale", self.scale, low=0.0, high=1.0)
        lo, _ = as_range("RandomErasing", "ratio", self.ratio)
        if lo <= 0:
            raise ValueError(f"RandomErasing.ratio must be positive, got {self.ratio!r}")
        _check_fill("RandomErasing", self.fill)

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        rlo, rhi = as_range("RandomErasing", "ratio", self.ratio)
        ranges = [as_range("RandomErasing", "scale", self.scale), (float(np.log(rlo)), float(np.log(rhi)))]
        (area, logr, _, _), u = uniform_cols(rng, [*ranges, (0.0, 1.0), (0.0, 1.0)], n)
        a = area * float(size[0] * size[1])
        hh: Array
        ww: Array
        if isinstance(a, Tensor):
            r = torch.as_tensor(logr).exp()
            hh, ww = (a * r).sqrt(), (a / r).sqrt()
        else:
            r_n = np.exp(np.asarray(logr, np.float64))
            hh, ww = np.sqrt(a * r_n), np.sqrt(a / r_n)
        boxes = _boxes(hh[:, None], ww[:, None], u[:, 2:3], u[:, 3:4], size)
        return EraseParams(applied=applied, boxes=boxes)

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        return _erase(self, image, params, self.fill)

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        return _erase_np(self, image, params, self.fill)


@register("cutout")
@dataclass(kw_only=True)
class Cutout(Op):
    """Erase ``num_holes`` rectangles whose sides are random fractions of the image sides.

    Args:
        num_holes: rectangles per sample (they may overlap).
        size: ``(low, high)`` side length as a fraction of the image side, drawn separately for
            height and width; 0 is the identity.
        fill: value in [0, 1] units, or one per channel.
    """

    num_holes: int = 1
    size: Range = (0.1, 0.3)
    fill: Fill = 0.0

    def validate(self) -> None:
        if not isinstance(self.num_holes, int) or self.num_holes < 1:
            raise ValueError(f"Cutout.num_holes must be a positive int, got {self.num_holes!r}")
        as_range("Cutout", "size", self.size, low=0.0, high=1.0)
        _check_fill("Cutout", self.fill)

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        k = self.num_holes
        lo, hi = as_range("Cutout", "size", self.size)
        _, u = uniform_cols(rng, [(0.0, 1.0)] * (4 * k), n)
        u = u.reshape(n, 4, k)
        hh = (u[:, 0] * (hi - lo) + lo) * size[0]
        ww = (u[:, 1] * (hi - lo) + lo) * size[1]
        boxes = _boxes(hh, ww, u[:, 2], u[:, 3], size)
        return EraseParams(applied=applied, boxes=boxes)

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        return _erase(self, image, params, self.fill)

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        return _erase_np(self, image, params, self.fill)
