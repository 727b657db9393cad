"""Noise kernels driven by a fixed noise bank, so noise is a pure function of (image, params).

Why a bank: replay and the two backends need ``apply(x, params)`` to be deterministic, so
no RNG may run inside a kernel, and drawing ``H*W*C`` normals per image is also far too
slow on the per-sample path (``standard_normal`` for 224x224x3 costs ~2 ms, the whole
pipeline has ~450 us). Instead ``BANK_SIZE`` N(0, 1) float32 values are built once from a
fixed counter-based generator (splitmix64 + Box-Muller in float64, so the table does not
depend on the numpy version, the machine or the device) and each sample draws only an
``offset``: its noise is ``bank[offset : offset + n]`` in HWC order (index
``offset + (h * W + w) * C + c``, wrapping modulo ``BANK_SIZE``).

- per-sample path: the window is a zero-copy slice of a cyclically extended bank, consumed
  by one saturating OpenCV call (``cv2.addWeighted`` with ``dtype=CV_8U``), ~2.5 us at
  32 px and ~55 us at 224 px;
- batched path: ``bank.unfold(0, n, 1)[offset]`` gathers every row's window in one
  indexing op (no loop over samples, no ``[B, n]`` int64 index tensor).

Both backends read the same float32 values, so they agree up to float rounding (uint8:
at most 1 level). Trade-off: within an image the values are i.i.d. N(0, 1); across images
they are windows of one 2^20-value table, and an image larger than 2^20 values sees the
table repeat with that period, harmless for augmentation.
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist

import cv2
import numpy as np
import torch
from torch import Tensor

BANK_SIZE = 1 << 20
_BANK_KEY = 0x6A09E667F3BCC909  # fixed; changing it changes every replayed noise sample


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.asarray(x ^ (x >> np.uint64(31)), np.uint64)


@lru_cache(maxsize=1)
def _base_bank() -> np.ndarray:
    half = BANK_SIZE // 2
    ctr = np.arange(2 * half, dtype=np.uint64) ^ np.uint64(_BANK_KEY)
    bits = _splitmix64(ctr) >> np.uint64(11)  # 53 random bits
    u = bits.astype(np.float64) * 2.0**-53
    u1, u2 = 1.0 - u[:half], u[half:]  # u1 in (0, 1]
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.empty(BANK_SIZE, np.float64)
    z[0::2] = r * np.cos(2.0 * math.pi * u2)
    z[1::2] = r * np.sin(2.0 * math.pi * u2)
    return z.astype(np.float32)


def _ext_len(n: int) -> int:
    return max(1 << 16, 1 << (max(n, 1) - 1).bit_length())


@lru_cache(maxsize=4)
def _bank_np(ext: int) -> np.ndarray:
    bank = np.resize(_base_bank(), BANK_SIZE + ext)  # cyclic repeat: windows never need wrapping
    bank.flags.writeable = False
    return bank


@lru_cache(maxsize=8)
def _bank_torch(device: torch.device, ext: int) -> Tensor:
    with torch.inference_mode(False):  # cached past any inference_mode block (see color._basis_t)
        return torch.from_numpy(np.array(_bank_np(ext))).to(device)


def noise_bank() -> np.ndarray:
    """The ``[BANK_SIZE]`` float32 table of N(0, 1) values every noise op reads (read-only)."""
    return _bank_np(1 << 16)[:BANK_SIZE]


def noise_window_np(offset: int, n: int) -> np.ndarray:
    """``bank[offset : offset + n]`` (cyclic), a read-only float32 view."""
    o = int(offset) % BANK_SIZE
    return _bank_np(_ext_len(n) if n > 1 << 16 else 1 << 16)[o : o + n]


def noise_windows(offset: Tensor, n: int, device: torch.device) -> Tensor:
    """``[B, n]`` float32 windows ``bank[offset_b : offset_b + n]`` (cyclic), gathered in one op."""
    bank = _bank_torch(torch.device(device), _ext_len(n))
    idx = offset.to(device=bank.device, dtype=torch.int64).remainder(BANK_SIZE)
    return bank.unfold(0, n, 1)[idx]


def _hwc_noise(offset: Tensor, shape: tuple[int, int, int, int], device: torch.device) -> Tensor:
    b, c, h, w = shape
    z = noise_windows(offset, h * w * c, device)
    return z.reshape(b, h, w, c).permute(0, 3, 1, 2)  # [B, C, H, W], HWC order in the bank


def _col(v: Tensor, like: Tensor) -> Tensor:
    return v.to(device=like.device, dtype=torch.float32).reshape(-1, 1, 1, 1)


def _finish(image: Tensor, out01: Tensor) -> Tensor:
    """Clamp an [0, 1]-unit result and return it in ``image``'s dtype."""
    if image.dtype == torch.uint8:
        return (out01 * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    return out01.clamp(0.0, 1.0).to(image.dtype)


def _as01(image: Tensor) -> Tensor:
    if image.dtype == torch.uint8:
        return image.to(torch.float32) / 255.0
    if not image.is_floating_point():
        raise TypeError(f"noise kernels need float or uint8 images, got {image.dtype}")
    return image


def gaussian_noise(image: Tensor, sigma: Tensor, offset: Tensor) -> Tensor:
    """``x + sigma * z`` per sample (``sigma`` ``[B]`` in [0, 1] units), clamped, dtype kept.

    uint8 is computed as ``x + 255 sigma z`` in float32 and rounded, like the per-sample path.

    Example:
        >>> x = torch.full((2, 3, 4, 4), 0.5)
        >>> torch.equal(gaussian_noise(x, torch.zeros(2), torch.tensor([0, 7])), x)
        True
    """
    z = _hwc_noise(offset, tuple(image.shape), image.device)  # type: ignore[arg-type]
    if image.dtype == torch.uint8:
        out = torch.addcmul(image.to(torch.float32), _col(sigma, image) * 255.0, z)
        return out.round_().clamp_(0, 255).to(torch.uint8)
    x = _as01(image)
    out = torch.addcmul(x, _col(sigma, image).to(x.dtype), z.to(x.dtype))
    return out.clamp(0.0, 1.0) if out.requires_grad else out.clamp_(0.0, 1.0)


def _flat(image: np.ndarray) -> tuple[np.ndarray, int]:
    """``[H, W*C]`` view (OpenCV then sees one channel, so scalars apply to every value)."""
    if not image.flags.c_contiguous:
        image = np.ascontiguousarray(image)
    return image.reshape(image.shape[0], -1), image.size


def gaussian_noise_np(image: np.ndarray, sigma: float, offset: int) -> np.ndarray:
    """Per-sample ``x + sigma * z``: uint8 in one saturating ``cv2.addWeighted``."""
    if sigma == 0.0:
        return image
    img2, n = _flat(image)
    z = noise_window_np(offset, n).reshape(img2.shape)
    if image.dtype == np.uint8:
        out = cv2.addWeighted(img2, 1.0, z, float(sigma) * 255.0, 0.0, dtype=cv2.CV_8U)
    else:
        out = cv2.scaleAdd(z, float(sigma), img2.astype(np.float32, copy=False))
        np.clip(out, 0.0, 1.0, out=out)
    return out.reshape(image.shape)


def _safe_sqrt(v: Tensor) -> Tensor:
    # sqrt with a finite gradient at 0 and an exact 0 there (identity at scale 0).
    return torch.where(v > 0, v.clamp_min(1e-12).sqrt(), torch.zeros_like(v))


def shot_noise(image: Tensor, scale: Tensor, offset: Tensor) -> Tensor:
    """Poisson-like noise ``x + sqrt(scale * x) * z`` (Gaussian approximation of
    ``Poisson(x / scale) * scale``; ``scale`` ``[B]`` is photons^-1 per unit intensity)."""
    z = _hwc_noise(offset, tuple(image.shape), image.device)  # type: ignore[arg-type]
    x = _as01(image)
    std = _safe_sqrt(_col(scale, image).to(x.dtype) * x)
    return _finish(image, x + std * z.to(x.dtype))


def shot_noise_np(image: np.ndarray, scale: float, offset: int) -> np.ndarray:
    """Per-sample shot noise; uint8 takes the per-pixel std from a 256-entry float LUT."""
    if scale == 0.0:
        return image
    img2, n = _flat(image)
    z = noise_window_np(offset, n).reshape(img2.shape)
    if image.dtype == np.uint8:
        lut = (255.0 * np.sqrt(float(scale) * np.arange(256) / 255.0)).astype(np.float32)
        std = cv2.LUT(img2, lut)
        out = cv2.add(img2, cv2.multiply(std, z), dtype=cv2.CV_8U)
    else:
        x = img2.astype(np.float32, copy=False)
        out = np.clip(x + np.sqrt(np.float32(scale) * np.maximum(x, 0.0)) * z, 0.0, 1.0)
    return out.reshape(image.shape)


def speckle_noise(image: Tensor, sigma: Tensor, offset: Tensor) -> Tensor:
    """Multiplicative noise ``x + sigma * x * z`` per sample."""
    z = _hwc_noise(offset, tuple(image.shape), image.device)  # type: ignore[arg-type]
    x = _as01(image)
    return _finish(image, x + _col(sigma, image).to(x.dtype) * x * z.to(x.dtype))


def speckle_noise_np(image: np.ndarray, sigma: float, offset: int) -> np.ndarray:
    """Per-sample speckle noise: one ``cv2.multiply`` and one saturating ``cv2.add``."""
    if sigma == 0.0:
        return image
    img2, n = _flat(image)
    z = noise_window_np(offset, n).reshape(img2.shape)
    if image.dtype == np.uint8:
        noise = cv2.multiply(img2, z, scale=float(sigma), dtype=cv2.CV_32F)
        out = cv2.add(img2, noise, dtype=cv2.CV_8U)
    else:
        x = img2.astype(np.float32, copy=False)
        out = np.clip(x + np.float32(sigma) * x * z, 0.0, 1.0)
    return out.reshape(image.shape)


def salt_pepper_thresholds(amount: float, salt_ratio: float) -> tuple[float, float]:
    """``(low, high)``: a pixel whose bank value is ``< low`` turns black, ``> high`` white.

    ``P(z > high) = amount * salt_ratio`` and ``P(z < low) = amount * (1 - salt_ratio)``.
    """
    nd = NormalDist()
    salt, pepper = amount * salt_ratio, amount * (1.0 - salt_ratio)
    high = nd.inv_cdf(1.0 - salt) if salt > 0 else math.inf
    low = nd.inv_cdf(pepper) if pepper > 0 else -math.inf
    return low, high


def salt_and_pepper(image: Tensor, amount: Tensor, offset: Tensor, salt_ratio: float = 0.5) -> Tensor:
    """Set a fraction ``amount`` ``[B]`` of pixels (all channels) to white or black.

    One bank value per pixel (index ``offset + h * W + w``); the thresholds are normal
    quantiles, so the per-sample path picks exactly the same pixels.
    """
    b, c, h, w = image.shape
    z = noise_windows(offset, h * w, image.device).reshape(b, 1, h, w)
    a = amount.to(device=image.device, dtype=torch.float64).clamp(0.0, 1.0)
    salt_p, pepper_p = a * salt_ratio, a * (1.0 - salt_ratio)
    inf = torch.full_like(a, math.inf)
    high = torch.where(salt_p > 0, torch.special.ndtri(1.0 - salt_p), inf).to(torch.float32)
    low = torch.where(pepper_p > 0, torch.special.ndtri(pepper_p), -inf).to(torch.float32)
    top = 255 if image.dtype == torch.uint8 else 1.0
    out = torch.where(z > high.reshape(-1, 1, 1, 1), torch.full_like(image, top), image)
    return torch.where(z < low.reshape(-1, 1, 1, 1), torch.zeros_like(image), out)


def salt_and_pepper_np(image: np.ndarray, amount: float, offset: int, salt_ratio: float = 0.5) -> np.ndarray:
    """Per-sample salt and pepper with the same pixels as the batched kernel."""
    if amount <= 0.0:
        return image
    h, w = image.shape[:2]
    z = noise_window_np(offset, h * w).reshape(h, w)
    low, high = salt_pepper_thresholds(min(float(amount), 1.0), salt_ratio)
    out = image.copy()
    out[z > np.float32(high)] = 255 if image.dtype == np.uint8 else 1.0
    out[z < np.float32(low)] = 0
    return out
