"""scikit-image's sample photos (offline), for previews, op tests and benchmarks."""

from __future__ import annotations

import cv2
import numpy as np

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle")


def load_photo(name: str, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """An RGB uint8 HWC sample photo, optionally resized (``size`` = side or (H, W)).

    Example:
        >>> load_photo("astronaut", 64).shape
        (64, 64, 3)
    """
    try:
        from skimage import data as skdata
    except ImportError as e:  # pragma: no cover - scikit-image is a core dependency
        raise ValueError("sample photos need scikit-image (pip install scikit-image)") from e
    if name not in PHOTOS:
        raise ValueError(f"unknown sample photo {name!r}; known: {', '.join(PHOTOS)}")
    raw = getattr(skdata, name)()
    if isinstance(raw, tuple):  # stereo_motorcycle returns (left, right, disparity)
        raw = raw[0]
    img = np.ascontiguousarray(raw[:, :, :3]).astype(np.uint8)
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else size
        img = np.asarray(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return img
