"""Noise ops: gaussian, shot (Poisson-like), speckle and salt-and-pepper noise.

Every op draws, per sample, its magnitude and an ``offset`` into the fixed noise bank of
``ops.functional.noise``; the noise itself is a pure function of ``(image, params)``, so
replay is exact and both backends see the same N(0, 1) values (uint8 results agree to one
level, float to rounding).

Example:
    >>> import numpy as np
    >>> from augmentgen.core import Sample
    >>> op = GaussianNoise(sigma=(0.03, 0.03))
    >>> s = Sample(np.full((8, 8, 3), 128, np.uint8))
    >>> out = op.apply_sample(s, op.sample_params(s, np.random.default_rng(0))).image
    >>> out.dtype, out.shape
    (dtype('uint8'), (8, 8, 3))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from augmentgen.core.params import Params
from augmentgen.core.registry import register
from augmentgen.core.rng import RNG, Array
from augmentgen.ops._draws import Range, as_range, expect, offsets, scalar, uniform_cols
from augmentgen.ops.base import Op
from augmentgen.ops.functional import noise as fnoise


@dataclass(frozen=True)
class GaussianNoiseParams(Params):
    sigma: Array
    offset: Array


@dataclass(frozen=True)
class ShotNoiseParams(Params):
    scale: Array
    offset: Array


@dataclass(frozen=True)
class SpeckleNoiseParams(Params):
    sigma: Array
    offset: Array


@dataclass(frozen=True)
class SaltAndPepperParams(Params):
    amount: Array
    offset: Array


def _draw_with_offset(rng: RNG, rng_range: tuple[float, float], n: int) -> tuple[Array, Array]:
    """A magnitude in ``rng_range`` and a bank offset per sample, from one ``[n, 2]`` uniform draw."""
    if n == 1 and type(rng) is np.random.Generator:  # per-sample path: float math (StreamRNG: rows)
        u0, u1 = rng.random(2).tolist()
        lo, hi = rng_range
        v = np.array([lo + (hi - lo) * u0], np.float32)
        return v, np.array([int(u1 * fnoise.BANK_SIZE)], np.int64)
    (v_a, _), u = uniform_cols(rng, [rng_range, (0.0, 1.0)], n)
    return v_a, offsets(u[:, 1], fnoise.BANK_SIZE)


@register("gaussian_noise")
@dataclass(kw_only=True)
class GaussianNoise(Op):
    """Add ``sigma * N(0, 1)`` per pixel and channel, sigma in [0, 1] image units.

    Args:
        sigma: ``(low, high)`` in [0, 1] (or one fixed number); 0 is the identity.
    """

    sigma: Range = (0.01, 0.05)

    def validate(self) -> None:
        as_range("GaussianNoise", "sigma", self.sigma, low=0.0, high=1.0)

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        s, o = _draw_with_offset(rng, as_range("GaussianNoise", "sigma", self.sigma), n)
        return GaussianNoiseParams(applied=applied, sigma=s, offset=o)

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        prm = expect(params, GaussianNoiseParams, self)
        return fnoise.gaussian_noise(image, torch.as_tensor(prm.sigma), torch.as_tensor(prm.offset))

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        prm = expect(params, GaussianNoiseParams, self)
        return fnoise.gaussian_noise_np(image, scalar(prm.sigma), int(scalar(prm.offset)))

    def apply_images_np(self, images: list[np.ndarray], params: Params) -> list[np.ndarray]:
        prm = expect(params.to_numpy(), GaussianNoiseParams, self)
        applied = np.asarray(prm.applied, dtype=bool).tolist()
        sig = np.asarray(prm.sigma, np.float32).reshape(-1).tolist()  # float32 -> float, as scalar()
        off = np.asarray(prm.offset).reshape(-1).tolist()
        noise = fnoise.gaussian_noise_np
        return [noise(im, sig[i], int(off[i])) if applied[i] else im for i, im in enumerate(images)]


@register("shot_noise")
@dataclass(kw_only=True)
class ShotNoise(Op):
    """Poisson-like noise ``x + sqrt(scale * x) * N(0, 1)``: brighter pixels get more noise.

    ``scale`` is the inverse photon count per unit intensity (``Poisson(x / scale) * scale``
    has that mean and variance); the Gaussian approximation keeps the noise a pure function
    of the params and differentiable.

    Args:
        scale: ``(low, high)`` in [0, 1] (or one fixed number); 0 is the identity.
    """

    scale: Range = (0.001, 0.01)

    def validate(self) -> None:
        as_range("ShotNoise", "scale", self.scale, low=0.0, high=1.0)

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        s, o = _draw_with_offset(rng, as_range("ShotNoise", "scale", self.scale), n)
        return ShotNoiseParams(applied=applied, scale=s, offset=o)

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        prm = expect(params, ShotNoiseParams, self)
        return fnoise.shot_noise(image, torch.as_tensor(prm.scale), torch.as_tensor(prm.offset))

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        prm = expect(params, ShotNoiseParams, self)
        return fnoise.shot_noise_np(image, scalar(prm.scale), int(scalar(prm.offset)))


@register("speckle_noise")
@dataclass(kw_only=True)
class SpeckleNoise(Op):
    """Multiplicative noise ``x * (1 + sigma * N(0, 1))``.

    Args:
        sigma: ``(low, high)`` in [0, 1] (or one fixed number); 0 is the identity.
    """

    sigma: Range = (0.05, 0.15)

    def validate(self) -> None:
        as_range("SpeckleNoise", "sigma", self.sigma, low=0.0, high=1.0)

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        s, o = _draw_with_offset(rng, as_range("SpeckleNoise", "sigma", self.sigma), n)
        return SpeckleNoiseParams(applied=applied, sigma=s, offset=o)

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        prm = expect(params, SpeckleNoiseParams, self)
        return fnoise.speckle_noise(image, torch.as_tensor(prm.sigma), torch.as_tensor(prm.offset))

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        prm = expect(params, SpeckleNoiseParams, self)
        return fnoise.speckle_noise_np(image, scalar(prm.sigma), int(scalar(prm.offset)))


@register("salt_and_pepper")
@dataclass(kw_only=True)
class SaltAndPepper(Op):
    """Turn a fraction ``amount`` of pixels (all channels) white or black.

    Args:
        amount: ``(low, high)`` fraction of pixels in [0, 1] (or one fixed number); 0 is the identity.
        salt_ratio: share of the hit pixels that turn white.
    """

    amount: Range = (0.01, 0.05)
    salt_ratio: float = 0.5

    def validate(self) -> None:
        as_range("SaltAndPepper", "amount", self.amount, low=0.0, high=1.0)
        if not 0.0 <= float(self.salt_ratio) <= 1.0:
            raise ValueError(f"SaltAndPepper.salt_ratio must be in [0, 1], got {self.salt_ratio!r}")

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        a, o = _draw_with_offset(rng, as_range("SaltAndPepper", "amount", self.amount), n)
        return SaltAndPepperParams(applied=applied, amount=a, offset=o)

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        prm = expect(params, SaltAndPepperParams, self)
        return fnoise.salt_and_pepper(
            image, torch.as_tensor(prm.amount), torch.as_tensor(prm.offset), float(self.salt_ratio)
        )

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        prm = expect(params, SaltAndPepperParams, self)
        return fnoise.salt_and_pepper_np(
            image, scalar(prm.amount), int(scalar(prm.offset)), float(self.salt_ratio)
        )


# The erasing ops live in their own module; they are re-exported here beside the other
# "corrupt some pixels" ops (``from augmentgen.ops.noise import Cutout``).
from augmentgen.ops.erasing import Cutout, RandomErasing  # noqa: E402

__all__ = [
    "Cutout",
    "GaussianNoise",
    "GaussianNoiseParams",
    "RandomErasing",
    "SaltAndPepper",
    "SaltAndPepperParams",
    "ShotNoise",
    "ShotNoiseParams",
    "SpeckleNoise",
    "SpeckleNoiseParams",
]
