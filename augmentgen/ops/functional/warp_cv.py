"""Per-sample OpenCV/numpy warp kernels for one HWC image and its targets.

OpenCV puts pixel centres on integers, our continuous convention puts them at ``+0.5``
(see ``core.batch``), so a matrix ``M`` becomes ``T(-0.5) . M . T(+0.5)`` for OpenCV.
Affine matrices go through ``cv2.warpAffine``, others through ``cv2.warpPerspective``.
``reflect`` is ``cv2.BORDER_REFLECT`` (edge pixel repeated), which is what torch's
``grid_sample(padding_mode="reflection", align_corners=False)`` does.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

_BORDER = {"constant": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT, "replicate": cv2.BORDER_REPLICATE}
_INTERP = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}
_CV_DTYPE_CHARS = "BHhfd"  # uint8, uint16, int16, float32, float64
_MAX_CV_CHANNELS = 4  # warpAffine/warpPerspective take up to 4 channels per call for all modes


def cv_matrix(m: list[list[float]]) -> tuple[np.ndarray, bool]:
    """OpenCV's matrix (pixel centres on integers) for ``m`` and whether it is affine.

    Args:
        m: 3x3 nested list mapping input to output continuous coordinates.

    Returns:
        ``([2, 3] or [3, 3] float64, affine)``.
    """
    (a, b, c), (d, e, f), (g, h, k) = m
    if g == 0.0 and h == 0.0 and k == 1.0:
        # T(-.5) M T(.5) for an affine M: the linear part stays, the shift absorbs the half pixels
        return np.array([[a, b, c + 0.5 * (a + b) - 0.5], [d, e, f + 0.5 * (d + e) - 0.5]], np.float64), True
    mm = np.array(m, np.float64)
    shift = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    unshift = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
    return unshift @ mm @ shift, False


def warp_image(
    image: np.ndarray,
    cvm: np.ndarray,
    affine: bool,
    out_size: tuple[int, int],
    *,
    interpolation: str,
    border_mode: str,
    fill: float,
) -> np.ndarray:
    """Warp one ``[H, W, C]`` (or ``[H, W]``) image with an OpenCV matrix from ``cv_matrix``.

    Args:
        image: uint8 (fill scaled by 255) or float image.
        cvm: ``[2, 3]`` when ``affine`` else ``[3, 3]``.
        out_size: (H, W).
        interpolation: ``"bilinear"`` or ``"nearest"``.
        border_mode: ``"constant"``, ``"reflect"`` or ``"replicate"``.
        fill: constant border value in [0, 1] image units.

    Shape:
        ``[H, W, C]`` -> ``[H_out, W_out, C]`` (a channel axis of 1 is kept).
    """
    if image.dtype.char not in _CV_DTYPE_CHARS:
        raise TypeError(
            f"warp_sample: image dtype {image.dtype} is not supported by OpenCV; use uint8 or float32"
        )
    value = fill * 255.0 if image.dtype.char == "B" else fill
    if image.ndim == 3 and image.shape[2] > _MAX_CV_CHANNELS:
        parts = [
            warp_image(
                image[..., i : i + _MAX_CV_CHANNELS],
                cvm,
                affine,
                out_size,
                interpolation=interpolation,
                border_mode=border_mode,
                fill=fill,
            )
            for i in range(0, image.shape[2], _MAX_CV_CHANNELS)
        ]
        return np.concatenate(parts, axis=2)
    dsize = (int(out_size[1]), int(out_size[0]))
    flags, border = _INTERP[interpolation], _BORDER[border_mode]
    return cv_warp(image, cvm, affine, dsize, flags, border, value)


# OpenCV's bilinear and nearest remap has a SIMD path for 1 and 4 channels but not for 3:
# a 224x224 RGB uint8 warp costs ~580 us, the same image padded to RGBA ~215 us (+ ~20 us for
# the two conversions), with bit-identical RGB channels. Below ~64x64 the conversions cost more.
_RGBA_MIN_PIXELS = 64 * 64
_RGBA_FLAGS = (cv2.INTER_LINEAR, cv2.INTER_NEAREST)


def warps_as_rgba(channels: int, dtype: np.dtype[Any], flags: int, dsize: tuple[int, int]) -> bool:
    """Whether ``cv_warp`` pads an image of this kind to RGBA (3-channel uint8/float32, bilinear or
    nearest, an output of at least ``_RGBA_MIN_PIXELS``)."""
    return (
        channels == 3
        and flags in _RGBA_FLAGS
        and (dtype == np.uint8 or dtype == np.float32)
        and dsize[0] * dsize[1] >= _RGBA_MIN_PIXELS
    )


def _flip_code(m: list[list[float]], dsize: tuple[int, int]) -> int | None:
    """``cv2.flip``'s code when OpenCV matrix ``m`` maps an image of ``dsize`` onto itself by flips
    (1: left-right, 0: up-down, -1: both; 2: the identity), else None.

    Every output pixel then lands on the centre of one input pixel, where any interpolation gives
    that pixel exactly and no border is read: the flip is the warp's result bit for bit (tested).
    """
    (a, b, c), (d, e, f) = m[0], m[1]
    if b != 0.0 or d != 0.0:
        return None
    w, h = dsize
    hx = c == 0.0 if a == 1.0 else (c == w - 1 if a == -1.0 else None)
    vy = f == 0.0 if e == 1.0 else (f == h - 1 if e == -1.0 else None)
    if not hx or not vy:
        return None
    return {(1.0, 1.0): 2, (-1.0, 1.0): 1, (1.0, -1.0): 0, (-1.0, -1.0): -1}[(a, e)]


def aligned_box(cvm: np.ndarray, in_size: tuple[int, int], dsize: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Where an image of ``in_size`` (H, W) lands under OpenCV affine matrix ``cvm``, as whole output
    pixels ``(x0, y0, x1, y1)`` clipped to ``dsize`` (W, H), when the matrix only scales (by other
    than 1), flips and shifts it onto whole pixels (a letterbox); else None.

    Such a warp with a constant border is the image resized with its edge pixels replicated, then
    padded with the fill: no output pixel is part content and part fill. A plain constant-border
    warp blends the content's outermost pixels with the fill, over half the scale factor's width
    of pixels on each side (4 px for 28 px scaled to 224).
    """
    (a, b, c), (d, e, f) = cvm[0], cvm[1]
    if b != 0.0 or d != 0.0 or a == 0.0 or e == 0.0 or (abs(a) == 1.0 and abs(e) == 1.0):
        return None  # (at scale 1, whole-pixel shifts and flips read pixel centres or the border alone)
    (h, w), (wo, ho) = in_size, dsize
    cx, cy = c - 0.5 * a + 0.5, f - 0.5 * e + 0.5  # back to continuous coordinates (see cv_matrix)
    edges = (cx, cx + a * w, cy, cy + e * h)
    if any(abs(v - round(v)) > 1e-4 for v in edges):
        return None
    x0, x1 = sorted((round(edges[0]), round(edges[1])))
    y0, y1 = sorted((round(edges[2]), round(edges[3])))
    return min(max(x0, 0), wo), min(max(y0, 0), ho), min(max(x1, 0), wo), min(max(y1, 0), ho)


def cv_warp(
    image: np.ndarray, cvm: np.ndarray, affine: bool, dsize: tuple[int, int], flags: int, border: int, value: float
) -> np.ndarray:
    """``cv2.warpAffine`` / ``warpPerspective`` of an ``[H, W]`` or ``[H, W, C<=4]`` image; the channel axis is kept.

    3-channel uint8/float32 images are warped as RGBA (see ``_RGBA_MIN_PIXELS``); the result is
    the same array the 3-channel call gives.
    """
    if affine and dsize == (image.shape[1], image.shape[0]):
        code = _flip_code(cvm.tolist(), dsize)
        if code is not None:  # every output pixel is one input pixel: warpAffine's own result, 10x cheaper
            return image.copy() if code == 2 else np.asarray(cv2.flip(image, code)).reshape(image.shape)
    if affine and border == cv2.BORDER_CONSTANT:
        box = aligned_box(cvm, (image.shape[0], image.shape[1]), dsize)
        if box is not None:  # edge pixels replicated inside the content, the fill outside it
            out = cv_warp(image, cvm, affine, dsize, flags, cv2.BORDER_REPLICATE, value)
            x0, y0, x1, y1 = box
            v = np.rint(value) if out.dtype.kind in "ui" else value
            out[:y0], out[y1:], out[y0:y1, :x0], out[y0:y1, x1:] = v, v, v, v
            return out
    bval = (value, value, value, value)
    rgba = image.ndim == 3 and warps_as_rgba(image.shape[2], image.dtype, flags, dsize)
    src = cv2.cvtColor(image, cv2.COLOR_RGB2RGBA) if rgba else image
    if affine:
        out = cv2.warpAffine(src, cvm, dsize, flags=flags, borderMode=border, borderValue=bval)
    else:
        out = cv2.warpPerspective(src, cvm, dsize, flags=flags, borderMode=border, borderValue=bval)
    if rgba:
        return np.asarray(cv2.cvtColor(out, cv2.COLOR_RGBA2RGB))
    if image.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return np.asarray(out)


def warp_masks(
    masks: np.ndarray, cvm: np.ndarray, affine: bool, out_size: tuple[int, int], *, border_mode: str
) -> np.ndarray:
    """Nearest-neighbour warp of ``[K, H, W]`` masks; constant border fills 0."""
    if masks.shape[0] == 0:
        return np.zeros((0, *out_size), masks.dtype)
    src = masks.astype(np.uint8) if masks.dtype == bool else masks
    hwk = np.ascontiguousarray(np.moveaxis(src, 0, -1))
    out = warp_image(hwk, cvm, affine, out_size, interpolation="nearest", border_mode=border_mode, fill=0.0)
    out = np.moveaxis(out.reshape(*out_size, -1), -1, 0)
    return out.astype(bool) if masks.dtype == bool else np.ascontiguousarray(out)


def transform_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a 3x3 matrix to ``[P, 2]`` points (with the perspective divide); float64 out."""
    p = np.asarray(points, np.float64)
    xy = p @ m[:2, :2].T + m[:2, 2]
    z = p @ m[2, :2] + m[2, 2]
    out: np.ndarray = xy / z[:, None]
    return out


def warp_boxes(
    xyxy: np.ndarray,
    valid: np.ndarray,
    m: np.ndarray,
    out_size: tuple[int, int],
    *,
    min_size: float,
    min_visibility: float,
    min_area: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Numpy twin of ``warp_torch.warp_boxes`` for one sample: ``[N, 4]``, ``[N]`` -> same shapes."""
    n = xyxy.shape[0]
    x0, y0, x1, y1 = (np.asarray(xyxy, np.float64)[:, k] for k in range(4))
    corners = np.stack([x0, y0, x1, y0, x1, y1, x0, y1], axis=-1).reshape(n * 4, 2)
    pts = transform_points(corners, m).reshape(n, 4, 2)
    raw = np.concatenate([pts.min(axis=1), pts.max(axis=1)], axis=-1)
    ho, wo = out_size
    with np.errstate(invalid="ignore"):
        clipped = np.minimum(np.maximum(raw, 0.0), np.array([wo, ho, wo, ho], np.float64))
        cw, ch = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
        area = (raw[:, 2] - raw[:, 0]) * (raw[:, 3] - raw[:, 1])
        ok = valid & (cw >= min_size) & (ch >= min_size) & (cw * ch >= min_visibility * area)
        if min_area > 0:
            ok &= cw * ch >= min_area
    ok &= np.isfinite(raw).all(axis=-1)
    return clipped.astype(np.float32), ok
