"""Color ops: brightness, contrast, saturation, hue, color_jitter, grayscale, rgb_shift,
channel_shuffle (affine, fusable), gamma and normalize (per-pixel).

The affine ones return a ``[B, 3, 4]`` matrix (see ``ops.functional.color``); the base class
applies it and the pipeline fuses runs of them into one pass. Per-sample calls take a
float fast path (params with one numpy row), the batched path stays in tensors.

Example:
    >>> import numpy as np
    >>> from augmentgen.core import Sample
    >>> op = ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2)
    >>> s = Sample(np.full((4, 4, 3), 128, np.uint8))
    >>> op.apply_sample(s, op.sample_params(s, np.random.default_rng(0))).image.shape
    (4, 4, 3)
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
from augmentgen.ops._draws import Range, as_range, expect, one_row_np, scalar, uniform_cols, whole
from augmentgen.ops.base import Op
from augmentgen.ops.functional import color as fcolor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _matrix(coef_fn: Callable[..., list[fcolor.Scalar]], values: list[Array], mean: Array | None) -> Array:
    """``coef_fn(*values[, gray])`` as ``[B, 3, 4]``; floats when every value is one numpy row."""
    if one_row_np(*values):  # per-sample path: ~3 us of float math and one tiny matmul
        args: list[fcolor.Scalar] = [float(v[0]) for v in values]
        if mean is not None:
            args.append(fcolor.gray_of(mean))
        return fcolor.combine_floats(coef_fn(*args))  # type: ignore[arg-type]
    args = list(values)
    if mean is not None:
        args.append(fcolor.gray_of(mean))
    return fcolor.combine(coef_fn(*args))


def _jitter_range(owner: str, name: str, value: Range, hue: bool = False) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
        if v < 0 or (hue and v > 0.5):
            raise ValueError(f"{owner}.{name} must be in [0, {0.5 if hue else 'inf'}), got {value!r}")
        return (-v, v) if hue else (max(0.0, 1.0 - v), 1.0 + v)
    return as_range(owner, name, value, low=-0.5 if hue else 0.0, high=0.5 if hue else None)


@dataclass(frozen=True)
class BrightnessParams(Params):
    factor: Array


@dataclass(frozen=True)
class ContrastParams(Params):
    factor: Array


@dataclass(frozen=True)
class SaturationParams(Params):
    factor: Array


@dataclass(frozen=True)
class HueParams(Params):
    shift: Array


@dataclass(frozen=True)
class ColorJitterParams(Params):
    brightness: Array
    contrast: Array
    saturation: Array
    hue: Array


@dataclass(frozen=True)
class GammaParams(Params):
    gamma: Array


@register("brightness")
@dataclass(kw_only=True)
class Brightness(Op):
    """Multiply by a factor drawn from ``factor`` (torchvision ``adjust_brightness``).

    Args:
        brightness: ``x`` for factors in ``[max(0, 1 - x), 1 + x]`` (as in ``ColorJitter``), or a
            ``(low, high)`` factor range; 0 (or ``(1, 1)``) is the identity.
    """

    kind: ClassVar[str] = "color"
    brightness: Range = 0.2

    def validate(self) -> None:
        _jitter_range("Brightness", "brightness", self.brightness)

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        (f,), _ = uniform_cols(rng, [_jitter_range("Brightness", "brightness", self.brightness)], n)
        return BrightnessParams(applied=applied, factor=f)

    def color_matrix(self, params: Params, mean: Array) -> Array:
        prm = expect(params, BrightnessParams, self)
        return _matrix(fcolor.brightness_coefs, [prm.factor], None)


@register("contrast")
@dataclass(kw_only=True)
class Contrast(Op):
    """Blend with the mean of the grayscale image (torchvision ``adjust_contrast``).

    Args:
        contrast: ``x`` for factors in ``[max(0, 1 - x), 1 + x]``, or a ``(low, high)`` factor
            range; 0 (or ``(1, 1)``) is the identity, a factor of 0 gives flat gray.
    """

    kind: ClassVar[str] = "color"
    contrast: Range = 0.2

    def validate(self) -> None:
        _jitter_range("Contrast", "contrast", self.contrast)

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        (f,), _ = uniform_cols(rng, [_jitter_range("Contrast", "contrast", self.contrast)], n)
        return ContrastParams(applied=applied, factor=f)

    def color_matrix(self, params: Params, mean: Array) -> Array:
        prm = expect(params, ContrastParams, self)
        return _matrix(fcolor.contrast_coefs, [prm.factor], mean)


@register("saturation")
@dataclass(kw_only=True)
class Saturation(Op):
    """Blend with the grayscale image (torchvision ``adjust_saturation``).

    Args:
        saturation: ``x`` for factors in ``[max(0, 1 - x), 1 + x]``, or a ``(low, high)`` factor
            range; 0 (or ``(1, 1)``) is the identity, a factor of 0 gives grayscale.
    """

    kind: ClassVar[str] = "color"
    saturation: Range = 0.2

    def validate(self) -> None:
        _jitter_range("Saturation", "saturation", self.saturation)

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        (f,), _ = uniform_cols(rng, [_jitter_range("Saturation", "saturation", self.saturation)], n)
        return SaturationParams(applied=applied, factor=f)

    def color_matrix(self, params: Params, mean: Array) -> Array:
        prm = expect(params, SaturationParams, self)
        return _matrix(fcolor.saturation_coefs, [prm.factor], None)


@register("hue")
@dataclass(kw_only=True)
class Hue(Op):
    """Rotate hue about the gray axis by ``h`` turns (affine, so it fuses).

    Tolerance vs torchvision's HSV ``adjust_hue``: mean abs difference about 0.011 at
    ``|h| = 0.02``, 0.027 at 0.05, 0.05 at 0.1 on natural photos (see
    ``ops.functional.color``); gray pixels are unchanged exactly.

    Args:
        hue: ``x <= 0.5`` for shifts in ``[-x, x]`` turns, or a ``(low, high)`` range within
            [-0.5, 0.5]; 0 is the identity.
    """

    kind: ClassVar[str] = "color"
    hue: Range = 0.05

    def validate(self) -> None:
        _jitter_range("Hue", "hue", self.hue, hue=True)

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        (h,), _ = uniform_cols(rng, [_jitter_range("Hue", "hue", self.hue, hue=True)], n)
        return HueParams(applied=applied, shift=h)

    def color_matrix(self, params: Params, mean: Array) -> Array:
        prm = expect(params, HueParams, self)
        return _matrix(fcolor.hue_coefs, [prm.shift], None)


@register("color_jitter")
@dataclass(kw_only=True)
class ColorJitter(Op):
    """Brightness, contrast, saturation and hue in ONE ``[B, 3, 4]`` matrix per sample.

    Fixed order brightness -> contrast -> saturation -> hue (torchvision draws a random order
    per call; a fixed order keeps replay and fusion trivial). Arguments follow torchvision:
    a number ``x`` means factors in ``[max(0, 1 - x), 1 + x]`` (hue: shifts in ``[-x, x]``,
    ``x <= 0.5``); a pair is the range itself. Torchvision clamps after each step, the fused
    matrix clamps once at the end; they differ only where a step leaves [0, 1].

    Args:
        brightness, contrast, saturation: number or ``(low, high)`` factor range.
        hue: number or ``(low, high)`` shift range in turns.
    """

    kind: ClassVar[str] = "color"
    brightness: Range = 0.2
    contrast: Range = 0.2
    saturation: Range = 0.2
    hue: Range = 0.0

    def _ranges(self) -> list[tuple[float, float]]:
        # cached against the current field values: the per-sample path calls this per image
        key = (self.brightness, self.contrast, self.saturation, self.hue)
        cached = self.__dict__.get("_ranges_cache")
        if cached is not None and cached[0] == key:
            return cached[1]  # type: ignore[no-any-return]
        ranges = [
            _jitter_range("ColorJitter", "brightness", self.brightness),
            _jitter_range("ColorJitter", "contrast", self.contrast),
            _jitter_range("ColorJitter", "saturation", self.saturation),
            _jitter_range("ColorJitter", "hue", self.hue, hue=True),
        ]
        self.__dict__["_ranges_cache"] = (key, ranges)
        return ranges

    def validate(self) -> None:
        self._ranges()

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        (b, c, s, h), _ = uniform_cols(rng, self._ranges(), n)
        return ColorJitterParams(applied=applied, brightness=b, contrast=c, saturation=s, hue=h)

    def color_matrix(self, params: Params, mean: Array) -> Array:
        prm = expect(params, ColorJitterParams, self)
        vals = [prm.brightness, prm.contrast, prm.saturation, prm.hue]
        return _matrix(fcolor.jitter_coefs, vals, mean)


@register("grayscale")
@dataclass(kw_only=True)
class Grayscale(Op):
    """Replace RGB by its luma (0.299, 0.587, 0.114), keeping 3 channels; C=1 is unchanged."""

    kind: ClassVar[str] = "color"

    def color_matrix(self, params: Params, mean: Array) -> Array:
        coefs = fcolor.grayscale_coefs()
        if isinstance(mean, Tensor):
            col = torch.zeros(mean.shape[0], device=mean.device)
            return fcolor.combine([col + float(c) for c in coefs])
        return np.repeat(np.asarray(fcolor.combine(coefs)), mean.shape[0], axis=0)


@dataclass(frozen=True)
class RGBShiftParams(Params):
    r: Array  # [B] offsets in image units
    g: Array
    b: Array


@register("rgb_shift")
@dataclass(kw_only=True)
class RGBShift(Op):
    """Add an offset per channel (albumentations ``RGBShift``; affine, so it fuses).

    Args:
        r_shift, g_shift, b_shift: ``x`` for offsets in ``[-x, x]``, or a ``(low, high)`` range,
            in image units within [-1, 1] (albumentations' limit of 20 levels is ``20 / 255``).
            A C=1 image takes the luma of the three offsets.
    """

    kind: ClassVar[str] = "color"
    r_shift: Range = 20 / 255
    g_shift: Range = 20 / 255
    b_shift: Range = 20 / 255

    def _ranges(self) -> list[tuple[float, float]]:
        out = []
        for name in ("r_shift", "g_shift", "b_shift"):
            v = getattr(self, name)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                v = (-abs(float(v)), abs(float(v)))
            out.append(as_range("RGBShift", name, v, low=-1.0, high=1.0))
        return out

    def validate(self) -> None:
        self._ranges()

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        (r, g, b), _ = uniform_cols(rng, self._ranges(), n)
        return RGBShiftParams(applied=applied, r=r, g=g, b=b)

    def color_matrix(self, params: Params, mean: Array) -> Array:
        prm = expect(params, RGBShiftParams, self)
        if isinstance(prm.r, Tensor):
            m = torch.eye(3, 4, device=prm.r.device).repeat(prm.r.shape[0], 1, 1)
            m[:, :, 3] = torch.stack([torch.as_tensor(v, dtype=torch.float32) for v in (prm.r, prm.g, prm.b)], -1)
            return m
        m_np = np.repeat(np.eye(3, 4, dtype=np.float32)[None], np.asarray(prm.r).shape[0], axis=0)
        m_np[:, :, 3] = np.stack([np.asarray(v, np.float32) for v in (prm.r, prm.g, prm.b)], -1)
        return m_np


# the six orders of (R, G, B): row k of the output takes channel PERMUTATIONS[p][k]
PERMUTATIONS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
_PERM_MATS = np.stack([np.eye(3, 4, dtype=np.float32)[list(p)] for p in PERMUTATIONS])  # [6, 3, 4]


@dataclass(frozen=True)
class ChannelShuffleParams(Params):
    order: Array  # [B] int64: an index into PERMUTATIONS


@register("channel_shuffle")
@dataclass(kw_only=True)
class ChannelShuffle(Op):
    """Reorder the RGB channels, one of the six orders per sample, the identity included
    (albumentations ``ChannelShuffle``; a permutation matrix, so it fuses). C=1 is unchanged."""

    kind: ClassVar[str] = "color"

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        (u,), _ = uniform_cols(rng, [(0.0, 6.0)], n)
        return ChannelShuffleParams(applied=applied, order=whole(u, len(PERMUTATIONS) - 1))

    def color_matrix(self, params: Params, mean: Array) -> Array:
        order = expect(params, ChannelShuffleParams, self).order
        if isinstance(order, Tensor):
            return torch.as_tensor(_PERM_MATS, device=order.device)[order.long()]
        return _PERM_MATS[np.asarray(order, np.int64)]


@register("gamma")
@dataclass(kw_only=True)
class Gamma(Op):
    """``x ** gamma`` with gamma log-uniform in ``gamma`` (torchvision ``adjust_gamma``, gain 1).

    Per pixel, not affine: uint8 samples go through one 256-entry ``cv2.LUT``.

    Args:
        gamma: ``(low, high)`` with ``0 < low`` (or one fixed number); 1 is the identity.
    """

    gamma: Range = (0.8, 1.25)

    def validate(self) -> None:
        lo, _ = as_range("Gamma", "gamma", self.gamma)
        if lo <= 0:
            raise ValueError(f"Gamma.gamma must be positive, got {self.gamma!r}")

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        lo, hi = as_range("Gamma", "gamma", self.gamma)
        (lg,), _ = uniform_cols(rng, [(float(np.log(lo)), float(np.log(hi)))], n)
        g = lg.exp() if isinstance(lg, Tensor) else np.exp(lg)
        return GammaParams(applied=applied, gamma=g)

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        prm = expect(params, GammaParams, self)
        return fcolor.adjust_gamma(image, torch.as_tensor(prm.gamma))

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        prm = expect(params, GammaParams, self)
        return fcolor.adjust_gamma_np(image, scalar(prm.gamma))


@register("normalize")
@dataclass(kw_only=True)
class Normalize(Op):
    """``(x - mean) / std`` per channel; uint8 is scaled to [0, 1] first, output is float32.

    ``p`` must be 0 or 1: a batch normalized in some rows only would mix two value scales.

    Args:
        mean, std: one value per channel (or one value for all); default ImageNet.
    """

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def validate(self) -> None:
        if self.p not in (0.0, 1.0):
            raise ValueError(
                f"Normalize.p must be 0 or 1 (partly normalized batches mix scales), got {self.p}"
            )
        if len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std)):
            raise ValueError(f"Normalize.mean {self.mean} and std {self.std} must have the same length")
        if any(float(s) <= 0 for s in self.std):
            raise ValueError(f"Normalize.std must be positive, got {self.std}")

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        return fcolor.normalize(image, tuple(self.mean), tuple(self.std))

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        return fcolor.normalize_np(image, tuple(self.mean), tuple(self.std))
