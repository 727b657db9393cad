"""The in-memory side of detection sets: categories, per-image records, the Dataset, batching, compaction.

Targets follow ``core.batch``: boxes are xyxy continuous pixels, box labels are the
data set's category ids (COCO ``category_id``; the class index for YOLO). Instance masks
travel as ONE plane per image, an instance-id map: pixel value ``k + 1`` belongs to box
slot ``k`` (0 is background), so a warp moves them with the nearest-neighbour rule and a
shard stores them as ``mask.png``. The readers are in ``data.detection``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from augmentgen.core.batch import Batch, Boxes, renumber_instance_ids
from augmentgen.data.detection_masks import segmentation_to_mask
from augmentgen.pipeline.dataloader import stack_chw

logger = logging.getLogger(__name__)

MAX_INSTANCES = 255  # instance ids live in a uint8 plane (mask.png)


@dataclass(frozen=True)
class Category:
    """One category: its id in the annotations and its name."""

    id: int
    name: str


@dataclass
class DetectionRecord:
    """The annotations of one image (the image itself is read on demand).

    Args:
        file: the image path. size: (H, W). image_id: id in the source annotations.
        boxes: ``[N, 4]`` float32 xyxy pixels. labels: ``[N]`` int64 category ids.
        segments: per box a COCO segmentation (polygons or RLE) or None.
        mask_file: a class-id mask image (image + mask folders), or None.
    """

    file: Path
    size: tuple[int, int]
    image_id: int
    boxes: np.ndarray
    labels: np.ndarray
    segments: list[Any] | None = None
    mask_file: Path | None = None


def _read_image(path: Path) -> np.ndarray:
    data = np.fromfile(str(path), np.uint8) if path.is_file() else None
    img = None if data is None or data.size == 0 else cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path} ({'missing' if data is None else 'not decodable'})")
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


@dataclass
class DetectionDataset(Dataset[dict[str, Any]]):
    """A detection (or segmentation) set: records plus categories; ``ds[i]`` is a sample dict.

    Args:
        records: one per image. categories: the known categories (ids need not be contiguous).
        name: where it came from.

    Shape:
        ``ds[i]`` is ``{"image": [H, W, 3] uint8, "boxes": [N, 4] float32, "box_labels": [N] int64,
        "masks": [1, H, W] uint8 or None, "image_id": int, "file": str}``.

    Example:
        >>> ds = load_coco("examples/data/driving-coco/annotations.json")  # doctest: +SKIP
        >>> ds.to_batch([0, 1], size=(256, 384)).boxes.xyxy.shape  # doctest: +SKIP
    """

    records: list[DetectionRecord]
    categories: list[Category]
    name: str = "detection"
    _ids: dict[int, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.records:
            raise ValueError(f"DetectionDataset '{self.name}': no images")
        self._ids = {c.id: i for i, c in enumerate(self.categories)}

    def __len__(self) -> int:
        return len(self.records)

    @property
    def category_names(self) -> dict[int, str]:
        return {c.id: c.name for c in self.categories}

    def __getitem__(self, i: int) -> dict[str, Any]:
        r = self.records[i]
        image = _read_image(r.file)
        if image.shape[:2] != r.size:
            raise ValueError(
                f"{r.file}: image is {image.shape[1]}x{image.shape[0]}, annotations say {r.size[1]}x{r.size[0]}"
            )
        masks = None
        if r.mask_file is not None:
            m = cv2.imdecode(np.fromfile(str(r.mask_file), np.uint8), cv2.IMREAD_UNCHANGED)
            if m is None or m.shape[:2] != r.size:
                got = "unreadable" if m is None else f"{m.shape[1]}x{m.shape[0]}"
                raise ValueError(f"mask {r.mask_file}: {got}, image {r.file} is {r.size[1]}x{r.size[0]}")
            masks = (m if m.ndim == 2 else m[..., 0])[None].astype(np.uint8)
        elif r.segments is not None:
            masks = np.zeros((1, *r.size), np.uint8)
            for k, seg in enumerate(r.segments):
                if seg is not None:
                    try:
                        masks[0][segmentation_to_mask(seg, r.size) > 0] = k + 1
                    except ValueError as e:
                        raise ValueError(f"{r.file}: segmentation of box {k}: {e}") from e
        return {
            "image": image,
            "boxes": r.boxes.copy(),
            "box_labels": r.labels.copy(),
            "masks": masks,
            "image_id": r.image_id,
            "file": str(r.file),
        }

    def to_batch(
        self,
        indices: Sequence[int] | np.ndarray | None = None,
        *,
        size: tuple[int, int] | None = None,
        uint8: bool = False,
    ) -> Batch:
        """Rows ``indices`` as one Batch, each image resized to ``size`` (H, W) with its boxes and masks.

        Args:
            indices: rows (all when None). size: common (H, W); None requires one shared size.
            uint8: keep uint8 images (float32 in [0, 1] otherwise).

        Shape:
            image ``[B, 3, H, W]``; boxes ``[B, N_max, 4]`` with labels = category ids;
            masks ``[B, 1, H, W]`` uint8 instance ids (when any record has masks); meta
            ``file`` and ``image_id`` lists.
        """
        idx = list(range(len(self))) if indices is None else [int(i) for i in indices]
        samples = [self[i] for i in idx]
        return samples_to_batch(samples, size=size, uint8=uint8)


def samples_to_batch(
    samples: list[dict[str, Any]], *, size: tuple[int, int] | None = None, uint8: bool = False
) -> Batch:
    """Sample dicts (as ``DetectionDataset[i]`` gives) to one Batch, resized to ``size`` (H, W)."""
    if not samples:
        raise ValueError("samples_to_batch: no samples")
    if size is None:
        sizes = {s["image"].shape[:2] for s in samples}
        if len(sizes) > 1:
            raise ValueError(f"samples_to_batch: images have sizes {sorted(sizes)}; pass size=(H, W)")
        size = next(iter(sizes))
    h, w = int(size[0]), int(size[1])
    any_mask = any(s.get("masks") is not None for s in samples)
    images, boxes, labels, masks = [], [], [], []
    for s in samples:
        img = s["image"]
        ih, iw = img.shape[:2]
        if (ih, iw) != (h, w):
            img = cv2.resize(
                img, (w, h), interpolation=cv2.INTER_AREA if ih * iw > h * w else cv2.INTER_LINEAR
            )
        images.append(img)
        b = np.asarray(s["boxes"], np.float32).reshape(-1, 4) * np.array(
            [w / iw, h / ih, w / iw, h / ih], np.float32
        )
        boxes.append(torch.from_numpy(b))
        labels.append(torch.from_numpy(np.asarray(s["box_labels"], np.int64).reshape(-1)))
        m = s.get("masks")
        if any_mask:
            if m is None:
                m = np.zeros((1, ih, iw), np.uint8)
            if (ih, iw) != (h, w):
                m = cv2.resize(m[0], (w, h), interpolation=cv2.INTER_NEAREST)[None]
            masks.append(torch.from_numpy(np.ascontiguousarray(m)))
    image = stack_chw(images)
    if not uint8:
        image = image.to(torch.float32) / 255.0
    return Batch(
        image=image,
        boxes=Boxes.from_list(boxes, labels),
        masks=torch.stack(masks) if any_mask else None,
        meta={
            "file": [s.get("file", "") for s in samples],
            "image_id": [int(s.get("image_id", -1)) for s in samples],
        },
    )


def compact_instances(batch: Batch) -> Batch:
    """Drop invalid box slots and renumber the instance-id masks to match (slot ``k`` <-> id ``k + 1``).

    After a warp or a mix, dropped boxes keep their slot (so labels stay aligned) and their
    pixels keep their id. Shards list only valid boxes, so this packs the valid ones to the
    front, in order, and zeroes the mask pixels of dropped ones. Masks with more than one
    plane (class planes) are left as they are.

    Example:
        >>> from augmentgen.core.batch import Boxes
        >>> b = Batch(torch.zeros(1, 3, 4, 4), boxes=Boxes(torch.zeros(1, 2, 4), torch.tensor([[False, True]]),
        ...           torch.tensor([[3, 5]])))
        >>> compact_instances(b).boxes.labels.tolist()
        [[5]]
    """
    if batch.boxes is None:
        return batch
    bx = batch.boxes
    n_keep = int(bx.valid.sum(dim=1).max()) if bx.valid.numel() else 0
    order = torch.argsort((~bx.valid).to(torch.int8), dim=1, stable=True)  # valid slots first, in order
    take = order[:, :n_keep]
    xyxy = torch.gather(bx.xyxy, 1, take[..., None].expand(-1, -1, 4))
    valid = torch.gather(bx.valid, 1, take)
    labels = torch.where(valid, torch.gather(bx.labels, 1, take), torch.full_like(take, -1))
    masks = batch.masks
    if masks is not None and masks.shape[1] == 1 and bx.xyxy.shape[1] > 0:
        masks = renumber_instance_ids(masks[:, 0], bx.valid)[:, None]
    return batch.replace(boxes=Boxes(xyxy, valid, labels), masks=masks)
