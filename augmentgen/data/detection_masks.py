"""COCO segmentation formats to masks and back: polygons, uncompressed and compressed RLE.

COCO's RLE runs over the image in column-major (Fortran) order, starting with a run of
zeros. The compressed string form is pycocotools' variant of LEB128 with a delta to the
run two back; it is decoded here so reading COCO needs no pycocotools.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def polygons_to_mask(polygons: list[list[float]], size: tuple[int, int]) -> np.ndarray:
    """Rasterize COCO polygons (flat ``[x0, y0, x1, y1, ...]`` lists, pixel coordinates) into one mask.

    Args:
        polygons: one or more flat coordinate lists (even length, at least 3 points).
        size: (H, W) of the image.

    Shape:
        returns ``[H, W]`` uint8 in {0, 1}.

    Example:
        >>> int(polygons_to_mask([[1, 1, 5, 1, 5, 5, 1, 5]], (8, 8)).sum())  # edges included
        25
    """
    mask = np.zeros(size, np.uint8)
    for poly in polygons:
        pts = np.asarray(poly, np.float64)
        if pts.ndim != 1 or pts.size < 6 or pts.size % 2:
            raise ValueError(f"a polygon needs an even number (>= 6) of coordinates, got {pts.size}")
        # pixel (i, j) covers [j, j+1) and OpenCV puts centres on integers: shift by half a pixel,
        # with 4 fractional bits. OpenCV includes the pixels the outline touches, as pycocotools
        # does, so a mask can reach one pixel past its polygon's right and bottom edges.
        xy = np.round((pts.reshape(-1, 2) - 0.5) * 16).astype(np.int32)
        cv2.fillPoly(mask, [xy], 1, lineType=cv2.LINE_8, shift=4)
    return mask


def _decode_counts(s: str) -> list[int]:
    """pycocotools' compressed RLE string to run lengths (``rleFrString``)."""
    counts: list[int] = []
    p, n = 0, len(s)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def _encode_counts(counts: list[int]) -> str:
    """Run lengths to pycocotools' compressed RLE string (``rleToString``)."""
    out: list[str] = []
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = not ((ch & 0x10) == 0 and x == 0 or (ch & 0x10) != 0 and x == -1)
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """A COCO RLE (``{"size": [H, W], "counts": list or str}``) as an ``[H, W]`` uint8 mask.

    Example:
        >>> rle_to_mask({"size": [2, 2], "counts": [1, 2, 1]}).tolist()
        [[0, 1], [1, 0]]
    """
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    runs = _decode_counts(counts) if isinstance(counts, str) else [int(c) for c in counts]
    if sum(runs) != h * w:
        raise ValueError(f"RLE runs sum to {sum(runs)}, the mask has {h}x{w}={h * w} pixels")
    flat = np.repeat(np.arange(len(runs)) % 2, runs).astype(np.uint8)
    return np.ascontiguousarray(flat.reshape(w, h).T)


def mask_to_rle(mask: np.ndarray, *, compressed: bool = True) -> dict[str, Any]:
    """An ``[H, W]`` binary mask as COCO RLE (compressed string counts by default).

    Example:
        >>> rle_to_mask(mask_to_rle(np.eye(3, dtype=np.uint8))).tolist()
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    """
    h, w = mask.shape
    flat = (np.asarray(mask).T.reshape(-1) > 0).astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(edges).tolist()
    if flat.size and flat[0] == 1:
        runs = [0, *runs]
    counts: Any = _encode_counts(runs) if compressed else runs
    return {"size": [h, w], "counts": counts}


def segmentation_to_mask(seg: Any, size: tuple[int, int]) -> np.ndarray:
    """A COCO ``segmentation`` field (polygon list or RLE dict) as an ``[H, W]`` uint8 mask."""
    if isinstance(seg, dict):
        m = rle_to_mask(seg)
        if m.shape != size:
            raise ValueError(f"RLE size {m.shape} differs from the image size {size}")
        return m
    if isinstance(seg, list):
        return polygons_to_mask(seg, size)
    raise ValueError(f"segmentation must be a polygon list or an RLE mapping, got {type(seg).__name__}")
