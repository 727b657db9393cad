"""Blur ops: Gaussian blur (per-sample sigma), motion blur (per-sample length and angle), median blur.

Both backends build identical float32 kernels from the params; the batched path filters the
whole batch with one grouped convolution (see ``ops.functional.blur``).

Example:
    >>> import torch
    >>> from augmentgen.core import Batch
    >>> op = MotionBlur(length=(3.0, 7.0))
    >>> b = Batch(torch.rand(4, 3, 16, 16))
    >>> op.apply(b, op.sample_params(b, torch.Generator().manual_seed(0))).image.shape
    torch.Size([4, 3, 16, 16])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from augmentgen.core.params import Params
from augmentgen.core.registry import register
from augmentgen.core.rng import RNG, Array
from augmentgen.ops._draws import Range, as_range, expect, scalar, uniform_cols, whole
from augmentgen.ops.base import Op
from augmentgen.ops.functional import blur as fblur


@dataclass(frozen=True)
class GaussianBlurParams(Params):
    sigma: Array


@dataclass(frozen=True)
class MotionBlurParams(Params):
    length: Array
    angle: Array


@register("gaussian_blur")
@dataclass(kw_only=True)
class GaussianBlur(Op):
    """Gaussian blur with sigma (pixels) drawn per sample (torchvision ``gaussian_blur``).

    Args:
        sigma: ``(low, high)`` pixels (or one fixed number); 0 is the identity.
        kernel_size: odd size, or 0 for ``2 * ceil(3 * sigma_high) + 1``. One size for all
            samples, so a batch is one grouped convolution.
    """

    sigma: Range = (0.1, 2.0)
    kernel_size: int = 0

    def validate(self) -> None:
        as_range("GaussianBlur", "sigma", self.sigma, low=0.0)
        k = self.kernel_size
        if not isinstance(k, int) or k < 0 or (k > 0 and k % 2 == 0):
            raise ValueError(f"GaussianBlur.kernel_size must be 0 (auto) or a positive odd int, got {k!r}")

    def ksize(self) -> int:
        """The kernel size used for every sample."""
        if self.kernel_size:
            return int(self.kernel_size)
        return fblur.auto_gaussian_ksize(as_range("GaussianBlur", "sigma", self.sigma)[1])

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        (s,), _ = uniform_cols(rng, [as_range("GaussianBlur", "sigma", self.sigma)], n)
        return GaussianBlurParams(applied=applied, sigma=s)

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        prm = expect(params, GaussianBlurParams, self)
        return fblur.gaussian_blur(image, torch.as_tensor(prm.sigma), self.ksize())

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        prm = expect(params, GaussianBlurParams, self)
        return fblur.gaussian_blur_np(image, scalar(prm.sigma), self.ksize())


@register("motion_blur")
@dataclass(kw_only=True)
class MotionBlur(Op):
    """Blur along a line segment of per-sample length and angle (camera shake).

    Args:
        length: ``(low, high)`` segment length in pixels (or one fixed number); 0 is the identity.
        angle: ``(low, high)`` degrees, counter-clockwise from +x on screen.
    """

    length: Range = (3.0, 9.0)
    angle: Range = (0.0, 180.0)

    def validate(self) -> None:
        as_range("MotionBlur", "length", self.length, low=0.0)
        as_range("MotionBlur", "angle", self.angle)

    def ksize(self) -> int:
        """Kernel size shared by all samples (holds the longest segment)."""
        return fblur.motion_ksize(as_range("MotionBlur", "length", self.length)[1])

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        ranges = [as_range("MotionBlur", "length", self.length), as_range("MotionBlur", "angle", self.angle)]
        (ln, ang), _ = uniform_cols(rng, ranges, n)
        return MotionBlurParams(applied=applied, length=ln, angle=ang)

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        prm = expect(params, MotionBlurParams, self)
        length = torch.as_tensor(prm.length, device=image.device)
        kernels = fblur.motion_kernel(length, torch.as_tensor(prm.angle, device=image.device), self.ksize())
        return fblur.motion_blur(image, kernels)

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        prm = expect(params, MotionBlurParams, self)
        length = scalar(prm.length)
        if length == 0.0:
            return image
        return fblur.motion_blur_np(image, fblur.motion_kernel_np(length, scalar(prm.angle), self.ksize()))


@dataclass(frozen=True)
class MedianBlurParams(Params):
    ksize: Array  # [B] int64, odd


@register("median_blur")
@dataclass(kw_only=True)
class MedianBlur(Op):
    """Median filter, the window drawn per sample among the odd sizes of ``ksize`` (albumentations
    ``MedianBlur(blur_limit)``; ``cv2.medianBlur``, edges replicated). Removes salt and pepper.

    Args:
        ksize: ``(low, high)`` odd window sizes >= 3, each odd size equally likely (or one fixed size).
            OpenCV filters uint8 at any size and float32 up to 5; float images with larger windows
            take the unfolded-window median (about 100 ms a 224 px RGB image on a CPU core).
    """

    ksize: int | tuple[int, int] = (3, 7)

    def _sizes(self) -> list[int]:
        lo, hi = as_range("MedianBlur", "ksize", self.ksize, low=3.0)
        if lo != int(lo) or hi != int(hi) or int(lo) % 2 == 0 or int(hi) % 2 == 0:
            raise ValueError(f"MedianBlur.ksize must be odd whole numbers >= 3, got {self.ksize!r}")
        return list(range(int(lo), int(hi) + 1, 2))

    def validate(self) -> None:
        self._sizes()

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        sizes = self._sizes()
        (u,), _ = uniform_cols(rng, [(0.0, float(len(sizes)))], n)
        pick = whole(u, len(sizes) - 1)
        if isinstance(pick, Tensor):
            return MedianBlurParams(applied=applied, ksize=torch.as_tensor(sizes, device=pick.device)[pick])
        return MedianBlurParams(applied=applied, ksize=np.asarray(sizes, np.int64)[pick])

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        return fblur.median_blur(image, torch.as_tensor(expect(params, MedianBlurParams, self).ksize))

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        return fblur.median_blur_np(image, int(scalar(expect(params, MedianBlurParams, self).ksize)))
