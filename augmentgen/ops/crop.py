"""Geometric ops that change the canvas: crops, random resized crop, resize (fixed or aspect-keeping), pad, letterbox.

Crop boxes are integer pixels (as torchvision), so a crop at scale 1 moves whole pixels.
Re-exported by ``augmentgen.ops.geometric``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, cast

import numpy as np
import torch
from torch import Tensor

from augmentgen.core.params import Params
from augmentgen.core.registry import register
from augmentgen.core.rng import RNG, Array
from augmentgen.ops._geometry import block, expect, hw, int_below, ltrb
from augmentgen.ops.base import Op
from augmentgen.ops.functional import matrices as M
from augmentgen.ops.functional.warp import resize_matrix

RRC_TRIES = 10  # candidates per sample, as torchvision's RandomResizedCrop loop


@dataclass(frozen=True)
class CropParams(Params):
    x0: Array  # [B] int, left edge in input pixels (negative inside padding)
    y0: Array  # [B] int, top edge


@dataclass(frozen=True)
class ResizedCropParams(Params):
    x0: Array  # [B] int pixels
    y0: Array
    w: Array
    h: Array


# ---- random resized crop boxes (pure, from uniforms) -----------------------------------------
def _fallback(h: int, w: int, ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    """torchvision's central crop when no candidate fits: (x0, y0, w, h)."""
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        cw, ch = int(round(h * ratio[1])), h
    else:
        cw, ch = w, h
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def resized_crop_boxes_np(
    u: np.ndarray, size: tuple[int, int], scale: tuple[float, float], ratio: tuple[float, float]
) -> tuple[np.ndarray, ...]:
    """Crop boxes from uniforms, one row at a time in floats (B is 1 on the per-sample path).

    Args:
        u: ``[B, 2 * RRC_TRIES + 2]`` U[0, 1): area and log-ratio per candidate, then x, y.
        size: (H, W); scale: area fraction range; ratio: aspect (w/h) range.

    Returns:
        int64 ``x0, y0, w, h``, each ``[B]``.
    """
    h, w = size
    k = RRC_TRIES
    area = float(h * w)
    lr0, lr1 = math.log(ratio[0]), math.log(ratio[1])
    if u.shape[0] > 1:
        return _resized_crop_boxes_many(np.asarray(u, np.float64), h, w, scale, ratio)
    out = []
    for row in u.tolist():  # float32 -> float is exact
        box = None
        for i in range(k):
            target = area * (scale[0] + (scale[1] - scale[0]) * row[i])
            ar = math.exp(lr0 + (lr1 - lr0) * row[k + i])
            cw, ch = round(math.sqrt(target * ar)), round(math.sqrt(target / ar))
            if 0 < cw <= w and 0 < ch <= h:
                x0 = min(int(math.floor(row[2 * k] * (w - cw + 1))), w - cw)
                y0 = min(int(math.floor(row[2 * k + 1] * (h - ch + 1))), h - ch)
                box = (x0, y0, cw, ch)
                break
        out.append(box if box is not None else _fallback(h, w, ratio))
    arr = np.array(out, np.int64).reshape(-1, 4)
    return arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]


def _resized_crop_boxes_many(
    u: np.ndarray, h: int, w: int, scale: tuple[float, float], ratio: tuple[float, float]
) -> tuple[np.ndarray, ...]:
    """``resized_crop_boxes_np`` for many rows: every candidate of every row at once, first fit wins.

    The same float64 operations in the same order as the one-row loop (numpy's + - * / and
    sqrt are correctly rounded like Python's, ``rint`` rounds half to even like ``round``, and
    ``exp`` goes through ``math`` per value), so each row gets the box it gets alone.
    """
    k = RRC_TRIES
    area = float(h * w)
    lr0, lr1 = math.log(ratio[0]), math.log(ratio[1])
    n = u.shape[0]
    target = area * (scale[0] + (scale[1] - scale[0]) * u[:, :k])
    logr = (lr0 + (lr1 - lr0) * u[:, k : 2 * k]).ravel().tolist()
    ar = np.fromiter(map(math.exp, logr), np.float64, n * k).reshape(n, k)
    cw, ch = np.rint(np.sqrt(target * ar)), np.rint(np.sqrt(target / ar))
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = ok.argmax(axis=1)
    rows = np.flatnonzero(ok[np.arange(n), first])
    box = np.tile(np.array(_fallback(h, w, ratio), np.int64), (n, 1))
    cw, ch = cw[rows, first[rows]], ch[rows, first[rows]]
    x0 = np.minimum(np.floor(u[rows, 2 * k] * (w - cw + 1)), w - cw)
    y0 = np.minimum(np.floor(u[rows, 2 * k + 1] * (h - ch + 1)), h - ch)
    box[rows] = np.stack([x0, y0, cw, ch], axis=1).astype(np.int64)
    return box[:, 0], box[:, 1], box[:, 2], box[:, 3]


def resized_crop_boxes_torch(
    u: Tensor, size: tuple[int, int], scale: tuple[float, float], ratio: tuple[float, float]
) -> tuple[Tensor, ...]:
    """Vectorized twin of ``resized_crop_boxes_np`` (same formulas, no loop over rows or candidates)."""
    h, w = size
    k = RRC_TRIES
    wide = torch.float32 if u.device.type == "mps" else torch.float64
    u = u.to(wide)
    target = float(h * w) * (scale[0] + (scale[1] - scale[0]) * u[:, :k])
    logr = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, k : 2 * k]
    ar = torch.exp(logr)
    cw, ch = torch.round(torch.sqrt(target * ar)), torch.round(torch.sqrt(target / ar))
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)  # [B, K]
    first = ok.to(torch.uint8).argmax(dim=1, keepdim=True)  # first fitting candidate (0 if none)
    found = ok.any(dim=1)
    cw, ch = cw.gather(1, first)[:, 0], ch.gather(1, first)[:, 0]
    x0 = torch.minimum(torch.floor(u[:, 2 * k] * (w - cw + 1)), w - cw)
    y0 = torch.minimum(torch.floor(u[:, 2 * k + 1] * (h - ch + 1)), h - ch)
    fb = torch.tensor(_fallback(h, w, ratio), dtype=wide, device=u.device)
    box = torch.stack([x0, y0, cw, ch], dim=1)
    box = torch.where(found[:, None], box, fb).to(torch.int64)
    return box[:, 0], box[:, 1], box[:, 2], box[:, 3]


def _size(v: object) -> tuple[int, int]:
    """A ``size`` field already normalized by ``hw`` in ``validate``."""
    return cast(tuple[int, int], v)


def _pad(v: object) -> tuple[int, int, int, int]:
    """A ``padding`` field already normalized by ``ltrb`` in ``validate``."""
    return cast(tuple[int, int, int, int], v)


# ---- ops -------------------------------------------------------------------------------------
@register("random_crop")
@dataclass(kw_only=True)
class RandomCrop(Op):
    """Crop ``size`` (H, W) at a random integer position, after optional ``padding``.

    Args:
        size: output (H, W), or an int for a square.
        padding: int, (x, y) or (left, top, right, bottom) added before cropping, filled by
            ``border_mode`` / ``fill``.

    Example:
        >>> RandomCrop(size=24, padding=4).output_size((32, 32))
        (24, 24)
    """

    kind: ClassVar[str] = "geometric"
    size: int | tuple[int, int] = (224, 224)
    padding: int | tuple[int, ...] = 0
    interpolation: str = "bilinear"
    border_mode: str = "constant"
    fill: float = 0.0

    def validate(self) -> None:
        self.size = hw("RandomCrop.size", self.size)
        self.padding = ltrb("RandomCrop.padding", self.padding)

    @property
    def border_free(self) -> bool:  # type: ignore[override]  # a ClassVar on Op, per instance here
        """Without padding the crop box lies inside the image (a larger crop is an error)."""
        return _pad(self.padding) == (0, 0, 0, 0)

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return _size(self.size)

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> CropParams:
        (ch, cw), (left, top, right, bottom) = _size(self.size), _pad(self.padding)
        h, w = size
        if ch > h + top + bottom or cw > w + left + right:
            raise ValueError(
                f"RandomCrop.size {(ch, cw)} is larger than the padded image {(h + top + bottom, w + left + right)}"
            )
        u = block(rng, n, 2)
        x0 = int_below(u[0], -left, w + left + right - cw + 1)
        y0 = int_below(u[1], -top, h + top + bottom - ch + 1)
        return CropParams(applied=applied, x0=x0, y0=y0)

    def matrix(self, params: Params, size: tuple[int, int]) -> Array:
        p = expect(params, CropParams, "RandomCrop.matrix")
        ch, cw = _size(self.size)
        return M.crop_matrix(p.x0, p.y0, float(cw), float(ch), (ch, cw))


@register("center_crop")
@dataclass(kw_only=True)
class CenterCrop(Op):
    """Crop ``size`` (H, W) from the centre (offsets rounded as torchvision; pads when larger).

    Example:
        >>> CenterCrop(size=(24, 20)).output_size((32, 32))
        (24, 20)
    """

    kind: ClassVar[str] = "geometric"
    size: int | tuple[int, int] = (224, 224)
    border_mode: str = "constant"
    fill: float = 0.0

    def validate(self) -> None:
        self.size = hw("CenterCrop.size", self.size)

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return _size(self.size)

    def matrix(self, params: Params, size: tuple[int, int]) -> Array:
        (h, w), (ch, cw) = size, _size(self.size)
        x0, y0 = int(round((w - cw) / 2.0)), int(round((h - ch) / 2.0))
        return M.translate_pixels_matrix(-x0, -y0, like=params.applied, n=len(params.applied))


@register("random_resized_crop")
@dataclass(kw_only=True)
class RandomResizedCrop(Op):
    """Crop a random area fraction and aspect ratio, resized to ``size`` (torchvision's sampling).

    Each sample tries ``RRC_TRIES`` candidates at once and takes the first that fits,
    falling back to a central crop clamped to ``ratio``, as torchvision does.

    Args:
        size: output (H, W) or an int.
        scale: range of the crop area as a fraction of the image area.
        ratio: range of the crop aspect ratio w/h (drawn log-uniformly).
        border_mode: ``"replicate"`` by default, so an upscaled crop at the image edge is
            not blended with the fill (as crop-then-resize does). The pipeline fuses only
            ops with equal warp settings: give neighbours the same ``border_mode`` to fuse.

    Example:
        >>> RandomResizedCrop(size=32, scale=(0.8, 1.0)).output_size((64, 48))
        (32, 32)
    """

    kind: ClassVar[str] = "geometric"
    border_free: ClassVar[bool] = True  # the crop box lies inside the image
    size: int | tuple[int, int] = (224, 224)
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    interpolation: str = "bilinear"
    border_mode: str = "replicate"
    fill: float = 0.0

    def validate(self) -> None:
        self.size = hw("RandomResizedCrop.size", self.size)
        for name in ("scale", "ratio"):
            v = getattr(self, name)
            if not (isinstance(v, tuple | list) and len(v) == 2 and 0 < float(v[0]) <= float(v[1])):
                raise ValueError(
                    f"RandomResizedCrop.{name} must be a (low, high) pair with 0 < low <= high, got {v!r}"
                )
            setattr(self, name, (float(v[0]), float(v[1])))

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return _size(self.size)

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> ResizedCropParams:
        u = block(rng, n, 2 * RRC_TRIES + 2).T
        box: tuple[Array, ...] = (
            resized_crop_boxes_torch(u, size, self.scale, self.ratio)
            if isinstance(u, Tensor)
            else resized_crop_boxes_np(u, size, self.scale, self.ratio)
        )
        x0, y0, w, h = box
        return ResizedCropParams(applied=applied, x0=x0, y0=y0, w=w, h=h)

    def matrix(self, params: Params, size: tuple[int, int]) -> Array:
        p = expect(params, ResizedCropParams, "RandomResizedCrop.matrix")
        return M.crop_matrix(p.x0, p.y0, p.w, p.h, _size(self.size))


@register("resize")
@dataclass(kw_only=True)
class Resize(Op):
    """Resize to ``size`` (H, W); an int means a square (unlike torchvision's shorter edge).

    Bilinear without antialiasing, as ``cv2.resize(INTER_LINEAR)`` (downscaling far aliases);
    edges replicate by default, which is what ``cv2.resize`` and ``F.interpolate`` do.

    Example:
        >>> Resize(size=(16, 24)).output_size((32, 32))
        (16, 24)
    """

    kind: ClassVar[str] = "geometric"
    border_free: ClassVar[bool] = True
    size: int | tuple[int, int] = (224, 224)
    interpolation: str = "bilinear"
    border_mode: str = "replicate"

    def validate(self) -> None:
        self.size = hw("Resize.size", self.size)

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return _size(self.size)

    def matrix(self, params: Params, size: tuple[int, int]) -> Array:
        return resize_matrix(size, self.output_size(size), like=params.applied, n=len(params.applied))


@register("pad")
@dataclass(kw_only=True)
class Pad(Op):
    """Pad by ``padding`` (int, (x, y) or (left, top, right, bottom)) with ``border_mode`` / ``fill``.

    Example:
        >>> Pad(padding=(1, 2, 3, 4)).output_size((10, 10))
        (16, 14)
    """

    kind: ClassVar[str] = "geometric"
    padding: int | tuple[int, ...] = 4
    border_mode: str = "constant"
    fill: float = 0.0

    def validate(self) -> None:
        self.padding = ltrb("Pad.padding", self.padding)

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        left, top, right, bottom = _pad(self.padding)
        return size[0] + top + bottom, size[1] + left + right

    def matrix(self, params: Params, size: tuple[int, int]) -> Array:
        left, top, _, _ = _pad(self.padding)
        return M.translate_pixels_matrix(float(left), float(top), like=params.applied, n=len(params.applied))


def _fit(size: tuple[int, int], side: int, longest: bool) -> tuple[int, int]:
    """(H, W) of ``size`` scaled so its longest (or shortest) side is ``side``, aspect kept, at least 1 px."""
    h, w = size
    s = side / (max(h, w) if longest else min(h, w))
    return max(1, int(round(h * s))), max(1, int(round(w * s)))


@dataclass(kw_only=True)
class _AspectResize(Op):
    """Resize keeping the aspect so the longest (or shortest) side is ``max_size``."""

    kind: ClassVar[str] = "geometric"
    border_free: ClassVar[bool] = True
    longest: ClassVar[bool] = True
    max_size: int = 512
    interpolation: str = "bilinear"
    border_mode: str = "replicate"

    def validate(self) -> None:
        if not (isinstance(self.max_size, int) and self.max_size > 0):
            raise ValueError(f"{type(self).__name__}.max_size must be a positive int, got {self.max_size!r}")

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return _fit(size, self.max_size, longest=self.longest)

    def matrix(self, params: Params, size: tuple[int, int]) -> Array:
        return resize_matrix(size, self.output_size(size), like=params.applied, n=len(params.applied))


@register("longest_max_size")
@dataclass(kw_only=True)
class LongestMaxSize(_AspectResize):
    """Resize so the longer side is ``max_size``, keeping the aspect (albumentations' ``LongestMaxSize``).

    Example:
        >>> LongestMaxSize(max_size=64).output_size((720, 1280))
        (36, 64)
    """

    longest: ClassVar[bool] = True
    max_size: int = 512


@register("smallest_max_size")
@dataclass(kw_only=True)
class SmallestMaxSize(_AspectResize):
    """Resize so the shorter side is ``max_size``, keeping the aspect (torchvision's ``Resize(int)``).

    Example:
        >>> SmallestMaxSize(max_size=256).output_size((480, 640))
        (256, 341)
    """

    longest: ClassVar[bool] = False
    max_size: int = 256


LETTERBOX_POSITIONS = ("center", "top_left")


@register("letterbox")
@dataclass(kw_only=True)
class Letterbox(Op):
    """Fit the image into ``size`` (H, W) keeping its aspect, and pad the rest with ``fill`` (YOLO's letterbox).

    One warp: the image scaled by ``min(H / h, W / w)`` onto whole pixels (never enlarged when
    ``scale_up`` is False), placed at the centre (or the top left), the border ``fill`` (114/255,
    YOLO's grey, by default). Boxes, masks and keypoints move with it, so it fuses with the
    geometric ops around it. Landing on whole pixels, the warp is a resize with the edge pixels
    replicated and a pad with the fill, as albumentations' ``LongestMaxSize`` then
    ``PadIfNeeded(border_mode=constant)`` (``warp_cv.aligned_box``): content and fill never blend.

    Example:
        >>> Letterbox(size=(640, 640)).output_size((720, 1280))
        (640, 640)
    """

    kind: ClassVar[str] = "geometric"
    size: int | tuple[int, int] = (640, 640)
    fill: float = 114 / 255
    position: str = "center"
    scale_up: bool = True
    interpolation: str = "bilinear"
    border_mode: str = "constant"

    def validate(self) -> None:
        self.size = hw("Letterbox.size", self.size)
        if self.position not in LETTERBOX_POSITIONS:
            raise ValueError(f"Letterbox.position must be one of {LETTERBOX_POSITIONS}, got {self.position!r}")
        if not 0.0 <= float(self.fill) <= 1.0:
            raise ValueError(f"Letterbox.fill must be in [0, 1] (image units), got {self.fill!r}")

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return _size(self.size)

    def placement(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """(new H, new W, left, top): where the scaled image lands on the ``size`` canvas."""
        (h, w), (oh, ow) = size, _size(self.size)
        s = min(oh / h, ow / w)
        if not self.scale_up:
            s = min(s, 1.0)
        nh, nw = min(oh, max(1, int(round(h * s)))), min(ow, max(1, int(round(w * s))))
        if self.position == "center":
            return nh, nw, (ow - nw) // 2, (oh - nh) // 2
        return nh, nw, 0, 0

    def matrix(self, params: Params, size: tuple[int, int]) -> Array:
        nh, nw, left, top = self.placement(size)
        scale = resize_matrix(size, (nh, nw), like=params.applied, n=len(params.applied))
        shift = M.translate_pixels_matrix(float(left), float(top), like=params.applied, n=len(params.applied))
        return shift @ scale
