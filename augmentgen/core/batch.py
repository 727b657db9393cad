"""The two data containers every stage passes around.

`Batch` is the torch side: a frozen dataclass of batched tensors on any device.
`Sample` is the per-sample CPU side: one HWC numpy image (uint8 or float32) plus its
targets, the form OpenCV kernels want inside DataLoader workers.

Coordinate convention (both): boxes and keypoints are in continuous pixel coordinates,
pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``, so a box around the whole image is
``(0, 0, W, H)``; pixel centres sit at ``j + 0.5``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Boxes:
    """Padded per-sample boxes.

    Shape:
        xyxy: ``[B, N, 4]`` float, pixels. valid: ``[B, N]`` bool. labels: ``[B, N]`` int64.
        Invalid rows keep their slot (and label) so indices stay aligned across ops.

    Example:
        >>> b = Boxes.from_list([torch.tensor([[0., 0., 4., 4.]])], [torch.tensor([3])])
        >>> b.xyxy.shape
        torch.Size([1, 1, 4])
    """

    xyxy: Tensor
    valid: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if self.xyxy.ndim != 3 or self.xyxy.shape[-1] != 4:
            raise ValueError(f"Boxes.xyxy must be [B, N, 4], got {tuple(self.xyxy.shape)}")
        if self.valid.shape != self.xyxy.shape[:2] or self.labels.shape != self.xyxy.shape[:2]:
            raise ValueError(
                f"Boxes.valid {tuple(self.valid.shape)} and labels {tuple(self.labels.shape)} "
                f"must be [B, N] = {tuple(self.xyxy.shape[:2])}"
            )

    @staticmethod
    def from_list(xyxy: list[Tensor], labels: list[Tensor] | None = None) -> Boxes:
        """Pad a list of ``[N_i, 4]`` tensors into one ``Boxes``."""
        n = max((int(b.shape[0]) for b in xyxy), default=0)
        bsz = len(xyxy)
        dev = xyxy[0].device if xyxy else torch.device("cpu")
        out = torch.zeros(bsz, n, 4, dtype=torch.float32, device=dev)
        valid = torch.zeros(bsz, n, dtype=torch.bool, device=dev)
        lab = torch.full((bsz, n), -1, dtype=torch.int64, device=dev)
        for i, b in enumerate(xyxy):
            k = int(b.shape[0])
            out[i, :k] = b.to(torch.float32)
            valid[i, :k] = True
            if labels is not None:
                lab[i, :k] = labels[i].to(torch.int64)
        return Boxes(out, valid, lab)

    def to(self, device: torch.device | str) -> Boxes:
        return Boxes(self.xyxy.to(device), self.valid.to(device), self.labels.to(device))

    def index(self, idx: Tensor) -> Boxes:
        return Boxes(self.xyxy[idx], self.valid[idx], self.labels[idx])


@dataclass(frozen=True)
class Batch:
    """A batch of images and their targets.

    Args:
        image: ``[B, C, H, W]``; float in [0, 1] (any float dtype), or uint8 on the CPU.
        label: ``[B]`` int64 class ids, or None.
        boxes: padded per-sample boxes, or None.
        masks: ``[B, K, H, W]`` integer/bool masks (K instance or class planes), or None.
        keypoints: ``[B, K, 2]`` float xy pixels, or None.
        meta: free-form per-batch metadata (prompts, provenance); lists are per sample.

    Example:
        >>> Batch(torch.rand(2, 3, 8, 8)).batch_size
        2
    """

    image: Tensor
    label: Tensor | None = None
    boxes: Boxes | None = None
    masks: Tensor | None = None
    keypoints: Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.image, Tensor):
            raise TypeError(f"Batch.image must be a torch.Tensor, got {type(self.image).__name__}")
        if self.image.ndim != 4:
            raise ValueError(f"Batch.image must be [B, C, H, W], got shape {tuple(self.image.shape)}")
        b = self.image.shape[0]
        if self.label is not None and tuple(self.label.shape) != (b,):
            raise ValueError(f"Batch.label must be [B]={b}, got shape {tuple(self.label.shape)}")
        if self.masks is not None and (
            self.masks.ndim != 4 or self.masks.shape[0] != b or self.masks.shape[-2:] != self.image.shape[-2:]
        ):
            raise ValueError(
                f"Batch.masks must be [B, K, H, W] matching image {tuple(self.image.shape)}, "
                f"got {tuple(self.masks.shape)}"
            )
        if self.boxes is not None and self.boxes.xyxy.shape[0] != b:
            raise ValueError(f"Batch.boxes has {self.boxes.xyxy.shape[0]} rows, image has {b}")
        if self.keypoints is not None and (self.keypoints.ndim != 3 or self.keypoints.shape[0] != b):
            raise ValueError(f"Batch.keypoints must be [B, K, 2], got {tuple(self.keypoints.shape)}")

    @property
    def batch_size(self) -> int:
        return int(self.image.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the images."""
        return int(self.image.shape[-2]), int(self.image.shape[-1])

    @property
    def device(self) -> torch.device:
        return self.image.device

    def replace(self, **changes: Any) -> Batch:
        return dataclasses.replace(self, **changes)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        def mv(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return Batch(
            image=self.image.to(device, non_blocking=non_blocking),
            label=mv(self.label),
            boxes=None if self.boxes is None else self.boxes.to(device),
            masks=mv(self.masks),
            keypoints=mv(self.keypoints),
            meta=self.meta,
        )

    def index(self, idx: Tensor) -> Batch:
        """Rows ``idx`` (a bool mask or int index tensor) as a new Batch; per-sample meta lists follow."""
        idx_list = idx.nonzero().flatten().tolist() if idx.dtype == torch.bool else idx.tolist()
        meta = {
            k: ([v[i] for i in idx_list] if isinstance(v, list) and len(v) == self.batch_size else v)
            for k, v in self.meta.items()
        }
        return Batch(
            image=self.image[idx],
            label=None if self.label is None else self.label[idx],
            boxes=None if self.boxes is None else self.boxes.index(idx),
            masks=None if self.masks is None else self.masks[idx],
            keypoints=None if self.keypoints is None else self.keypoints[idx],
            meta=meta,
        )

    def as_float(self) -> Batch:
        """Images as float32 in [0, 1] (uint8 input is divided by 255)."""
        if self.image.is_floating_point():
            return self
        return self.replace(image=self.image.to(torch.float32) / 255.0)

    @staticmethod
    def cat(batches: list[Batch]) -> Batch:
        """Concatenate batches along B (targets must be present in all or none)."""
        if not batches:
            raise ValueError("Batch.cat needs at least one batch")
        first = batches[0]

        def cat_opt(ts: list[Tensor | None], what: str) -> Tensor | None:
            if all(t is None for t in ts):
                return None
            if any(t is None for t in ts):
                raise ValueError(f"Batch.cat: '{what}' is present in some batches and missing in others")
            return torch.cat([t for t in ts if t is not None])

        boxes = None
        if any(b.boxes is not None for b in batches):
            if any(b.boxes is None for b in batches):
                raise ValueError("Batch.cat: 'boxes' is present in some batches and missing in others")
            n = max(b.boxes.xyxy.shape[1] for b in batches if b.boxes is not None)
            parts = [pad_boxes(b.boxes, n) for b in batches if b.boxes is not None]
            boxes = Boxes(
                torch.cat([p.xyxy for p in parts]),
                torch.cat([p.valid for p in parts]),
                torch.cat([p.labels for p in parts]),
            )
        meta: dict[str, Any] = {}
        for k in first.meta:
            vals = [b.meta.get(k) for b in batches]
            if all(isinstance(v, list) for v in vals):
                meta[k] = [x for v in vals if isinstance(v, list) for x in v]
            else:
                meta[k] = first.meta[k]
        return Batch(
            image=torch.cat([b.image for b in batches]),
            label=cat_opt([b.label for b in batches], "label"),
            boxes=boxes,
            masks=cat_opt([b.masks for b in batches], "masks"),
            keypoints=cat_opt([b.keypoints for b in batches], "keypoints"),
            meta=meta,
        )


def renumber_instance_ids(masks: Tensor, keep: Tensor) -> Tensor:
    """An instance-id plane after dropping box slots: kept slots renumbered in order, the rest 0.

    Pixel value ``k + 1`` belongs to box slot ``k``. When the slots with ``keep`` False are
    removed, the kept ones move to the front, so their pixels must take their new position;
    pixels of dropped slots, and ids with no slot at all, become background.

    Shape:
        masks ``[..., H, W]`` integer ids; keep ``[..., N]`` bool (leading dims alike, or none on keep).

    Example:
        >>> renumber_instance_ids(torch.tensor([[0, 1, 2, 3]]), torch.tensor([False, True, True])).tolist()
        [[0, 0, 1, 2]]
    """
    n = keep.shape[-1]
    if tuple(masks.shape[: keep.ndim - 1]) != tuple(keep.shape[:-1]) or masks.ndim < keep.ndim + 1:
        raise ValueError(
            f"renumber_instance_ids: masks {tuple(masks.shape)} do not lead with keep's {tuple(keep.shape[:-1])}"
        )
    new_id = torch.cumsum(keep.to(torch.int64), dim=-1) * keep.to(torch.int64)  # [..., N]
    lut = torch.zeros((*keep.shape[:-1], n + 2), dtype=torch.int64, device=masks.device)
    lut[..., 1 : n + 1] = new_id.to(masks.device)  # id n + 1 stands for every id beyond the slots
    ids = masks.to(torch.int64).clamp(0, n + 1)
    lead = keep.shape[:-1]
    flat = ids.reshape(*lead, -1) if lead else ids.reshape(-1)
    mapped = torch.gather(lut, -1, flat) if lead else lut[flat]
    return mapped.reshape(masks.shape).to(masks.dtype)


def pad_boxes(boxes: Boxes, n: int) -> Boxes:
    """Pad ``boxes`` to ``n`` slots per sample with invalid rows."""
    cur = boxes.xyxy.shape[1]
    if cur >= n:
        return boxes
    b = boxes.xyxy.shape[0]
    dev = boxes.xyxy.device
    return Boxes(
        torch.cat([boxes.xyxy, torch.zeros(b, n - cur, 4, dtype=boxes.xyxy.dtype, device=dev)], 1),
        torch.cat([boxes.valid, torch.zeros(b, n - cur, dtype=torch.bool, device=dev)], 1),
        torch.cat([boxes.labels, torch.full((b, n - cur), -1, dtype=torch.int64, device=dev)], 1),
    )


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample on the per-sample CPU path (OpenCV kernels).

    Args:
        image: ``[H, W, C]`` numpy, uint8 (0..255) or float32 (0..1). C is 1 or 3.
        label: class id or None.
        boxes: ``[N, 4]`` float32 xyxy pixels, or None. box_valid ``[N]`` bool, box_labels ``[N]`` int64.
        masks: ``[K, H, W]`` uint8, or None.
        keypoints: ``[K, 2]`` float32 xy pixels, or None.

    Example:
        >>> Sample(np.zeros((8, 8, 3), np.uint8)).size
        (8, 8)
    """

    image: np.ndarray
    label: int | None = None
    boxes: np.ndarray | None = None
    box_valid: np.ndarray | None = None
    box_labels: np.ndarray | None = None
    masks: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    meta: dict[str, Any] | None = None

    @property
    def batch_size(self) -> int:
        return 1

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])

    def replace(self, **changes: Any) -> Sample:
        # Built positionally: dataclasses.replace costs ~3 us, a lot on the 32 px hot path.
        g = changes.get
        if not changes.keys() <= _SAMPLE_FIELDS:
            raise TypeError(f"Sample.replace: unknown field(s) {sorted(changes.keys() - _SAMPLE_FIELDS)}")
        return Sample(
            g("image", self.image), g("label", self.label), g("boxes", self.boxes), g("box_valid", self.box_valid),
            g("box_labels", self.box_labels), g("masks", self.masks), g("keypoints", self.keypoints), g("meta", self.meta),
        )

    def to_batch(self) -> Batch:
        """This sample as a one-row Batch (CHW tensor, same dtype)."""
        img = torch.from_numpy(np.ascontiguousarray(self.image)).permute(2, 0, 1).unsqueeze(0)
        boxes = None
        if self.boxes is not None:
            n = self.boxes.shape[0]
            valid = self.box_valid if self.box_valid is not None else np.ones(n, bool)
            labels = self.box_labels if self.box_labels is not None else np.full(n, -1, np.int64)
            boxes = Boxes(
                torch.from_numpy(np.asarray(self.boxes, np.float32)).reshape(1, n, 4),
                torch.from_numpy(np.asarray(valid, bool)).reshape(1, n),
                torch.from_numpy(np.asarray(labels, np.int64)).reshape(1, n),
            )
        return Batch(
            image=img,
            label=None if self.label is None else torch.tensor([int(self.label)]),
            boxes=boxes,
            masks=None if self.masks is None else torch.from_numpy(self.masks).unsqueeze(0),
            keypoints=None if self.keypoints is None else torch.from_numpy(self.keypoints).unsqueeze(0),
            meta=dict(self.meta or {}),
        )

    @staticmethod
    def from_batch(batch: Batch, i: int = 0) -> Sample:
        """Row ``i`` of a CPU batch as a Sample (HWC numpy)."""
        img = batch.image[i].detach().cpu().permute(1, 2, 0).contiguous().numpy()
        boxes = valid = blabels = None
        if batch.boxes is not None:
            boxes = batch.boxes.xyxy[i].detach().cpu().numpy().astype(np.float32)
            valid = batch.boxes.valid[i].cpu().numpy()
            blabels = batch.boxes.labels[i].cpu().numpy()
        return Sample(
            image=img,
            label=None if batch.label is None else int(batch.label[i]),
            boxes=boxes,
            box_valid=valid,
            box_labels=blabels,
            masks=None if batch.masks is None else batch.masks[i].cpu().numpy(),
            keypoints=None if batch.keypoints is None else batch.keypoints[i].cpu().numpy(),
            meta=dict(batch.meta) if batch.meta else None,
        )


_SAMPLE_FIELDS = frozenset(f.name for f in dataclasses.fields(Sample))
