"""One warp for every target: images (bilinear/nearest), masks (nearest), boxes, keypoints.

Matrices are ``[B, 3, 3]`` (torch) or ``[3, 3]`` (numpy, one sample) and map INPUT
continuous pixel coordinates to OUTPUT continuous coordinates (pixel (i, j) covers
[j, j+1) x [i, i+1); see ``core.batch``).

TODO(helper A): implement. Signatures are the contract used by ops.base and pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor

from augmentgen.core.batch import Batch, Sample


@dataclass(frozen=True)
class WarpSpec:
    interpolation: str = "bilinear"  # "bilinear" | "nearest"
    border_mode: str = "constant"  # "constant" | "reflect" | "replicate"
    fill: float = 0.0  # constant border value in [0, 1] image units


def resize_matrix(size: tuple[int, int], out: tuple[int, int], *, like: Tensor | np.ndarray, n: int) -> Tensor | np.ndarray:
    """``[n, 3, 3]`` matrices scaling ``size`` (H, W) onto ``out`` (H, W); same type/device as ``like``."""
    raise NotImplementedError


def warp_batch(batch: Batch, matrix: Tensor, out_size: tuple[int, int], spec: WarpSpec) -> Batch:
    """Warp image, masks, boxes and keypoints of ``batch`` with ``matrix`` ``[B, 3, 3]``."""
    raise NotImplementedError


def warp_sample(sample: Sample, matrix: np.ndarray, out_size: tuple[int, int], spec: WarpSpec) -> Sample:
    """Warp one sample (OpenCV) with ``matrix`` ``[3, 3]``."""
    raise NotImplementedError
