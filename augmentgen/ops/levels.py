"""Level ops of AutoAugment / RandAugment: posterize, solarize, invert, autocontrast, equalize, sharpness.

Per-pixel or per-channel (not affine, so they do not fuse with the color ops); one value per
sample, drawn from a range like the other ops. uint8 results equal torchvision's
(``transforms.v2.functional``) bit for bit; kernels in ``ops.functional.levels``.

Example:
    >>> import numpy as np
    >>> from augmentgen.core import Sample
    >>> op = Posterize(bits=3)
    >>> s = Sample(np.full((2, 2, 3), 77, np.uint8))
    >>> int(op.apply_sample(s, op.sample_params(s, np.random.default_rng(0))).image[0, 0, 0])
    64
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from augmentgen.core.params import Params
from augmentgen.core.registry import register
from augmentgen.core.rng import RNG, Array
from augmentgen.ops._draws import Range, as_range, expect, scalar, uniform_cols, whole
from augmentgen.ops.base import Op
from augmentgen.ops.functional import levels as flevels


@dataclass(frozen=True)
class PosterizeParams(Params):
    bits: Array  # [B] int64, 1..8


@register("posterize")
@dataclass(kw_only=True)
class Posterize(Op):
    """Keep the top ``bits`` bits of each 8-bit level (torchvision ``posterize``); 8 is the identity.

    Args:
        bits: ``(low, high)`` integers in 1..8, each equally likely (or one fixed number).
    """

    bits: int | tuple[int, int] = (4, 8)

    def _bits(self) -> tuple[int, int]:
        lo, hi = as_range("Posterize", "bits", self.bits, low=1, high=8)
        if lo != int(lo) or hi != int(hi):
            raise ValueError(f"Posterize.bits must be whole numbers in 1..8, got {self.bits!r}")
        return int(lo), int(hi)

    def validate(self) -> None:
        self._bits()

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        lo, hi = self._bits()
        (u,), _ = uniform_cols(rng, [(float(lo), float(hi) + 1.0)], n)
        return PosterizeParams(applied=applied, bits=whole(u, hi))

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        return flevels.posterize(image, torch.as_tensor(expect(params, PosterizeParams, self).bits))

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        return flevels.posterize_np(image, int(scalar(expect(params, PosterizeParams, self).bits)))


@dataclass(frozen=True)
class SolarizeParams(Params):
    threshold: Array  # [B] float in [0, 1]


@register("solarize")
@dataclass(kw_only=True)
class Solarize(Op):
    """Invert the values at or above ``threshold`` (torchvision ``solarize``; image units, 1 = only pure white).

    Args:
        threshold: ``(low, high)`` in [0, 1] (or one fixed number).
    """

    threshold: Range = (0.5, 1.0)

    def validate(self) -> None:
        as_range("Solarize", "threshold", self.threshold, low=0.0, high=1.0)

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        (t,), _ = uniform_cols(rng, [as_range("Solarize", "threshold", self.threshold)], n)
        return SolarizeParams(applied=applied, threshold=t)

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        return flevels.solarize(image, torch.as_tensor(expect(params, SolarizeParams, self).threshold))

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        return flevels.solarize_np(image, scalar(expect(params, SolarizeParams, self).threshold))


@dataclass(kw_only=True)
class _Unparameterized(Op):
    """A level op with no parameter of its own: ``KERNELS`` (the torch kernel, the numpy one)."""

    KERNELS: ClassVar[tuple[Callable[[Tensor], Tensor], Callable[[np.ndarray], np.ndarray]]]

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        return Params(applied=applied)

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        return type(self).KERNELS[0](image)

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        return type(self).KERNELS[1](image)


@register("invert")
@dataclass(kw_only=True)
class Invert(_Unparameterized):
    """Invert every value: ``255 - x`` (torchvision ``invert``, PIL ``ImageOps.invert``); AutoAugment's ``Invert``."""

    KERNELS = (flevels.invert, flevels.invert_np)


@register("autocontrast")
@dataclass(kw_only=True)
class AutoContrast(_Unparameterized):
    """Stretch each channel to the full range (torchvision ``autocontrast``, PIL ``ImageOps.autocontrast``)."""

    KERNELS = (flevels.autocontrast, flevels.autocontrast_np)


@register("equalize")
@dataclass(kw_only=True)
class Equalize(_Unparameterized):
    """Histogram-equalize each channel (torchvision ``equalize``, PIL ``ImageOps.equalize``)."""

    KERNELS = (flevels.equalize, flevels.equalize_np)


@dataclass(frozen=True)
class SharpnessParams(Params):
    factor: Array  # [B] float >= 0


@register("sharpness")
@dataclass(kw_only=True)
class Sharpness(Op):
    """Sharpen or soften against PIL's smoothed image (torchvision ``adjust_sharpness``); 1 is the identity.

    Args:
        factor: ``(low, high)`` with ``low >= 0`` (or one fixed number): 0 smooths, 2 sharpens twice.
    """

    factor: Range = (0.1, 1.9)

    def validate(self) -> None:
        as_range("Sharpness", "factor", self.factor, low=0.0)

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        (f,), _ = uniform_cols(rng, [as_range("Sharpness", "factor", self.factor)], n)
        return SharpnessParams(applied=applied, factor=f)

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        return flevels.sharpness(image, torch.as_tensor(expect(params, SharpnessParams, self).factor))

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        return flevels.sharpness_np(image, scalar(expect(params, SharpnessParams, self).factor))
