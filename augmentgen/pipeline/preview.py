"""A grid of augmented draws, to look at what a pipeline does."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from augmentgen.core.rng import sample_rng
from augmentgen.pipeline.compose import Pipeline


def preview_grid(images: Sequence[np.ndarray], pipeline: Pipeline, *, n: int = 8, seed: int = 0, pad: int = 2) -> np.ndarray:
    """Rows: each input image, then ``n`` augmented draws of it (streams ``(seed, row, k)``).

    Shape:
        images: HWC uint8 of one size; returns an HWC uint8 grid with white padding.
    """
    if not images:
        raise ValueError("preview_grid needs at least one image")
    cells: list[list[np.ndarray]] = []
    for r, img in enumerate(images):
        row = [img]
        for k in range(n):
            out = pipeline(img, rng=sample_rng(seed, r, k))
            row.append(np.asarray(out))
        cells.append(row)
    h = max(c.shape[0] for row in cells for c in row)
    w = max(c.shape[1] for row in cells for c in row)
    ch = 3
    grid = np.full((len(cells) * (h + pad) + pad, (n + 1) * (w + pad) + pad, ch), 255, np.uint8)
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            cell = cell if cell.dtype == np.uint8 else np.clip(np.rint(cell * 255), 0, 255).astype(np.uint8)
            if cell.ndim == 2:
                cell = cell[:, :, None]
            if cell.shape[2] == 1:
                cell = np.repeat(cell, 3, axis=2)
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            grid[y : y + cell.shape[0], x : x + cell.shape[1]] = cell[:, :, :3]
    return grid
