"""Geometric ops: each draws per-sample parameters and expresses itself as a ``[B, 3, 3]`` matrix.

The shared warp (``ops.functional.warp``) applies the matrix to images, masks, boxes and
keypoints; the pipeline multiplies the matrices of consecutive geometric ops and warps
once. Angles are degrees, counter-clockwise on screen; rotation, zoom and shear act about
the image centre; shifts are fractions of W and H; crop boxes are integer pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from augmentgen.core.params import Params
from augmentgen.core.registry import register
from augmentgen.core.rng import RNG, Array
from augmentgen.ops._geometry import Shift, block, expect, max_shift, pair, shift_ranges, span, uniforms
from augmentgen.ops.base import Op
from augmentgen.ops.crop import (
    CenterCrop,
    CropParams,
    Letterbox,
    LongestMaxSize,
    Pad,
    RandomCrop,
    RandomResizedCrop,
    Resize,
    ResizedCropParams,
    SmallestMaxSize,
)
from augmentgen.ops.functional import matrices as M

__all__ = [
    "Affine",
    "AffineParams",
    "CenterCrop",
    "CropParams",
    "HorizontalFlip",
    "Letterbox",
    "LongestMaxSize",
    "Pad",
    "Perspective",
    "PerspectiveParams",
    "RandomCrop",
    "RandomResizedCrop",
    "ResizedCropParams",
    "Resize",
    "Rotate",
    "RotateParams",
    "Scale",
    "ScaleParams",
    "Shear",
    "ShearParams",
    "SmallestMaxSize",
    "Translate",
    "TranslateParams",
    "VerticalFlip",
]


# ---- params ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RotateParams(Params):
    angle: Array  # [B] degrees, counter-clockwise


@dataclass(frozen=True)
class ScaleParams(Params):
    scale: Array  # [B] zoom factor


@dataclass(frozen=True)
class TranslateParams(Params):
    tx: Array  # [B] fraction of W
    ty: Array  # [B] fraction of H


@dataclass(frozen=True)
class ShearParams(Params):
    shear_x: Array  # [B] degrees
    shear_y: Array  # [B] degrees


@dataclass(frozen=True)
class AffineParams(Params):
    angle: Array
    tx: Array
    ty: Array
    scale: Array
    shear_x: Array
    shear_y: Array


@dataclass(frozen=True)
class PerspectiveParams(Params):
    offsets: Array  # [B, 4, 2] inward corner shifts (TL, TR, BR, BL) as fractions of (W, H)


# ---- affine family ---------------------------------------------------------------------------
@register("rotate")
@dataclass(kw_only=True)
class Rotate(Op):
    """Rotate about the centre by an angle drawn from ``degrees``.

    Args:
        degrees: (low, high) in degrees, counter-clockwise; one number ``d`` means (-d, d).
        interpolation, border_mode, fill: how to sample (see ``WarpSpec``).

    Example:
        >>> Rotate(degrees=15).degrees
        (-15.0, 15.0)
    """

    kind: ClassVar[str] = "geometric"
    degrees: float | tuple[float, float] = (-15.0, 15.0)
    interpolation: str = "bilinear"
    border_mode: str = "constant"
    fill: float = 0.0

    def validate(self) -> None:
        self.degrees = span("Rotate.degrees", self.degrees, symmetric=True)

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> RotateParams:
        (angle,) = uniforms(rng, n, [pair(self.degrees)])
        return RotateParams(applied=applied, angle=angle)

    def matrix(self, params: Params, size: tuple[int, int]) -> Array:
        return M.affine_matrix(size, angle=expect(params, RotateParams, "Rotate.matrix").angle)


@register("scale")
@dataclass(kw_only=True)
class Scale(Op):
    """Zoom about the centre by a factor drawn uniformly from ``scale`` (>1 enlarges).

    Example:
        >>> Scale(scale=(0.9, 1.1)).scale
        (0.9, 1.1)
    """

    kind: ClassVar[str] = "geometric"
    scale: tuple[float, float] = (0.9, 1.1)
    interpolation: str = "bilinear"
    border_mode: str = "constant"
    fill: float = 0.0

    def validate(self) -> None:
        self.scale = span("Scale.scale", self.scale, symmetric=False, positive=True)

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> ScaleParams:
        (scale,) = uniforms(rng, n, [self.scale])
        return ScaleParams(applied=applied, scale=scale)

    def matrix(self, params: Params, size: tuple[int, int]) -> Array:
        return M.affine_matrix(size, scale=expect(params, ScaleParams, "Scale.matrix").scale)


@register("translate")
@dataclass(kw_only=True)
class Translate(Op):
    """Shift by up to ``translate = (max_dx, max_dy)`` as fractions of W and H (torchvision's convention),
    or within ``translate = ((lo_x, hi_x), (lo_y, hi_y))`` per axis (fractions in [-1, 1]).

    Example:
        >>> Translate(translate=0.1).translate
        (0.1, 0.1)
    """

    kind: ClassVar[str] = "geometric"
    translate: Shift = (0.1, 0.1)
    interpolation: str = "bilinear"
    border_mode: str = "constant"
    fill: float = 0.0

    def validate(self) -> None:
        self.translate = max_shift("Translate.translate", self.translate)

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> TranslateParams:
        tx, ty = uniforms(rng, n, list(shift_ranges(self.translate)))
        return TranslateParams(applied=applied, tx=tx, ty=ty)

    def matrix(self, params: Params, size: tuple[int, int]) -> Array:
        p = expect(params, TranslateParams, "Translate.matrix")
        return M.affine_matrix(size, tx=p.tx, ty=p.ty)


@register("shear")
@dataclass(kw_only=True)
class Shear(Op):
    """Shear about the centre: ``x += tan(shear_x) y``, ``y += tan(shear_y) x`` (degrees ranges).

    Example:
        >>> Shear(shear_x=10).shear_x
        (-10.0, 10.0)
    """

    kind: ClassVar[str] = "geometric"
    shear_x: float | tuple[float, float] = (-10.0, 10.0)
    shear_y: float | tuple[float, float] = (0.0, 0.0)
    interpolation: str = "bilinear"
    border_mode: str = "constant"
    fill: float = 0.0

    def validate(self) -> None:
        self.shear_x = span("Shear.shear_x", self.shear_x, symmetric=True)
        self.shear_y = span("Shear.shear_y", self.shear_y, symmetric=True)
        if max(map(abs, (*pair(self.shear_x), *pair(self.shear_y)))) >= 90:
            raise ValueError(
                f"Shear angles must be within (-90, 90) degrees, got {self.shear_x}, {self.shear_y}"
            )

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> ShearParams:
        sx, sy = uniforms(rng, n, [pair(self.shear_x), pair(self.shear_y)])
        return ShearParams(applied=applied, shear_x=sx, shear_y=sy)

    def matrix(self, params: Params, size: tuple[int, int]) -> Array:
        p = expect(params, ShearParams, "Shear.matrix")
        return M.affine_matrix(size, shear_x=p.shear_x, shear_y=p.shear_y)


@register("affine")
@dataclass(kw_only=True)
class Affine(Op):
    """Rotation, shift, zoom and shear drawn together: ``T . C . s R . Sh . C^-1``.

    Args:
        degrees: rotation range (counter-clockwise); one number ``d`` means (-d, d).
        translate: (max_dx, max_dy) fractions of W and H, or ((lo_x, hi_x), (lo_y, hi_y)) ranges.
        scale: zoom range.
        shear_x, shear_y: shear ranges in degrees.

    Example:
        >>> Affine(degrees=10, scale=(0.9, 1.1)).translate
        (0.0, 0.0)
    """

    kind: ClassVar[str] = "geometric"
    degrees: float | tuple[float, float] = (0.0, 0.0)
    translate: Shift = (0.0, 0.0)
    scale: tuple[float, float] = (1.0, 1.0)
    shear_x: float | tuple[float, float] = (0.0, 0.0)
    shear_y: float | tuple[float, float] = (0.0, 0.0)
    interpolation: str = "bilinear"
    border_mode: str = "constant"
    fill: float = 0.0

    def validate(self) -> None:
        self.degrees = span("Affine.degrees", self.degrees, symmetric=True)
        self.translate = max_shift("Affine.translate", self.translate)
        self.scale = span("Affine.scale", self.scale, symmetric=False, positive=True)
        self.shear_x = span("Affine.shear_x", self.shear_x, symmetric=True)
        self.shear_y = span("Affine.shear_y", self.shear_y, symmetric=True)
        if max(map(abs, (*pair(self.shear_x), *pair(self.shear_y)))) >= 90:
            raise ValueError(
                f"Affine shear must be within (-90, 90) degrees, got {self.shear_x}, {self.shear_y}"
            )

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> AffineParams:
        rx, ry = shift_ranges(self.translate)
        ranges = [
            pair(self.degrees),
            rx,
            ry,
            self.scale,
            pair(self.shear_x),
            pair(self.shear_y),
        ]
        angle, tx, ty, scale, shear_x, shear_y = uniforms(rng, n, ranges)
        return AffineParams(
            applied=applied, angle=angle, tx=tx, ty=ty, scale=scale, shear_x=shear_x, shear_y=shear_y
        )

    def matrix(self, params: Params, size: tuple[int, int]) -> Array:
        p = expect(params, AffineParams, "Affine.matrix")
        return M.affine_matrix(
            size, angle=p.angle, scale=p.scale, shear_x=p.shear_x, shear_y=p.shear_y, tx=p.tx, ty=p.ty
        )


# ---- flips and perspective -------------------------------------------------------------------
@register("horizontal_flip")
@dataclass(kw_only=True)
class HorizontalFlip(Op):
    """Mirror left-right (``x -> W - x``) with probability ``p`` (default 0.5).

    Example:
        >>> HorizontalFlip().p
        0.5
    """

    kind: ClassVar[str] = "geometric"
    border_free: ClassVar[bool] = True  # reads only pixels inside the image
    p: float = 0.5

    def matrix(self, params: Params, size: tuple[int, int]) -> Array:
        return M.flip_matrix(size, horizontal=True, like=params.applied, n=len(params.applied))


@register("vertical_flip")
@dataclass(kw_only=True)
class VerticalFlip(Op):
    """Mirror top-bottom (``y -> H - y``) with probability ``p`` (default 0.5).

    Example:
        >>> VerticalFlip(p=1.0).p
        1.0
    """

    kind: ClassVar[str] = "geometric"
    border_free: ClassVar[bool] = True  # reads only pixels inside the image
    p: float = 0.5

    def matrix(self, params: Params, size: tuple[int, int]) -> Array:
        return M.flip_matrix(size, horizontal=False, like=params.applied, n=len(params.applied))


@register("perspective")
@dataclass(kw_only=True)
class Perspective(Op):
    """Move each corner inward by up to ``distortion_scale / 2`` of W and H (torchvision's ranges).

    Example:
        >>> Perspective(distortion_scale=0.3).distortion_scale
        0.3
    """

    kind: ClassVar[str] = "geometric"
    distortion_scale: float = 0.5
    interpolation: str = "bilinear"
    border_mode: str = "constant"
    fill: float = 0.0

    def validate(self) -> None:
        if not 0.0 <= float(self.distortion_scale) <= 1.0:
            raise ValueError(f"Perspective.distortion_scale must be in [0, 1], got {self.distortion_scale}")

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> PerspectiveParams:
        u = block(rng, n, 8).T.reshape(n, 4, 2)
        return PerspectiveParams(applied=applied, offsets=u * (float(self.distortion_scale) / 2.0))

    def matrix(self, params: Params, size: tuple[int, int]) -> Array:
        return M.perspective_matrix(size, expect(params, PerspectiveParams, "Perspective.matrix").offsets)
