"""Blur kernels with per-sample kernels: Gaussian (separable) and motion (line) blur.

Both backends build the *same* kernel weights from the params (float32), then filter with
reflect-101 borders (torch ``"reflect"`` padding == OpenCV ``BORDER_REFLECT_101``, as in
torchvision's ``gaussian_blur``). The batched path runs one grouped convolution over
``[1, B*C, H, W]`` with one kernel per (sample, channel), no loop over samples. When the
padding is not smaller than the image (tiny images), both backends fall back to replicate
borders, since reflection needs ``pad < size``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def auto_gaussian_ksize(sigma_max: float) -> int:
    """Odd kernel size covering +-3 sigma (at least 3)."""
    return max(3, 2 * math.ceil(3.0 * sigma_max) + 1)


def gaussian_kernel1d(sigma: Tensor, ksize: int) -> Tensor:
    """``[B, k]`` float32 normalized Gaussian taps (torchvision's formula); sigma 0 gives the exact delta.

    Computed in float64 and rounded once, so ``gaussian_kernel1d_np`` gives the same taps.
    """
    half = (ksize - 1) * 0.5
    x = torch.linspace(-half, half, ksize, device=sigma.device, dtype=torch.float64)
    s = sigma.to(torch.float64).reshape(-1, 1)
    pos = s > 0
    pdf = torch.exp(-0.5 * (x / torch.where(pos, s, torch.ones_like(s))) ** 2)
    pdf = torch.where(pos, pdf, (x == 0).to(torch.float64).expand_as(pdf))
    return (pdf / pdf.sum(-1, keepdim=True)).to(torch.float32)


def gaussian_kernel1d_np(sigma: float, ksize: int) -> np.ndarray:
    """``[k]`` float32 taps equal to ``gaussian_kernel1d`` for one sample (numpy, no torch)."""
    half = (ksize - 1) * 0.5
    x = np.linspace(-half, half, ksize)
    if sigma <= 0:
        return np.asarray(x == 0, np.float32)
    pdf = np.exp(-0.5 * (x / float(sigma)) ** 2)
    return np.asarray(pdf / pdf.sum(), np.float32)


def motion_kernel(length: Tensor, angle: Tensor, ksize: int) -> Tensor:
    """``[B, k, k]`` float32 anti-aliased line kernels: weight ``max(0, 1 - distance to the segment)``.

    Args:
        length: ``[B]`` segment length in pixels (0 gives the exact delta).
        angle: ``[B]`` degrees, counter-clockwise from +x as seen on screen (y points down).
        ksize: odd kernel size, at least ``length + 3`` (see ``motion_ksize``).
    """
    half = (ksize - 1) // 2
    r = torch.arange(-half, half + 1, device=length.device, dtype=torch.float64)
    yy, xx = torch.meshgrid(r, r, indexing="ij")  # [k, k]
    a = torch.deg2rad(angle.to(torch.float64)).reshape(-1, 1, 1)
    dx, dy = torch.cos(a), -torch.sin(a)
    h = (length.to(torch.float64) * 0.5).reshape(-1, 1, 1)
    t = torch.minimum(torch.maximum(xx * dx + yy * dy, -h), h)
    w = (1.0 - torch.sqrt((xx - t * dx) ** 2 + (yy - t * dy) ** 2)).clamp_min(0.0)
    return (w / w.sum(dim=(-2, -1), keepdim=True)).to(torch.float32)


def motion_kernel_np(length: float, angle: float, ksize: int) -> np.ndarray:
    """``[k, k]`` float32 kernel equal to ``motion_kernel`` for one sample (numpy, no torch)."""
    half = (ksize - 1) // 2
    r = np.arange(-half, half + 1, dtype=np.float64)
    yy, xx = np.meshgrid(r, r, indexing="ij")
    a = math.radians(float(angle))
    dx, dy = math.cos(a), -math.sin(a)
    h = float(length) * 0.5
    t = np.clip(xx * dx + yy * dy, -h, h)
    w = np.maximum(1.0 - np.sqrt((xx - t * dx) ** 2 + (yy - t * dy) ** 2), 0.0)
    return np.asarray(w / w.sum(), np.float32)


def motion_ksize(length_max: float) -> int:
    """Odd kernel size that holds a segment of ``length_max`` plus its 1 px anti-aliasing."""
    return 2 * (math.ceil(length_max * 0.5) + 1) + 1


def _pad_mode(pad: int, h: int, w: int) -> str:
    return "reflect" if pad < min(h, w) else "replicate"


def _border(pad: int, h: int, w: int) -> int:
    return cv2.BORDER_REFLECT_101 if pad < min(h, w) else cv2.BORDER_REPLICATE


def _grouped(image: Tensor) -> tuple[Tensor, torch.dtype]:
    b, c, h, w = image.shape
    if image.dtype == torch.uint8:
        work = torch.float32
    elif image.is_floating_point():
        # CPU half convolutions are slow or missing: compute those in float32.
        work = image.dtype if image.is_cuda or image.dtype != torch.float16 else torch.float32
    else:
        raise TypeError(f"blur kernels need float or uint8 images, got {image.dtype}")
    return image.to(work).reshape(1, b * c, h, w), work


def _finish(image: Tensor, out: Tensor) -> Tensor:
    b, c, h, w = image.shape
    out = out.reshape(b, c, h, w)
    if image.dtype == torch.uint8:
        return out.round_().clamp_(0, 255).to(torch.uint8)
    return out.to(image.dtype)


def gaussian_blur(image: Tensor, sigma: Tensor, ksize: int) -> Tensor:
    """Separable Gaussian blur, one sigma per sample (``sigma`` ``[B]`` pixels), dtype kept.

    Example:
        >>> x = torch.rand(2, 3, 8, 8)
        >>> torch.equal(gaussian_blur(x, torch.zeros(2), 5), x)
        True
    """
    b, c, h, w = image.shape
    x, work = _grouped(image)
    k1 = gaussian_kernel1d(sigma.to(image.device), ksize).to(work)  # [B, k]
    k1 = k1.repeat_interleave(c, dim=0)  # [B*C, k]
    p = ksize // 2
    x = F.pad(x, (p, p, p, p), mode=_pad_mode(p, h, w))
    x = F.conv2d(x, k1.reshape(b * c, 1, 1, ksize), groups=b * c)
    x = F.conv2d(x, k1.reshape(b * c, 1, ksize, 1), groups=b * c)
    return _finish(image, x)


def gaussian_blur_np(image: np.ndarray, sigma: float, ksize: int) -> np.ndarray:
    """Per-sample Gaussian blur with ``cv2.sepFilter2D`` and the same taps."""
    if sigma == 0.0:
        return image
    k1 = gaussian_kernel1d_np(sigma, ksize)
    p = ksize // 2
    h, w = image.shape[:2]
    out = cv2.sepFilter2D(image, -1, k1, k1, borderType=_border(p, h, w))
    return out.reshape(image.shape)


def motion_blur(image: Tensor, kernels: Tensor) -> Tensor:
    """Filter each sample with its own ``[B, k, k]`` kernel (grouped conv, reflect borders)."""
    b, c, h, w = image.shape
    k = int(kernels.shape[-1])
    x, work = _grouped(image)
    weight = kernels.to(device=image.device, dtype=work).repeat_interleave(c, dim=0).unsqueeze(1)
    p = k // 2
    x = F.pad(x, (p, p, p, p), mode=_pad_mode(p, h, w))
    return _finish(image, F.conv2d(x, weight, groups=b * c))


def motion_blur_np(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Per-sample motion blur with ``cv2.filter2D``; all-zero kernel borders are trimmed first."""
    nz = np.nonzero(kernel)
    half = int(max(np.abs(nz[0] - kernel.shape[0] // 2).max(), np.abs(nz[1] - kernel.shape[1] // 2).max()))
    if half == 0:
        return image  # a delta kernel
    c0 = kernel.shape[0] // 2
    kern = np.ascontiguousarray(kernel[c0 - half : c0 + half + 1, c0 - half : c0 + half + 1])
    h, w = image.shape[:2]
    # the border rule follows the untrimmed kernel, as on the batched path
    out = cv2.filter2D(image, -1, kern, borderType=_border(c0, h, w))
    return out.reshape(image.shape)


_MEDIAN_CHUNK_BYTES = 64 << 20  # the k*k neighbourhoods of a chunk of rows, at most


def median_blur(image: Tensor, ksize: Tensor) -> Tensor:
    """Median of each pixel's ``k x k`` neighbourhood, edges replicated (``cv2.medianBlur``), ``k`` per row.

    On a CPU each row goes through ``cv2.medianBlur`` where OpenCV takes it (uint8, or float up to
    k = 5); elsewhere rows that share a ``k`` are filtered together, a few at a time (their
    neighbourhoods are ``k * k`` copies of the image). Both give the same values: uint8 stays
    uint8, the median of integers being one of them.

    Example:
        >>> x = torch.tensor([[[[0, 0, 0], [0, 255, 0], [0, 0, 0]]]], dtype=torch.uint8)
        >>> median_blur(x, torch.tensor([3]))[0, 0].tolist()
        [[0, 0, 0], [0, 0, 0], [0, 0, 0]]
    """
    b, c, h, w = image.shape
    ks = torch.as_tensor(ksize).reshape(-1).to(torch.int64).cpu()
    out = image.clone()
    for k in torch.unique(ks).tolist():
        rows = (ks == k).nonzero().flatten().to(image.device)
        if image.device.type == "cpu" and not image.requires_grad and (image.dtype == torch.uint8 or k <= 5):
            for i in rows.tolist():  # OpenCV's sorting network: 100-700x the unfolded median on a CPU
                hwc = image[i].permute(1, 2, 0).contiguous().numpy()
                out[i] = torch.from_numpy(np.asarray(cv2.medianBlur(hwc, k)).reshape(h, w, c)).permute(2, 0, 1)
            continue
        step = max(1, _MEDIAN_CHUNK_BYTES // (c * h * w * k * k * max(image.element_size(), 4)))
        for s in range(0, len(rows), step):
            idx = rows[s : s + step]
            out[idx] = median_unfold(image.index_select(0, idx), k)
    return out


def median_unfold(image: Tensor, k: int) -> Tensor:
    """The ``k x k`` median of every pixel of a ``[B, C, H, W]`` batch through unfolded windows (any device)."""
    b, c, h, w = image.shape
    r = k // 2
    wide = image if image.is_floating_point() else image.to(torch.float32)  # replicate padding wants floats
    padded = F.pad(wide, (r, r, r, r), mode="replicate")
    patches = padded.unfold(2, k, 1).unfold(3, k, 1).reshape(b, c, h, w, k * k)
    return patches.median(dim=-1).values.to(image.dtype)


def median_blur_np(image: np.ndarray, ksize: int) -> np.ndarray:
    """``median_blur`` on one HWC image: ``cv2.medianBlur`` (float32 only up to k = 5, beyond through torch)."""
    if image.dtype == np.uint8 or ksize <= 5:
        out = cv2.medianBlur(np.ascontiguousarray(image), int(ksize))
        return np.asarray(out).reshape(image.shape)
    chw = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    return median_blur(chw, torch.tensor([ksize]))[0].permute(1, 2, 0).contiguous().numpy()
