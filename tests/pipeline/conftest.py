from __future__ import annotations

import numpy as np
import pytest
import torch

import augmentgen.ops  # noqa: F401  (fills the registry)
import augmentgen.ops.crop  # noqa: F401
import augmentgen.ops.geometric  # noqa: F401


@pytest.fixture
def photo32() -> np.ndarray:
    """An asymmetric 32x32 RGB uint8 image (a gradient with a block in one corner)."""
    y, x = np.mgrid[0:32, 0:32]
    img = np.stack([x * 8, y * 8, (x + y) * 4], axis=-1).astype(np.uint8)
    img[2:10, 3:12] = (250, 10, 10)
    return img


@pytest.fixture
def batch_images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(6, 3, 24, 24, generator=g)
