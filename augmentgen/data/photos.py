"""scikit-image's sample photos (offline), for previews, op tests and benchmarks; image files for previews."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from augmentgen.data.sources import IMAGE_SUFFIXES

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


def load_image_file(path: str | Path, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """An image file as RGB uint8 HWC (gray and RGBA converted), optionally resized like ``load_photo``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            img = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path}: not a readable image ({e})") from e
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else size
        img = np.asarray(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return img


def preview_inputs(names: Sequence[str], size: int | None, *, per_folder: int = 4) -> list[np.ndarray]:
    """What ``augmentgen preview --images`` names: sample photos, image files, or the first images of folders.

    Example:
        >>> [im.shape for im in preview_inputs(["astronaut"], 32)]
        [(32, 32, 3)]
    """
    out: list[np.ndarray] = []
    for name in names:
        p = Path(name)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ValueError(f"{p}: no images ({', '.join(IMAGE_SUFFIXES)}) in it or its subfolders")
            out += [load_image_file(f, size) for f in files[:per_folder]]
        elif p.is_file():
            out.append(load_image_file(p, size))
        elif name in PHOTOS:
            out.append(load_photo(name, size))
        else:
            raise ValueError(f"{name!r} is neither an image file, a folder nor a sample photo ({', '.join(PHOTOS)})")
    return out
