"""Batched torch warp kernels: one ``[B, 3, 3]`` matrix per row, any device, no loop over rows.

Matrices map INPUT continuous pixel coordinates to OUTPUT ones (see ``core.batch``). With
``grid_sample(align_corners=False)`` the normalized coordinate -1 is the left edge of
pixel 0 and +1 the right edge of the last pixel, i.e. ``u_norm = 2 u / W - 1`` for a
continuous coordinate ``u``, so the sampling grid is ``N_in . M^-1`` applied to the
output pixel centres ``(j + 0.5, i + 0.5)``.

Border modes: ``constant`` (zeros padding, fill ``c`` as ``warp(x - c) + c``),
``replicate`` (``border``), ``reflect`` (``reflection``: mirrors about the image edge,
edge pixel repeated, which is OpenCV's ``BORDER_REFLECT``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_PADDING = {"constant": "zeros", "replicate": "border", "reflect": "reflection"}


def _inverse(matrix: Tensor) -> Tensor:
    """Batched 3x3 inverse in float64 where the device has it; ``inv_ex`` never syncs."""
    wide = torch.float32 if matrix.device.type == "mps" else torch.float64
    inv: Tensor = torch.linalg.inv_ex(matrix.to(wide))[0]
    return inv


def identity_rows(matrix: Tensor) -> Tensor:
    """``[B]`` bool: rows that are exactly the 3x3 identity."""
    eye = torch.eye(3, dtype=matrix.dtype, device=matrix.device)
    return (matrix == eye).flatten(1).all(dim=1)


def sampling_grid(matrix: Tensor, in_size: tuple[int, int], out_size: tuple[int, int]) -> Tensor:
    """``grid_sample`` grid (float32, normalized input coords) for each output pixel centre.

    Each coordinate is ``a x + b y + c``: a ``[B, W]`` row term plus a ``[B, H]`` column
    term, one broadcast add per plane (no ``[B, H*W, 3]`` matmul, 2-3x faster than
    ``F.affine_grid`` on the CPU). The perspective divide is skipped when every row is affine, which is checked on the CPU only (free
    there, a device sync elsewhere).

    Shape:
        matrix ``[B, 3, 3]`` -> grid ``[B, H_out, W_out, 2]``.
    """
    (h, w), (ho, wo) = in_size, out_size
    bsz, dev = int(matrix.shape[0]), matrix.device
    affine = dev.type == "cpu" and bool(((matrix[:, 2, :2] == 0).all() & (matrix[:, 2, 2] == 1).all()).item())
    inv = _inverse(matrix)
    norm = torch.tensor(
        [[2.0 / w, 0.0, -1.0], [0.0, 2.0 / h, -1.0], [0.0, 0.0, 1.0]], dtype=inv.dtype, device=dev
    )
    theta = (norm @ inv).to(torch.float32)  # [B, 3, 3]: output pixel coords -> normalized input
    xs = (torch.arange(wo, device=dev, dtype=torch.float32) + 0.5)[None]  # [1, Wo] pixel centres
    ys = (torch.arange(ho, device=dev, dtype=torch.float32) + 0.5)[None]  # [1, Ho]

    def plane(k: int, out: Tensor) -> Tensor:
        row = torch.addcmul(theta[:, k, 2:3], theta[:, k, 0:1], xs)  # [B, Wo]
        col = theta[:, k, 1:2] * ys  # [B, Ho]
        # written straight into the interleaved grid: faster than stacking planes (measured)
        return torch.add(row[:, None, :], col[:, :, None], out=out)

    grid = torch.empty(bsz, ho, wo, 2, device=dev, dtype=torch.float32)
    if affine:
        plane(0, grid[..., 0])
        plane(1, grid[..., 1])
    else:
        z = plane(2, torch.empty(bsz, ho, wo, device=dev, dtype=torch.float32))
        plane(0, grid[..., 0]).div_(z)
        plane(1, grid[..., 1]).div_(z)
    return grid


def snap_aligned(grid: Tensor, matrix: Tensor, in_size: tuple[int, int]) -> Tensor:
    """The grid of a constant-border warp with the rows that only scale (by other than 1), flip and
    shift the image onto whole output pixels (a letterbox) sampling like a resize then a pad.

    Output pixels inside the image's footprint sample at most to the outermost pixel centres (the
    edge replicated, as ``cv2.resize`` does), those outside it far outside (the fill, unblended);
    see ``warp_cv.aligned_box``, the per-sample path's rule. Other rows keep their grid. No host sync.
    """
    h, w = in_size
    m = matrix.to(torch.float64)
    a, b, c = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    d, e, f = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]

    def whole(v: Tensor) -> Tensor:
        return (v - v.round()).abs() <= 1e-4

    aligned = (
        (b == 0) & (d == 0) & (a != 0) & (e != 0) & (m[:, 2, 0] == 0) & (m[:, 2, 1] == 0) & (m[:, 2, 2] == 1)
        & whole(c) & whole(c + a * w) & whole(f) & whole(f + e * h)
        & ((a.abs() != 1) | (e.abs() != 1))  # at scale 1 the grid reads pixel centres or the border alone
    )  # fmt: skip
    if grid.device.type == "cpu" and not bool(aligned.any()):
        return grid
    gx, gy = grid[..., 0], grid[..., 1]
    inside = (gx.abs() < 1) & (gy.abs() < 1)
    snapped = torch.stack([gx.clamp(-1 + 1 / w, 1 - 1 / w), gy.clamp(-1 + 1 / h, 1 - 1 / h)], dim=-1)
    far = torch.full_like(grid, 3.0)  # beyond the zero padding's reach: the fill alone
    snapped = torch.where(inside[..., None], snapped, far)
    return torch.where(aligned[:, None, None, None], snapped, grid)


def warp_image(image: Tensor, grid: Tensor, *, mode: str, border_mode: str, fill: float) -> Tensor:
    """Sample ``image`` at ``grid``; keeps dtype (uint8 is warped in float and rounded back).

    Args:
        image: ``[B, C, H, W]`` float (half is sampled in float32) or uint8 (warped in
            float32 and rounded back; ``fill`` is scaled by 255).
        grid: from ``sampling_grid``.
        mode: ``"bilinear"`` or ``"nearest"``.
        border_mode: ``"constant"``, ``"reflect"`` or ``"replicate"``.
        fill: constant border value in [0, 1] image units.

    Shape:
        ``[B, C, H, W]`` -> ``[B, C, H_out, W_out]``.
    """
    # half grids put 224 px coordinates off by ~0.1 px, so half images are sampled in float32
    x = image if image.dtype in (torch.float32, torch.float64) else image.to(torch.float32)
    c = float(fill) * (1.0 if image.is_floating_point() else 255.0) if border_mode == "constant" else 0.0
    if c != 0.0:
        x = x - c
    out = F.grid_sample(
        x, grid.to(x.dtype), mode=mode, padding_mode=_PADDING[border_mode], align_corners=False
    )
    if c != 0.0:
        out = out + c
    if image.is_floating_point():
        return out.to(image.dtype)
    return out.round_().clamp_(0, 255).to(image.dtype)


def warp_masks(masks: Tensor, grid: Tensor, *, border_mode: str) -> Tensor:
    """Nearest-neighbour warp of ``[B, K, H, W]`` integer/bool masks; constant border fills 0."""
    out = F.grid_sample(
        masks.to(torch.float32), grid, mode="nearest", padding_mode=_PADDING[border_mode], align_corners=False
    )
    if masks.dtype == torch.bool:
        return out > 0.5
    return out.round().to(masks.dtype)


def transform_points(points: Tensor, matrix: Tensor) -> Tensor:
    """Apply ``[B, 3, 3]`` to ``[B, P, 2]`` points (with the perspective divide), in the points' dtype."""
    m = matrix.to(points.dtype if points.is_floating_point() else torch.float32)
    p = points.to(m.dtype)
    xy = p @ m[:, :2, :2].transpose(1, 2) + m[:, None, :2, 2]
    z = p @ m[:, 2:, :2].transpose(1, 2) + m[:, None, 2:, 2]
    return xy / z


def warp_boxes(
    xyxy: Tensor,
    valid: Tensor,
    matrix: Tensor,
    out_size: tuple[int, int],
    *,
    min_size: float,
    min_visibility: float,
    min_area: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Corners through ``matrix``, min/max, clip to the canvas, then mark degenerate boxes invalid.

    Args:
        xyxy: ``[B, N, 4]`` pixels; valid: ``[B, N]`` bool.
        matrix: ``[B, 3, 3]``.
        out_size: (H, W) of the output canvas.
        min_size: boxes narrower or lower than this (pixels, after clipping) become invalid.
        min_visibility: boxes whose clipped area is below this fraction of their unclipped
            area become invalid.
        min_area: boxes whose clipped area is below this (square pixels) become invalid.

    Shape:
        returns ``([B, N, 4], [B, N])``; slots (and so labels) are kept.
    """
    b, n = xyxy.shape[:2]
    x0, y0, x1, y1 = xyxy.unbind(-1)
    corners = torch.stack([x0, y0, x1, y0, x1, y1, x0, y1], dim=-1).reshape(b, n * 4, 2)
    pts = transform_points(corners, matrix).reshape(b, n, 4, 2)
    lo, hi = pts.amin(dim=2), pts.amax(dim=2)  # [B, N, 2]
    raw = torch.cat([lo, hi], dim=-1)
    ho, wo = out_size
    limit = torch.tensor([wo, ho, wo, ho], dtype=raw.dtype, device=raw.device)
    clipped = torch.minimum(raw.clamp(min=0.0), limit)
    cw, ch = clipped[..., 2] - clipped[..., 0], clipped[..., 3] - clipped[..., 1]
    area = (raw[..., 2] - raw[..., 0]) * (raw[..., 3] - raw[..., 1])
    visible = cw * ch >= min_visibility * area
    ok = valid & (cw >= min_size) & (ch >= min_size) & visible & torch.isfinite(raw).all(dim=-1)
    if min_area > 0:
        ok = ok & (cw * ch >= min_area)
    return clipped.to(xyxy.dtype), ok
