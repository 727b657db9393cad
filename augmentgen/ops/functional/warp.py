"""One warp for every target: images (bilinear/nearest), masks (nearest), boxes, keypoints.

Matrices are ``[B, 3, 3]`` (torch) or ``[3, 3]`` (numpy, one sample) and map INPUT
continuous pixel coordinates to OUTPUT continuous coordinates (pixel (i, j) covers
[j, j+1) x [i, i+1); see ``core.batch``). Any affine or perspective matrix works, so the
pipeline multiplies the matrices of consecutive geometric ops and warps once.

Rows whose matrix is exactly the identity, with the size unchanged, come back untouched
(bit-identical image, masks, boxes and keypoints): zero magnitude and ``p=0`` are no-ops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from augmentgen.core.batch import Batch, Boxes, Sample
from augmentgen.ops.functional import warp_cv, warp_torch

_EYE = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
_MODES = ("constant", "reflect", "replicate")
_INTERPS = ("bilinear", "nearest")


@dataclass(frozen=True)
class WarpSpec:
    """How to warp: interpolation, border handling, and the box policy.

    Args:
        interpolation: ``"bilinear"`` or ``"nearest"`` for images (masks are always nearest).
        border_mode: ``"constant"``, ``"reflect"`` (edge pixel repeated, OpenCV
            ``BORDER_REFLECT``) or ``"replicate"``; masks use the same mode with fill 0.
        fill: constant border value in [0, 1] image units (x255 for uint8 images).
        min_box_size: boxes narrower or lower than this many pixels after clipping are
            marked invalid (their slot and label stay).
        min_visibility: boxes keeping less than this fraction of their area inside the
            canvas are marked invalid.
        min_area: boxes whose clipped area is below this many square pixels are marked invalid.

    Example:
        >>> WarpSpec(border_mode="reflect").interpolation
        'bilinear'
    """

    interpolation: str = "bilinear"
    border_mode: str = "constant"
    fill: float = 0.0
    min_box_size: float = 1.0
    min_visibility: float = 0.0
    min_area: float = 0.0

    def __post_init__(self) -> None:
        if self.interpolation not in _INTERPS:
            raise ValueError(f"WarpSpec.interpolation must be one of {_INTERPS}, got {self.interpolation!r}")
        if self.border_mode not in _MODES:
            raise ValueError(f"WarpSpec.border_mode must be one of {_MODES}, got {self.border_mode!r}")


def resize_matrix(
    size: tuple[int, int], out: tuple[int, int], *, like: Tensor | np.ndarray, n: int
) -> Tensor | np.ndarray:
    """``[n, 3, 3]`` matrices scaling ``size`` (H, W) onto ``out`` (H, W); same type/device as ``like``.

    Example:
        >>> resize_matrix((2, 4), (4, 2), like=np.zeros(1), n=1)[0].tolist()
        [[0.5, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]]
    """
    sx, sy = out[1] / size[1], out[0] / size[0]
    rows = [[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]]
    if type(like) is np.ndarray and n == 1:
        return np.array(rows, dtype=np.float64).reshape(1, 3, 3)
    if isinstance(like, Tensor):
        dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
        return torch.tensor(rows, dtype=dtype, device=like.device).expand(n, 3, 3).clone()
    return np.array([rows] * n, dtype=np.float64)


def _keep(ident: Tensor, old: Tensor, new: Tensor) -> Tensor:
    """``old`` on identity rows, ``new`` elsewhere (broadcast over trailing dims)."""
    return torch.where(ident.reshape(-1, *([1] * (old.ndim - 1))), old, new)


def _warp_rows(batch: Batch, idx: Tensor, matrix: Tensor, out_size: tuple[int, int], spec: WarpSpec) -> Batch:
    """``batch`` with rows ``idx`` warped by their matrices, the other rows as they are (same size)."""
    part = warp_batch(batch.index(idx), matrix.index_select(0, idx), out_size, spec)

    def put(old: Tensor | None, new: Tensor | None) -> Tensor | None:
        return None if old is None or new is None else old.index_copy(0, idx, new.to(old.dtype))

    boxes = batch.boxes
    if boxes is not None and part.boxes is not None:
        xyxy, valid = put(boxes.xyxy, part.boxes.xyxy), put(boxes.valid, part.boxes.valid)
        boxes = Boxes(xyxy, valid, boxes.labels)  # type: ignore[arg-type]
    return batch.replace(
        image=put(batch.image, part.image),
        masks=put(batch.masks, part.masks),
        boxes=boxes,
        keypoints=put(batch.keypoints, part.keypoints),
    )


def warp_batch(batch: Batch, matrix: Tensor, out_size: tuple[int, int], spec: WarpSpec) -> Batch:
    """Warp image, masks, boxes and keypoints of ``batch`` with ``matrix`` ``[B, 3, 3]``.

    Differentiable w.r.t. the image; float images keep their dtype, uint8 is warped in
    float32 and rounded back.

    Args:
        batch: any device.
        matrix: ``[B, 3, 3]`` input -> output continuous pixel coordinates.
        out_size: (H, W) of the output.
        spec: interpolation, border and box policy.

    Shape:
        image ``[B, C, H, W]`` -> ``[B, C, *out_size]``; masks alike; boxes ``[B, N, 4]``;
        keypoints ``[B, K, 2]``.

    Example:
        >>> b = Batch(torch.rand(2, 3, 8, 8))
        >>> warp_batch(b, torch.eye(3).expand(2, 3, 3), (4, 4), WarpSpec()).image.shape
        torch.Size([2, 3, 4, 4])
    """
    bsz = batch.batch_size
    if not isinstance(matrix, Tensor) or tuple(matrix.shape) != (bsz, 3, 3):
        shape = tuple(matrix.shape) if hasattr(matrix, "shape") else type(matrix).__name__
        raise ValueError(f"warp_batch: matrix must be a [B, 3, 3] tensor with B={bsz}, got {shape}")
    out_size = (int(out_size[0]), int(out_size[1]))
    if min(out_size) < 1:
        raise ValueError(f"warp_batch: out_size must be positive, got {out_size}")
    matrix = matrix.to(batch.device)
    ident: Tensor | None = None
    if out_size == batch.size:
        ident = warp_torch.identity_rows(matrix)
        # skipping needs the flag on the host: free on the CPU, a sync on an accelerator
        if batch.device.type == "cpu":
            if bool(ident.all()):
                return batch
            if not bool(ident.any()):
                ident = None
            elif 2 * int(ident.sum()) >= bsz:  # mostly identity rows (a one_of's choice): warp the others alone
                return _warp_rows(batch, (~ident).nonzero().squeeze(1), matrix, out_size, spec)
    grid = warp_torch.sampling_grid(matrix, batch.size, out_size)
    if spec.border_mode == "constant":
        grid = warp_torch.snap_aligned(grid, matrix, batch.size)
    image = warp_torch.warp_image(
        batch.image, grid, mode=spec.interpolation, border_mode=spec.border_mode, fill=spec.fill
    )
    masks = boxes = keypoints = None
    if batch.masks is not None:
        masks = warp_torch.warp_masks(batch.masks, grid, border_mode=spec.border_mode)
    if batch.boxes is not None:
        xyxy, valid = warp_torch.warp_boxes(
            batch.boxes.xyxy,
            batch.boxes.valid,
            matrix,
            out_size,
            min_size=spec.min_box_size,
            min_visibility=spec.min_visibility,
            min_area=spec.min_area,
        )
        if ident is not None:
            xyxy, valid = _keep(ident, batch.boxes.xyxy, xyxy), _keep(ident, batch.boxes.valid, valid)
        boxes = Boxes(xyxy, valid, batch.boxes.labels)
    if batch.keypoints is not None:
        keypoints = warp_torch.transform_points(batch.keypoints, matrix).to(batch.keypoints.dtype)
    if ident is not None:
        image = _keep(ident, batch.image, image)
        if masks is not None and batch.masks is not None:
            masks = _keep(ident, batch.masks, masks)
        if keypoints is not None and batch.keypoints is not None:
            keypoints = _keep(ident, batch.keypoints, keypoints)
    return batch.replace(image=image, masks=masks, boxes=boxes, keypoints=keypoints)


def warp_sample(sample: Sample, matrix: np.ndarray, out_size: tuple[int, int], spec: WarpSpec) -> Sample:
    """Warp one sample (OpenCV) with ``matrix`` ``[3, 3]``.

    Args:
        sample: HWC uint8 or float32 image plus targets.
        matrix: ``[3, 3]`` input -> output continuous pixel coordinates; ``cv2.warpAffine``
            when the last row is (0, 0, 1), else ``cv2.warpPerspective``.
        out_size: (H, W) of the output.
        spec: interpolation, border and box policy.

    Shape:
        image ``[H, W, C]`` -> ``[*out_size, C]``; masks ``[K, H, W]``; boxes ``[N, 4]``.

    Example:
        >>> s = Sample(np.zeros((8, 8, 3), np.uint8))
        >>> warp_sample(s, np.eye(3), (4, 6), WarpSpec()).image.shape
        (4, 6, 3)
    """
    m = np.asarray(matrix, np.float64)
    if m.shape != (3, 3):
        raise ValueError(f"warp_sample: matrix must be [3, 3], got {m.shape}")
    ml = m.tolist()
    img = sample.image
    if ml == _EYE and tuple(out_size) == img.shape[:2]:
        return sample
    out_size = (int(out_size[0]), int(out_size[1]))
    if min(out_size) < 1:
        raise ValueError(f"warp_sample: out_size must be positive, got {out_size}")
    cvm, affine = warp_cv.cv_matrix(ml)
    image = warp_cv.warp_image(
        sample.image,
        cvm,
        affine,
        out_size,
        interpolation=spec.interpolation,
        border_mode=spec.border_mode,
        fill=spec.fill,
    )
    if sample.masks is None and sample.boxes is None and sample.keypoints is None:
        # positional rebuild: 2 us cheaper than dataclasses.replace on the hot path
        # (tests/ops/test_warp.py pins Sample's field order)
        s = sample
        return Sample(image, s.label, s.boxes, s.box_valid, s.box_labels, s.masks, s.keypoints, s.meta)
    changes: dict[str, object] = {"image": image}
    if sample.masks is not None:
        changes["masks"] = warp_cv.warp_masks(
            sample.masks, cvm, affine, out_size, border_mode=spec.border_mode
        )
    if sample.boxes is not None:
        boxes = np.asarray(sample.boxes, np.float32).reshape(-1, 4)
        valid = np.ones(len(boxes), bool) if sample.box_valid is None else np.asarray(sample.box_valid, bool)
        changes["boxes"], changes["box_valid"] = warp_cv.warp_boxes(
            boxes, valid, m, out_size, min_size=spec.min_box_size, min_visibility=spec.min_visibility,
            min_area=spec.min_area,
        )
    if sample.keypoints is not None:
        kp = np.asarray(sample.keypoints)
        changes["keypoints"] = (
            warp_cv.transform_points(kp.reshape(-1, 2), m).astype(np.float32).reshape(kp.shape)
        )
    return sample.replace(**changes)
