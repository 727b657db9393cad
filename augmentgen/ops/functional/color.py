"""Color kernels. TODO(helper B): implement; the signatures are the contract used by ops.base.

Color matrices are ``[B, 3, 4]`` (torch) or ``[3, 4]`` (numpy): ``out = M[:, :3] @ rgb + M[:, 3]``
with rgb in [0, 1] units, clamped to [0, 1] once at the end.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor


def mean_rgb(image: Tensor) -> Tensor:
    """``[B, 3]`` per-sample mean of each channel in [0, 1] units (C=1 is repeated)."""
    raise NotImplementedError


def mean_rgb_np(image: np.ndarray) -> np.ndarray:
    """``[3]`` mean of each channel of one HWC image, in [0, 1] units."""
    raise NotImplementedError


def identity_color_matrix(like: Tensor) -> Tensor:
    """``[B, 3, 4]`` identity matrices shaped/typed like ``like``."""
    raise NotImplementedError


def color_affine(image: Tensor, matrix: Tensor) -> Tensor:
    """Apply ``[B, 3, 4]`` to ``[B, C, H, W]`` (float [0,1] or uint8), keep dtype, clamp."""
    raise NotImplementedError


def color_affine_np(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply ``[3, 4]`` to one HWC image (uint8 via cv2.transform, or float32), keep dtype."""
    raise NotImplementedError
