"""Color kernels: per-sample affine color matrices, their application, gamma and normalize.

Every color-affine op is an affine map of RGB in [0, 1] units, a ``[B, 3, 4]`` matrix
(``out = M[:, :3] @ rgb + M[:, 3]``, clamped to [0, 1] once at the end). All of them are
linear combinations of five fixed basis matrices, so a whole op (and ``color_jitter``'s
brightness -> contrast -> saturation -> hue chain) is five coefficients per sample:

====  ==============================  ============================================
 k    basis                           used by
====  ==============================  ============================================
 0    ``[I | 0]``                     brightness ``b``, contrast ``c``, saturation ``s``
 1    ``[I - n n^T | 0]``             hue: ``cos(2 pi h) - 1``
 2    ``[[n]_x | 0]``                 hue: ``sin(2 pi h)``
 3    ``[1 w^T | 0]`` (grayscale)     saturation ``1 - s``, grayscale
 4    ``[0 | 1]``                     contrast ``(1 - c) * gray_mean``
====  ==============================  ============================================

``w`` are the ITU-R 601 luma weights (0.299, 0.587, 0.114; they sum to 1, so gray stays
gray) and ``n = (1, 1, 1) / sqrt(3)`` the gray axis. Hue is a rotation of RGB about the gray
axis (Rodrigues: ``I + (cos - 1)(I - n n^T) + sin [n]_x``), so hue 0 is the *exact* identity
and gray stays gray. We measured the usual YIQ-plane rotation too: against torchvision's
HSV ``adjust_hue`` on the scikit-image photos its mean abs error is about twice as large
(0.020 vs 0.011 at |h| = 0.02, 0.047 vs 0.027 at 0.05, 0.084 vs 0.049 at 0.1), so the
gray-axis rotation it is. No affine map matches HSV exactly (HSV keeps max and min per
pixel, a rotation keeps the mean); the stated tolerance is that mean error.

Two backends: coefficients may be torch ``[B]`` tensors (batched path: one ``[B, 5] @ [5, 12]``
matmul), numpy arrays, or plain floats (per-sample path: a handful of float ops and one
tiny numpy dot, ~2 us, which matters when the whole pipeline has ~60 us per 32 px image).

C=1 images use the luminance-equivalent of the matrix: a gray pixel ``y`` maps to
``w . (M[:, :3] @ (y, y, y) + M[:, 3])``, i.e. gain ``w^T M[:, :3] 1`` and offset ``w^T M[:, 3]``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Union

import cv2
import numpy as np
import torch
from torch import Tensor

Scalar = Union[Tensor, np.ndarray, float]

LUMA = np.array([0.299, 0.587, 0.114], np.float64)


def _make_basis() -> np.ndarray:
    n = np.ones(3) / np.sqrt(3.0)
    cross = np.array([[0.0, -n[2], n[1]], [n[2], 0.0, -n[0]], [-n[1], n[0], 0.0]])  # [n]_x
    basis = np.zeros((5, 3, 4), np.float64)
    basis[0, :, :3] = np.eye(3)
    basis[1, :, :3] = np.eye(3) - np.outer(n, n)
    basis[2, :, :3] = cross
    basis[3, :, :3] = np.outer(np.ones(3), LUMA)
    basis[4, :, 3] = 1.0
    return basis


BASIS = _make_basis()  # [5, 3, 4] float64, see the module docstring
_BASIS12 = BASIS.reshape(5, 12)
_BASIS12_F32 = _BASIS12.astype(np.float32)  # what both backends multiply with
_EYE34 = np.eye(3, 4, dtype=np.float32)
_TO_U8 = np.array([1.0, 1.0, 1.0, 255.0], np.float32)  # offset column in 0..255 units


@lru_cache(maxsize=16)
def _basis_t(device: torch.device) -> Tensor:
    # a normal tensor even when first asked for under inference_mode: the cache outlives that
    # block, and an inference tensor would break autograd through the op later (DiffAugment)
    with torch.inference_mode(False):
        return torch.as_tensor(_BASIS12_F32, device=device)


def _cos_sin(x: Scalar) -> tuple[Scalar, Scalar]:
    if isinstance(x, Tensor):
        return torch.cos(x), torch.sin(x)
    if isinstance(x, np.ndarray):
        return np.cos(x), np.sin(x)
    return math.cos(x), math.sin(x)


def combine(coefs: list[Scalar]) -> Tensor | np.ndarray:
    """``[B, 3, 4]`` matrices ``sum_k coefs[k] * BASIS[k]`` from five ``[B]`` tensors/arrays or floats.

    Args:
        coefs: five entries; tensors give a float32 tensor on their device, numpy arrays or
            floats give a float32 numpy array (floats: ``B = 1``).

    Example:
        >>> combine([1.0, 0.0, 0.0, 0.0, 0.0])[0]  # identity
        array([[1., 0., 0., 0.],
               [0., 1., 0., 0.],
               [0., 0., 1., 0.]], dtype=float32)
    """
    if all(type(c) is float for c in coefs):  # the per-sample path: five floats
        return (np.array(coefs, np.float32) @ _BASIS12_F32).reshape(1, 3, 4)
    ref = next((c for c in coefs if isinstance(c, Tensor)), None)
    if ref is not None:
        ref = ref.to(torch.float32)
        cols = [
            c.to(torch.float32) if isinstance(c, Tensor) else torch.full_like(ref, float(c)) for c in coefs
        ]
        k = torch.stack(torch.broadcast_tensors(*cols), -1)  # type: ignore[no-untyped-call]  # [B, 5]
        return (k @ _basis_t(ref.device)).reshape(-1, 3, 4)
    if any(isinstance(c, np.ndarray) for c in coefs):
        arr = np.stack(np.broadcast_arrays(*[np.asarray(c, np.float32).reshape(-1) for c in coefs]), -1)
        return (arr @ _BASIS12_F32).reshape(-1, 3, 4)
    return (np.array([float(c) for c in coefs], np.float32) @ _BASIS12_F32).reshape(1, 3, 4)


def combine_floats(coefs: list[float]) -> np.ndarray:
    """``combine`` for five Python floats (the per-sample path): ``[1, 3, 4]`` float32."""
    return (np.array(coefs, np.float32) @ _BASIS12_F32).reshape(1, 3, 4)


def gray_of(mean: Tensor | np.ndarray) -> Scalar:
    """``[B]`` luma of ``[B, 3]`` mean RGB (a float for a ``[1, 3]`` numpy mean, the fast path)."""
    if isinstance(mean, np.ndarray):
        if mean.shape[0] == 1:
            r, g, b = mean.ravel().tolist()
            return float(0.299 * r + 0.587 * g + 0.114 * b)
        return np.asarray(mean, np.float64) @ LUMA
    return mean.to(torch.float32) @ torch.as_tensor(LUMA, dtype=torch.float32, device=mean.device)


def brightness_coefs(factor: Scalar) -> list[Scalar]:
    """``x * factor`` (torchvision ``adjust_brightness``)."""
    return [factor, 0.0, 0.0, 0.0, 0.0]


def contrast_coefs(factor: Scalar, gray_mean: Scalar) -> list[Scalar]:
    """``factor * x + (1 - factor) * mean(gray(x))`` (torchvision ``adjust_contrast``)."""
    return [factor, 0.0, 0.0, 0.0, (1.0 - factor) * gray_mean]


def saturation_coefs(factor: Scalar) -> list[Scalar]:
    """``factor * x + (1 - factor) * gray(x)`` (torchvision ``adjust_saturation``)."""
    return [factor, 0.0, 0.0, 1.0 - factor, 0.0]


def hue_coefs(shift: Scalar) -> list[Scalar]:
    """Rotate about the gray axis by ``2 pi * shift`` (shift in turns, like torchvision's hue_factor)."""
    cos, sin = _cos_sin(shift * (2.0 * math.pi))
    return [1.0, cos - 1.0, sin, 0.0, 0.0]


def grayscale_coefs() -> list[Scalar]:
    """Every channel becomes the luma (torchvision ``rgb_to_grayscale(num_output_channels=3)``)."""
    return [0.0, 0.0, 0.0, 1.0, 0.0]


def jitter_coefs(b: Scalar, c: Scalar, s: Scalar, h: Scalar, gray_mean: Scalar) -> list[Scalar]:
    """Brightness, then contrast, then saturation, then hue, as one matrix.

    With ``k = c * b`` and ``H = I + (cos - 1) A + sin R`` (basis 1 and 2):
    ``H S C B = k s I + k s (cos - 1) A + k s sin R + k (1 - s) 1 w^T`` and offset ``(1 - c) b g``,
    because contrast sees the brightened mean ``b g``, saturation keeps gray and the gray mean,
    ``H 1 = 1``, and ``w`` sums to 1. Intermediate clamps (torchvision clamps after
    every step) are not modelled; they only matter where a step pushes values past 0 or 1.
    """
    cos, sin = _cos_sin(h * (2.0 * math.pi))
    k = c * b
    ks = k * s
    return [ks, ks * (cos - 1.0), ks * sin, k * (1.0 - s), (1.0 - c) * b * gray_mean]


def mean_rgb(image: Tensor) -> Tensor:
    """``[B, 3]`` float32 per-sample mean of each channel in [0, 1] units (C=1 is repeated)."""
    if image.dtype == torch.uint8:
        hw = image.shape[-1] * image.shape[-2]
        m = (image.sum(dim=(-2, -1), dtype=torch.int64).to(torch.float64) / (255.0 * hw)).to(torch.float32)
    else:
        m = image.to(torch.float32).mean(dim=(-2, -1))
    if m.shape[1] == 1:
        m = m.expand(-1, 3)
    elif m.shape[1] != 3:
        raise ValueError(f"mean_rgb: image must have 1 or 3 channels, got shape {tuple(image.shape)}")
    return m


def mean_rgb_np(image: np.ndarray) -> np.ndarray:
    """``[3]`` float32 mean of each channel of one HWC image, in [0, 1] units (C=1 repeated)."""
    c = image.shape[2] if image.ndim == 3 else 1
    m = cv2.mean(image)
    scale = 1.0 / 255.0 if image.dtype == np.uint8 else 1.0
    if c == 1:
        v = m[0] * scale
        return np.array((v, v, v), np.float32)
    if c != 3:
        raise ValueError(f"mean_rgb_np: image must have 1 or 3 channels, got shape {image.shape}")
    return np.array((m[0] * scale, m[1] * scale, m[2] * scale), np.float32)


def identity_color_matrix(like: Tensor) -> Tensor:
    """``[B, 3, 4]`` identity matrices shaped/typed like ``like``."""
    eye = torch.eye(3, 4, dtype=like.dtype, device=like.device)
    return eye.expand(like.shape[0], 3, 4)


def transform_mean(matrix: Tensor | np.ndarray, mean: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """``[B, 3]`` mean after ``[B, 3, 4]`` ``matrix`` (exact for an affine map, clamping aside)."""
    if isinstance(matrix, Tensor):
        m = torch.as_tensor(mean, device=matrix.device, dtype=matrix.dtype)
        return torch.einsum("bij,bj->bi", matrix[:, :, :3], m) + matrix[:, :, 3]
    return np.asarray(np.einsum("bij,bj->bi", matrix[:, :, :3], np.asarray(mean)) + matrix[:, :, 3])


def compose_color(outer: Tensor | np.ndarray, inner: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """``[B, 3, 4]`` matrix of ``inner`` followed by ``outer``."""
    if isinstance(outer, Tensor):
        inn = torch.as_tensor(inner, device=outer.device, dtype=outer.dtype)
        out = outer[:, :, :3] @ inn
        return torch.cat([out[:, :, :3], out[:, :, 3:] + outer[:, :, 3:]], -1)
    inn_np = np.asarray(inner)
    out_np = outer[:, :, :3] @ inn_np
    out_np[:, :, 3] += outer[:, :, 3]
    return np.asarray(out_np)


def _gray_gain(matrix: Tensor) -> tuple[Tensor, Tensor]:
    luma = torch.as_tensor(LUMA, dtype=matrix.dtype, device=matrix.device)
    gain = (luma @ matrix[:, :, :3]).sum(-1)  # w^T M 1, [B]
    return gain.reshape(-1, 1, 1), (matrix[:, :, 3] @ luma).reshape(-1, 1, 1)


def color_affine(image: Tensor, matrix: Tensor) -> Tensor:
    """Apply ``[B, 3, 4]`` to ``[B, C, H, W]`` (C in {1, 3}; float [0,1] or uint8), keep dtype, clamp.

    Differentiable w.r.t. the image (and the matrix); one batched matmul, no loop over samples.
    uint8 is computed in float32 and rounded half to even (like ``cv2.transform``).

    Example:
        >>> x = torch.rand(2, 3, 4, 4)
        >>> torch.equal(color_affine(x, identity_color_matrix(torch.zeros(2, 3, 4))), x)
        True
    """
    b, c, h, w = image.shape
    if c not in (1, 3):
        raise ValueError(f"color_affine: image must have 1 or 3 channels, got shape {tuple(image.shape)}")
    m = matrix.to(device=image.device, dtype=torch.float32)
    if c == 1:
        a, t = _gray_gain(m)  # [B, 1, 1] each
    else:
        a, t = m[:, :, :3], m[:, :, 3:]
    if image.dtype == torch.uint8:
        x = image.to(torch.float32).reshape(b, c, h * w)
        out = torch.baddbmm(t * 255.0, a, x)
        return out.round_().clamp_(0, 255).to(torch.uint8).reshape(b, c, h, w)
    if not image.is_floating_point():
        raise TypeError(f"color_affine: image must be float or uint8, got {image.dtype}")
    dt = image.dtype if image.is_cuda or image.dtype in (torch.float32, torch.float64) else torch.float32
    x = image.reshape(b, c, h * w).to(dt)
    out = torch.baddbmm(t.to(dt), a.to(dt), x)
    # in place when autograd allows: on CPU every fresh full-size tensor costs page faults
    out = out.clamp(0.0, 1.0) if out.requires_grad else out.clamp_(0.0, 1.0)
    return out.reshape(b, c, h, w).to(image.dtype)


def color_affine_np(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply ``[3, 4]`` to one HWC image (uint8 via ``cv2.transform``, or float32), keep dtype and shape.

    Example:
        >>> img = np.full((2, 2, 3), 100, np.uint8)
        >>> int(color_affine_np(img, np.eye(3, 4, dtype=np.float32) * 0.5)[0, 0, 0])
        50
    """
    m = np.asarray(matrix, np.float32)
    c = image.shape[2] if image.ndim == 3 else 1
    u8 = image.dtype == np.uint8
    if c == 3:
        if u8:
            return cv2.transform(image, m * _TO_U8)
        out = cv2.transform(np.asarray(image, np.float32), m)
        return np.clip(out, 0.0, 1.0, out=out)
    if c != 1:
        raise ValueError(f"color_affine_np: image must have 1 or 3 channels, got shape {image.shape}")
    gain = float(LUMA @ m[:, :3].sum(1))
    off = float(LUMA @ m[:, 3])
    if u8:
        out = cv2.addWeighted(image, gain, image, 0.0, off * 255.0)
    else:
        out = np.clip(np.asarray(image, np.float32) * gain + off, 0.0, 1.0).astype(np.float32)
    return out.reshape(image.shape)


def is_identity_np(matrix: np.ndarray) -> bool:
    """Whether a ``[3, 4]`` matrix is exactly the identity (per-sample fast path skips the pass)."""
    return bool(np.array_equal(matrix, _EYE34))


# ---- gamma and normalize (pixel ops) ---------------------------------------------------------


def adjust_gamma(image: Tensor, gamma: Tensor) -> Tensor:
    """``x ** gamma`` per sample (``gamma`` ``[B]``), keep dtype; gradient finite at 0.

    uint8 is computed in float32 and rounded. ``gamma == 1`` is the exact identity.
    """
    g = gamma.to(device=image.device, dtype=torch.float32).reshape(-1, 1, 1, 1)
    if image.dtype == torch.uint8:
        x = image.to(torch.float32) / 255.0
        return (x.clamp_min(0.0).pow(g) * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    x = image
    tiny = torch.finfo(x.dtype).tiny
    # where + clamp_min: 0 stays 0 (identity at gamma 1) and d/dx x^g at 0 stays finite.
    out = torch.where(x > 0, x.clamp_min(tiny).pow(g.to(x.dtype)), torch.zeros_like(x))
    return out.clamp(0.0, 1.0)


def adjust_gamma_np(image: np.ndarray, gamma: float) -> np.ndarray:
    """``x ** gamma`` for one HWC image; uint8 through a 256-entry ``cv2.LUT``."""
    if gamma == 1.0:
        return image
    if image.dtype == np.uint8:
        lut = np.round(255.0 * (np.arange(256) / 255.0) ** gamma).clip(0, 255).astype(np.uint8)
        return cv2.LUT(image, lut).reshape(image.shape)
    return np.asarray(np.power(np.clip(image, 0.0, 1.0), np.float32(gamma)), image.dtype)


def normalize(image: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """``(x - mean) / std`` per channel; uint8 is first scaled to [0, 1] and the output is float32."""
    x = image.to(torch.float32) / 255.0 if image.dtype == torch.uint8 else image
    c = x.shape[1]
    mu, sd = _stats(mean, std, c)
    m = torch.as_tensor(mu, dtype=x.dtype, device=x.device).reshape(1, c, 1, 1)
    s = torch.as_tensor(sd, dtype=x.dtype, device=x.device).reshape(1, c, 1, 1)
    return (x - m) / s


def normalize_np(image: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """``(x - mean) / std`` for one HWC image; always float32 out.

    uint8 goes through ONE ``cv2.LUT`` with a per-channel float32 table (~15x faster than
    numpy broadcasting at 224 px); float32 RGB through one diagonal ``cv2.transform``.
    """
    c = image.shape[2] if image.ndim == 3 else 1
    mu, sd = _stats(mean, std, c)
    scale = 1.0 / np.asarray(sd, np.float64)
    offset = -np.asarray(mu, np.float64) * scale
    if image.dtype == np.uint8:
        levels = np.arange(256, dtype=np.float64)[:, None] / 255.0  # [256, 1]
        lut = (levels * scale + offset).astype(np.float32)  # [256, C]
        table = lut[:, 0] if c == 1 else lut.reshape(256, 1, c)
        return np.asarray(cv2.LUT(image, table), np.float32).reshape(image.shape)
    x = np.asarray(image, np.float32)
    if c == 3:
        mat = np.concatenate([np.diag(scale), offset[:, None]], 1).astype(np.float32)
        return np.asarray(cv2.transform(x, mat), np.float32).reshape(image.shape)
    return np.asarray(x * np.float32(scale[0]) + np.float32(offset[0]), np.float32)


def _stats(mean: tuple[float, ...], std: tuple[float, ...], c: int) -> tuple[list[float], list[float]]:
    mu, sd = [float(v) for v in mean], [float(v) for v in std]
    if len(mu) == 1:
        mu = mu * c
    if len(sd) == 1:
        sd = sd * c
    if len(mu) != c or len(sd) != c:
        raise ValueError(f"normalize: mean {mean} and std {std} must have 1 or C={c} entries")
    return mu, sd
