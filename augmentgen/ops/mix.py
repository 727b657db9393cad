"""Batch ops for detection: mosaic, copy-paste and mixup. Each output row mixes several rows of the batch.

They work on a ``Batch`` (any device) whose boxes are padded ``[B, N, 4]`` and whose
masks, when present, are ONE instance-id plane per image (pixel value ``k + 1`` is box
slot ``k``, as ``data.detection`` builds them). Boxes, labels and masks follow the pixels:
a mixed row has more box slots than its input (mosaic ``4N``, copy-paste ``2N``), dropped
boxes keep their slot, and instance ids are renumbered to the new slots.

They need other rows, so they have no per-sample path: ``apply_sample`` raises.

Example:
    >>> from augmentgen.core.batch import Boxes
    >>> b = Batch(torch.rand(4, 3, 32, 32), boxes=Boxes.from_list([torch.tensor([[2.0, 2, 9, 9]])] * 4))
    >>> op = Mosaic()
    >>> op.apply(b, op.sample_params(b, torch.Generator().manual_seed(0))).boxes.xyxy.shape
    torch.Size([4, 4, 4])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from augmentgen.core.batch import Batch, Boxes, Sample
from augmentgen.core.params import Params
from augmentgen.core.registry import register
from augmentgen.core.rng import RNG, Array, torch_rng
from augmentgen.ops._geometry import block, expect, int_below, span
from augmentgen.ops.base import Op
from augmentgen.ops.box_policy import BoxPolicy


@dataclass(frozen=True)
class MosaicParams(Params):
    partners: Array  # [B, 3] int64 rows placed in the top-right, bottom-left, bottom-right tiles
    x0: Array  # [B] int64 left edge of the output window in the 2W x 2H grid
    y0: Array  # [B] int64 top edge


@dataclass(frozen=True)
class CopyPasteParams(Params):
    source: Array  # [B] int64 row whose objects are pasted
    seed: Array  # [B] int64 seed of the row's per-object draws (N is unknown until apply)


@dataclass(frozen=True)
class BoxMixUpParams(Params):
    source: Array  # [B] int64 row blended in
    weight: Array  # [B] float64 weight of the row's own image (1: untouched)


def _partners(rng: torch.Generator, n: int) -> Tensor:
    """``[n]`` int64: for each row another row ``j != i`` (when ``n`` > 1), from one uniform draw per row."""
    off = torch.as_tensor(int_below(block(rng, n, 1)[0], 1, max(n - 1, 1)))  # an offset in [1, n)
    return (torch.arange(n, device=off.device) + off) % n


def _batch_only(name: str) -> ValueError:
    return ValueError(
        f"{name} mixes rows of a batch and has no per-sample path; apply it to a Batch "
        "(e.g. in a recipe pipeline or after collate), not to one image"
    )


def _check_masks(batch: Batch, slots: int, name: str) -> None:
    if (
        batch.masks is not None
        and batch.masks.shape[1] == 1
        and slots > 255
        and batch.masks.dtype == torch.uint8
    ):
        raise ValueError(
            f"{name}: {slots} box slots do not fit uint8 instance ids (at most 255); use fewer boxes"
        )


def _policy_ok(raw: Tensor, clipped: Tensor, policy: BoxPolicy) -> Tensor:
    """``[..., N]`` bool: clipped boxes that pass the policy (size, area, visibility vs the raw box)."""
    cw, ch = clipped[..., 2] - clipped[..., 0], clipped[..., 3] - clipped[..., 1]
    area = (raw[..., 2] - raw[..., 0]) * (raw[..., 3] - raw[..., 1])
    ok = (cw >= policy.min_size) & (ch >= policy.min_size) & (cw * ch >= policy.min_visibility * area)
    return ok & (cw * ch >= policy.min_area) if policy.min_area > 0 else ok


@register("mosaic")
@dataclass(kw_only=True)
class Mosaic(Op):
    """YOLOv4-style mosaic: four rows tiled 2x2, then an (H, W) window cut around a random centre.

    Row ``i`` fills the top-left tile and three partner rows (drawn from the batch) the
    others; the window's top-left corner is drawn in ``center`` fractions of (W, H), so each
    tile shows between ``1 - hi`` and ``1 - lo`` of its image per axis. Window corners are
    whole pixels, so tile pixels are copied, not resampled. Boxes are shifted, clipped to
    their tile's visible part and then filtered by ``min_visibility`` / ``min_area`` /
    ``min_size`` (see ``BoxPolicy``).

    Args:
        center: (lo, hi) range of the window corner, fractions of W and H, within [0, 1].
        min_visibility, min_area, min_size: the box policy for the cut boxes.
        instance_masks: masks are instance-id planes (ids are renumbered to the new slots);
            False copies mask values as they are (class-id maps).

    Example:
        >>> Mosaic(center=(0.3, 0.7)).center
        (0.3, 0.7)
    """

    kind: ClassVar[str] = "mix"
    center: tuple[float, float] = (0.25, 0.75)
    min_visibility: float = 0.25
    min_area: float = 0.0
    min_size: float = 1.0
    instance_masks: bool = True

    def validate(self) -> None:
        self.center = span("Mosaic.center", self.center, symmetric=False)
        if not 0.0 <= self.center[0] <= self.center[1] <= 1.0:
            raise ValueError(f"Mosaic.center must lie in [0, 1], got {self.center}")
        self._policy = BoxPolicy.from_dict(
            {"min_visibility": self.min_visibility, "min_area": self.min_area, "min_size": self.min_size},
            "Mosaic",
        )

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> MosaicParams:
        if isinstance(rng, np.random.Generator):
            raise _batch_only("Mosaic")
        h, w = size
        lo, hi = self.center
        u = torch.as_tensor(block(rng, n, 5))  # [5, n]
        partners = int_below(u[:3].T.contiguous(), 0, n)
        x0 = int_below(u[3], int(round(lo * w)), int(round(hi * w)) - int(round(lo * w)) + 1)
        y0 = int_below(u[4], int(round(lo * h)), int(round(hi * h)) - int(round(lo * h)) + 1)
        return MosaicParams(applied=applied, partners=partners, x0=x0, y0=y0)

    def apply_sample(self, sample: Sample, params: Params) -> Sample:
        raise _batch_only("Mosaic")

    def apply(self, batch: Batch, params: Params) -> Batch:
        p = expect(params, MosaicParams, "Mosaic.apply").to_torch("cpu")
        bsz, (h, w) = batch.batch_size, batch.size
        applied = torch.as_tensor(p.applied).to(torch.bool)
        if not bool(applied.any()) and batch.boxes is None:
            return batch  # nothing drawn and no box slots to widen (with boxes, the 4n slots stay)
        n = 0 if batch.boxes is None else int(batch.boxes.xyxy.shape[1])
        inst = self.instance_masks and batch.masks is not None and batch.masks.shape[1] == 1
        if inst:
            _check_masks(batch, 4 * n, "Mosaic")
        image, masks = batch.image.clone(), None if batch.masks is None else batch.masks.clone()
        dev = batch.device
        xyxy = torch.zeros(bsz, 4 * n, 4, dtype=torch.float32, device=dev)
        valid = torch.zeros(bsz, 4 * n, dtype=torch.bool, device=dev)
        labels = torch.full((bsz, 4 * n), -1, dtype=torch.int64, device=dev)
        if batch.boxes is not None:
            xyxy[:, :n], valid[:, :n], labels[:, :n] = batch.boxes.xyxy, batch.boxes.valid, batch.boxes.labels
        for i in torch.nonzero(applied).flatten().tolist():
            x0, y0 = int(p.x0[i]), int(p.y0[i])
            rows = [i, *(int(r) for r in p.partners[i].tolist())]
            for t, src in enumerate(rows):
                tx, ty = t % 2, t // 2
                # tile t covers grid [tx W, (tx+1) W) x [ty H, (ty+1) H); the window starts at (x0, y0)
                ox, oy = tx * w - x0, ty * h - y0  # tile origin in output pixels
                ax0, ay0, ax1, ay1 = max(ox, 0), max(oy, 0), min(ox + w, w), min(oy + h, h)
                if ax1 <= ax0 or ay1 <= ay0:
                    continue
                image[i, :, ay0:ay1, ax0:ax1] = batch.image[src, :, ay0 - oy : ay1 - oy, ax0 - ox : ax1 - ox]
                if masks is not None and batch.masks is not None:
                    m = batch.masks[src, :, ay0 - oy : ay1 - oy, ax0 - ox : ax1 - ox]
                    if inst:
                        m = torch.where(m > 0, m + t * n, m)
                    masks[i, :, ay0:ay1, ax0:ax1] = m
                if batch.boxes is None or n == 0:
                    continue
                shift = torch.tensor([ox, oy, ox, oy], dtype=torch.float32, device=dev)
                raw = batch.boxes.xyxy[src].to(torch.float32) + shift
                lim_lo = torch.tensor([ax0, ay0, ax0, ay0], dtype=torch.float32, device=dev)
                lim_hi = torch.tensor([ax1, ay1, ax1, ay1], dtype=torch.float32, device=dev)
                clipped = torch.minimum(torch.maximum(raw, lim_lo), lim_hi)
                sl = slice(t * n, (t + 1) * n)
                xyxy[i, sl] = clipped
                valid[i, sl] = batch.boxes.valid[src] & _policy_ok(raw, clipped, self._policy)
                labels[i, sl] = batch.boxes.labels[src]
            if masks is not None and inst and batch.boxes is not None:
                # ids of dropped boxes would point at invalid slots: clear their pixels
                dead = torch.cat([torch.zeros(1, dtype=torch.bool, device=dev), ~valid[i]])
                ids = masks[i, 0].to(torch.int64).clamp(max=4 * n)
                masks[i, 0] = torch.where(dead[ids], torch.zeros_like(masks[i, 0]), masks[i, 0])
        boxes = None if batch.boxes is None else Boxes(xyxy.to(batch.boxes.xyxy.dtype), valid, labels)
        return batch.replace(image=image, masks=masks, boxes=boxes)


def _tight_box(ids: Tensor, k: int) -> Tensor | None:
    """xyxy (continuous pixels) of the pixels with id ``k``, or None when there are none."""
    ys, xs = torch.nonzero(ids == k, as_tuple=True)
    if xs.numel() == 0:
        return None
    return torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).to(torch.float32)


@register("copy_paste")
@dataclass(kw_only=True)
class CopyPaste(Op):
    """Simple Copy-Paste (Ghiasi et al., 2021, https://arxiv.org/abs/2012.07177): paste objects of another row.

    Row ``i`` receives a random subset of the objects of a source row ``j != i``, at the
    same position, cut out with their instance masks (so it needs masks). Pasted objects
    get new box slots ``N + k``; objects of row ``i`` they cover lose those pixels, their box
    shrinks to the pixels left (or is dropped when fewer than ``min_visible_pixels`` remain
    or the policy says so), and their slot and label stay.

    Args:
        paste_fraction: chance that each object of the source row is pasted.
        min_visible_pixels: an occluded object with fewer pixels left is dropped.
        min_visibility, min_area, min_size: the box policy for the shrunk boxes (visibility is
            the shrunk box's area over the original box's area).

    Example:
        >>> CopyPaste(paste_fraction=0.5).paste_fraction
        0.5
    """

    kind: ClassVar[str] = "mix"
    paste_fraction: float = 0.5
    min_visible_pixels: int = 1
    min_visibility: float = 0.0
    min_area: float = 0.0
    min_size: float = 1.0

    def validate(self) -> None:
        if not 0.0 <= float(self.paste_fraction) <= 1.0:
            raise ValueError(f"CopyPaste.paste_fraction must be in [0, 1], got {self.paste_fraction!r}")
        if not isinstance(self.min_visible_pixels, int) or self.min_visible_pixels < 1:
            raise ValueError(
                f"CopyPaste.min_visible_pixels must be an int >= 1, got {self.min_visible_pixels!r}"
            )
        self._policy = BoxPolicy.from_dict(
            {"min_visibility": self.min_visibility, "min_area": self.min_area, "min_size": self.min_size},
            "CopyPaste",
        )

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> CopyPasteParams:
        if isinstance(rng, np.random.Generator):
            raise _batch_only("CopyPaste")
        source = _partners(rng, n)
        seed = torch.randint(0, 2**62, (n,), generator=rng, device=rng.device)
        return CopyPasteParams(applied=torch.as_tensor(applied) & (n > 1), source=source, seed=seed)

    def apply_sample(self, sample: Sample, params: Params) -> Sample:
        raise _batch_only("CopyPaste")

    def apply(self, batch: Batch, params: Params) -> Batch:
        p = expect(params, CopyPasteParams, "CopyPaste.apply").to_torch("cpu")
        applied = torch.as_tensor(p.applied).to(torch.bool)
        if not bool(applied.any()):  # p=0, or a batch of one: nothing to paste from
            return batch
        if batch.boxes is None or batch.masks is None or batch.masks.shape[1] != 1:
            raise ValueError(
                "CopyPaste needs boxes and a [B, 1, H, W] instance-id mask (pixel k + 1 = box slot k); "
                f"got boxes={'yes' if batch.boxes is not None else 'None'}, masks="
                f"{None if batch.masks is None else tuple(batch.masks.shape)}"
            )
        n = int(batch.boxes.xyxy.shape[1])
        _check_masks(batch, 2 * n, "CopyPaste")
        bx, dev = batch.boxes, batch.device
        xyxy = torch.cat([bx.xyxy.to(torch.float32), torch.zeros_like(bx.xyxy, dtype=torch.float32)], 1)
        valid = torch.cat([bx.valid, torch.zeros_like(bx.valid)], 1)
        labels = torch.cat([bx.labels, torch.full_like(bx.labels, -1)], 1)
        image, masks = batch.image.clone(), batch.masks.clone()
        for i in torch.nonzero(applied).flatten().tolist():
            j = int(p.source[i])
            src_ids = batch.masks[j, 0].to(torch.int64)
            keep = torch.rand(n, generator=torch_rng(int(p.seed[i]), "copy_paste"))
            chosen = [k for k in range(n) if bool(bx.valid[j, k]) and float(keep[k]) < self.paste_fraction]
            chosen = [k for k in chosen if bool((src_ids == k + 1).any())]
            if not chosen:
                continue
            sel = torch.zeros(n + 1, dtype=torch.bool, device=dev)
            sel[torch.tensor(chosen, device=dev) + 1] = True
            paste = sel[src_ids.clamp(max=n)]  # [H, W]
            image[i] = torch.where(paste[None], batch.image[j], image[i])
            dst = batch.masks[i, 0]
            masks[i, 0] = torch.where(paste, (src_ids + n).to(dst.dtype), dst)
            for k in chosen:
                xyxy[i, n + k], valid[i, n + k], labels[i, n + k] = bx.xyxy[j, k], True, bx.labels[j, k]
            # objects of row i that lost pixels shrink to what is left, or go
            covered = torch.unique(dst[paste].to(torch.int64))
            ids_now = masks[i, 0].to(torch.int64)
            for kk in covered.tolist():
                k = kk - 1
                if k < 0 or k >= n or not bool(valid[i, k]):
                    continue
                left = int((ids_now == kk).sum())
                box = _tight_box(ids_now, kk)
                if box is None or left < self.min_visible_pixels:
                    valid[i, k] = False
                    continue
                old = xyxy[i, k].clone()
                new = torch.maximum(
                    torch.minimum(box.to(dev), old.new_tensor([old[2], old[3], old[2], old[3]])),
                    old.new_tensor([old[0], old[1], old[0], old[1]]),
                )
                xyxy[i, k] = new
                valid[i, k] = bool(_policy_ok(old, new, self._policy))
            dead = torch.cat([torch.zeros(1, dtype=torch.bool, device=dev), ~valid[i]])
            masks[i, 0] = torch.where(
                dead[ids_now.clamp(max=2 * n)], torch.zeros_like(masks[i, 0]), masks[i, 0]
            )
        boxes = Boxes(xyxy.to(bx.xyxy.dtype), valid, labels)
        return batch.replace(image=image, masks=masks, boxes=boxes)


@register("mixup")
@dataclass(kw_only=True)
class BoxMixUp(Op):
    """YOLO-style MixUp for detection: blend row ``i`` with another row, keep both rows' boxes.

    The image becomes ``w * image_i + (1 - w) * image_j`` with ``w ~ Beta(alpha, alpha)``
    (YOLOv5's alpha 32 keeps ``w`` near 0.5) and a partner ``j != i`` drawn from the batch; the
    boxes are row ``i``'s in slots ``0..N-1`` and row ``j``'s in slots ``N..2N-1`` (invalid, with
    label -1, where the row is not mixed), so the slot count never depends on the draw. Both
    objects stay labelled: a detector learns to find each through the other. Masks are merged:
    a pixel keeps the object of the image that weighs more there (its own where ``w >= 0.5``),
    the other's where only that one has an object; instance ids of row ``j`` move to its new
    slots (``k + 1 + N``).

    A batch with class labels and no boxes is refused (its labels would stay one-hot on a
    blended image): for class labels use ``pipeline.LabelMix`` after collate, which mixes the
    targets too. Keypoints are refused (a row holds a fixed number of them).

    Args:
        alpha: the Beta distribution's parameter (both shapes); larger keeps ``w`` nearer 0.5.
        instance_masks: masks are instance-id planes (ids renumbered to the new slots); False
            merges mask values as they are (class-id maps).

    Example:
        >>> BoxMixUp(alpha=8.0).alpha
        8.0
    """

    kind: ClassVar[str] = "mix"
    alpha: float = 32.0
    instance_masks: bool = True

    def validate(self) -> None:
        if not (float(self.alpha) > 0 and np.isfinite(float(self.alpha))):
            raise ValueError(f"BoxMixUp.alpha must be a finite number > 0, got {self.alpha!r}")

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> BoxMixUpParams:
        if isinstance(rng, np.random.Generator):
            raise _batch_only("BoxMixUp")
        source = _partners(rng, n)
        # Beta has no torch sampler that takes a generator: one seed from the stream, numpy's Beta
        seed = int(torch.randint(0, 2**62, (1,), generator=rng, device=rng.device))
        weight = torch.from_numpy(np.random.default_rng(seed).beta(self.alpha, self.alpha, n))
        return BoxMixUpParams(applied=torch.as_tensor(applied) & (n > 1), source=source, weight=weight)

    def apply_sample(self, sample: Sample, params: Params) -> Sample:
        raise _batch_only("BoxMixUp")

    def apply(self, batch: Batch, params: Params) -> Batch:
        p = expect(params, BoxMixUpParams, "BoxMixUp.apply").to_torch("cpu")
        if batch.boxes is None and batch.label is not None:
            raise ValueError(
                "mixup (BoxMixUp) blends images and keeps both rows' boxes; this batch has class labels "
                "and no boxes, which it would leave one-hot on blended images: to mix class labels use "
                "pipeline.LabelMix after collate (soft targets)"
            )
        if batch.keypoints is not None:
            raise ValueError("mixup (BoxMixUp) cannot carry keypoints: a row holds a fixed number of them")
        dev = batch.device
        applied = torch.as_tensor(p.applied).to(torch.bool)
        src = torch.as_tensor(p.source).to(torch.int64).to(dev)
        w = torch.where(applied, torch.as_tensor(p.weight).to(torch.float64), 1.0)
        on = applied.to(dev)
        boxes, n = None, 0
        if batch.boxes is not None:
            bx = batch.boxes
            n = int(bx.xyxy.shape[1])
            other_valid = bx.valid[src] & on[:, None]
            boxes = Boxes(
                torch.cat([bx.xyxy, bx.xyxy[src]], 1),
                torch.cat([bx.valid, other_valid], 1),
                torch.cat([bx.labels, torch.where(other_valid, bx.labels[src], -1)], 1),
            )
        if not bool(applied.any()):
            return batch.replace(boxes=boxes)
        masks = batch.masks
        if masks is not None:
            inst = self.instance_masks and masks.shape[1] == 1
            if inst:
                _check_masks(batch, 2 * n, "BoxMixUp")
            other = masks[src]
            if inst:
                other = torch.where(other > 0, other + n, other)
            own_wins = (masks > 0) & ((other == 0) | (w >= 0.5).to(dev).view(-1, 1, 1, 1))
            merged = torch.where(own_wins | (other == 0), masks, other)
            masks = torch.where(on.view(-1, 1, 1, 1), merged, masks)
        x = batch.image
        keep = (1.0 - w).to(dev).view(-1, 1, 1, 1)
        if x.dtype == torch.uint8:  # blend in float, round back (the CPU path's images)
            image = torch.lerp(x.float(), x[src].float(), keep.float()).round_().clamp_(0, 255).to(torch.uint8)
        else:
            image = torch.lerp(x, x[src], keep.to(x.dtype))
        return batch.replace(image=image, boxes=boxes, masks=masks)
