"""Reconstruction quality (for the CVAE): PSNR and SSIM per image, averaged.

SSIM: Wang et al. 2004 (https://ieeexplore.ieee.org/document/1284395), Gaussian window
11x11 with sigma 1.5, K1=0.01, K2=0.03, valid-region mean (the torchmetrics and
scikit-image ``gaussian_weights=True`` conventions).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"images must be matching [B, C, H, W], got {tuple(x.shape)} and {tuple(y.shape)}")
    return x.to(torch.float64), y.to(torch.float64)


def psnr(x: Tensor, y: Tensor, *, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio of each image pair in dB (``inf`` for identical images).

    Shape:
        x, y ``[B, C, H, W]`` -> ``[B]`` float64.

    Example:
        >>> round(float(psnr(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.1))[0]), 4)
        20.0
    """
    a, b = _pair(x, y)
    mse = (a - b).square().mean((1, 2, 3))
    return 10 * torch.log10(data_range**2 / mse)


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    r = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: Tensor, y: Tensor, *, data_range: float = 1.0, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity of each image pair (mean over channels and the valid region).

    Shape:
        x, y ``[B, C, H, W]`` with H, W >= ``window`` -> ``[B]`` float64.

    Example:
        >>> x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> ssim(x, x).tolist()
        [1.0, 1.0]
    """
    a, b = _pair(x, y)
    if min(a.shape[-2:]) < window:
        raise ValueError(f"ssim window {window} is larger than the images {tuple(a.shape[-2:])}")
    c = a.shape[1]
    w = _gaussian_window(window, sigma, a.dtype, a.device).expand(c, 1, window, window)

    def filt(t: Tensor) -> Tensor:
        return F.conv2d(t, w, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = filt(a), filt(b)
    saa = filt(a * a) - mu_a**2
    sbb = filt(b * b) - mu_b**2
    sab = filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * sab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2)
    return (num / den).mean((1, 2, 3))
