"""Pictures of a training run: sample grids and loss curves as PNG."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

logger = logging.getLogger(__name__)


def make_grid(images: Tensor, nrow: int, pad: int = 2, fill: float = 1.0) -> np.ndarray:
    """Tile ``images`` row by row into one uint8 picture.

    Args:
        images: ``[N, C, H, W]`` float in [0, 1] (C = 1 or 3).
        nrow: images per row.
        pad: pixels between tiles.
        fill: padding value in [0, 1].

    Shape:
        returns ``[rows*(H+pad)+pad, nrow*(W+pad)+pad, C]`` uint8.

    Example:
        >>> make_grid(torch.zeros(4, 1, 8, 8), nrow=2).shape
        (22, 22, 1)
    """
    if images.ndim != 4:
        raise ValueError(f"make_grid: images must be [N, C, H, W], got {tuple(images.shape)}")
    n, c, h, w = images.shape
    rows = max(1, math.ceil(n / nrow))
    grid = torch.full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), float(fill))
    x = images.detach().float().cpu().clamp(0, 1)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, top : top + h, left : left + w] = x[i]
    return (grid.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def save_grid(path: str | Path, images: Tensor, nrow: int, scale: int = 1) -> Path:
    """Write ``make_grid(images, nrow)`` as a PNG, enlarged ``scale`` times (nearest)."""
    from PIL import Image

    grid = make_grid(images, nrow)
    arr = grid[..., 0] if grid.shape[-1] == 1 else grid
    img = Image.fromarray(arr)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    img.save(p)
    return p


def save_curves(
    path: str | Path, records: Sequence[dict[str, Any]], keys: Sequence[str] | None = None
) -> Path | None:
    """Plot metrics against ``step`` (one panel per metric) to a PNG; None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed; no loss curves written to %s", path)
        return None
    rows = [r for r in records if "step" in r]
    if keys is None:
        found = {
            k
            for r in rows
            for k, v in r.items()
            if isinstance(v, (int, float)) and k not in ("step", "time_s")
        }
        keys = sorted(k for k in found if k.startswith(("loss", "d_", "r_t", "collapse/", "grad_norm")))
    keys = [k for k in keys if any(k in r for r in rows)]
    if not keys:
        return None
    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 2.6 * nrows), squeeze=False)
    for ax, k in zip(axes.flat, keys, strict=False):
        pts = [(r["step"], r[k]) for r in rows if k in r and isinstance(r[k], (int, float))]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1)
        ax.set_title(k, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p
