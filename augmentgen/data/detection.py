"""Detection and segmentation sets from disk: COCO JSON, YOLO txt, image + mask folders.

Readers check the annotations when they load (not when a sample is first read): a box
outside its image, an unknown category or a missing image file is a ``ValueError`` naming
the file and the annotation. Images are decoded lazily, one per ``ds[i]``.

Targets follow ``core.batch``: boxes are xyxy continuous pixels, box labels are the
data set's category ids (COCO ``category_id``; the class index for YOLO). Instance masks
travel as ONE plane per image, an instance-id map: pixel value ``k + 1`` belongs to box
slot ``k`` (0 is background), so a warp moves them with the nearest-neighbour rule and a
shard stores them as ``mask.png``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from augmentgen.core.batch import Batch, Boxes
from augmentgen.data.detection_masks import segmentation_to_mask
from augmentgen.data.sources import IMAGE_SUFFIXES

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


def _image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the image header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return int(im.height), int(im.width)
    except (OSError, UnidentifiedImageError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from e


def _check_boxes(xyxy: np.ndarray, size: tuple[int, int], tolerance: float, where: list[str]) -> np.ndarray:
    """Boxes within ``tolerance`` px of the canvas are clipped; others (or empty ones) raise, naming ``where[k]``."""
    h, w = size
    for k, (x0, y0, x1, y1) in enumerate(xyxy.tolist()):
        if not np.isfinite([x0, y0, x1, y1]).all() or x1 <= x0 or y1 <= y0:
            raise ValueError(f"{where[k]}: empty or non-finite box xyxy={[x0, y0, x1, y1]}")
        if x0 < -tolerance or y0 < -tolerance or x1 > w + tolerance or y1 > h + tolerance:
            raise ValueError(
                f"{where[k]}: box xyxy={[round(v, 2) for v in (x0, y0, x1, y1)]} lies outside the "
                f"{w}x{h} image (tolerance {tolerance} px)"
            )
    out: np.ndarray = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)
    return out


@dataclass
class DetectionDataset(Dataset[dict[str, Any]]):
    """A detection (or segmentation) set: records plus categories; ``ds[i]`` is a sample dict.

    Args:
        records: one per image. categories: the known categories (ids need not be contiguous).
        name: where it came from.

    Shape:
        ``ds[i]`` is ``{"image": [H, W, 3] uint8, "boxes": [N, 4] float32, "labels": [N] int64,
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
            "labels": r.labels.copy(),
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
        labels.append(torch.from_numpy(np.asarray(s["labels"], np.int64).reshape(-1)))
        m = s.get("masks")
        if any_mask:
            if m is None:
                m = np.zeros((1, ih, iw), np.uint8)
            if (ih, iw) != (h, w):
                m = cv2.resize(m[0], (w, h), interpolation=cv2.INTER_NEAREST)[None]
            masks.append(torch.from_numpy(np.ascontiguousarray(m)))
    image = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
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


# ---- COCO -----------------------------------------------------------------------------------


def load_coco(
    annotations: str | Path,
    images: str | Path | None = None,
    *,
    tolerance: float = 1.0,
    check_files: bool = True,
) -> DetectionDataset:
    """A COCO detection / instance segmentation set.

    Args:
        annotations: the JSON file (``images``, ``annotations``, ``categories``).
        images: folder the ``file_name``s are relative to (default: the JSON's folder, or its
            ``images/`` subfolder when the files are there).
        tolerance: boxes up to this many pixels outside the image are clipped, further is an error.
        check_files: fail at load time on a missing image file.

    Example:
        >>> ds = load_coco("examples/data/driving-coco/annotations.json")  # doctest: +SKIP
    """
    path = Path(annotations)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"load_coco: cannot read {path}: {e}") from e
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"load_coco: {path} has no '{key}' list")
    cats = [Category(int(c["id"]), str(c.get("name", c["id"]))) for c in data["categories"]]
    known = {c.id for c in cats}
    root = Path(images) if images is not None else path.parent
    if images is None and data["images"] and not (root / data["images"][0]["file_name"]).exists():
        if (root / "images" / data["images"][0]["file_name"]).exists():
            root = root / "images"
    per_image: dict[int, list[dict[str, Any]]] = {int(im["id"]): [] for im in data["images"]}
    for a in data["annotations"]:
        where = f"{path}: annotation {a.get('id', '?')}"
        if int(a.get("image_id", -1)) not in per_image:
            raise ValueError(f"{where}: image_id {a.get('image_id')!r} is not in 'images'")
        if int(a.get("category_id", -1)) not in known:
            raise ValueError(f"{where}: unknown category_id {a.get('category_id')!r}; known: {sorted(known)}")
        per_image[int(a["image_id"])].append(a)
    records = []
    for im in data["images"]:
        file = root / str(im["file_name"])
        if check_files and not file.is_file():
            raise ValueError(f"{path}: image {im['id']} file not found: {file}")
        size = (int(im["height"]), int(im["width"]))
        anns = [a for a in per_image[int(im["id"])] if not a.get("iscrowd", 0)]
        xywh = np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        wheres = [f"{path}: annotation {a.get('id', '?')} ({im['file_name']})" for a in anns]
        segs = [a.get("segmentation") or None for a in anns]
        records.append(
            DetectionRecord(
                file=file,
                size=size,
                image_id=int(im["id"]),
                boxes=_check_boxes(xyxy, size, tolerance, wheres),
                labels=np.array([int(a["category_id"]) for a in anns], np.int64),
                segments=segs if any(s is not None for s in segs) else None,
            )
        )
        if len(anns) > MAX_INSTANCES:
            raise ValueError(
                f"{path}: image {im['file_name']} has {len(anns)} boxes, at most {MAX_INSTANCES}"
            )
    return DetectionDataset(records, cats, name=f"coco:{path.stem}")


# ---- YOLO -----------------------------------------------------------------------------------


def _yolo_names(root: Path, names: Sequence[str] | None) -> list[str]:
    if names is not None:
        return list(names)
    for cand in ("data.yaml", "dataset.yaml"):
        if (root / cand).is_file():
            import yaml

            got = (yaml.safe_load((root / cand).read_text()) or {}).get("names")
            if isinstance(got, dict):
                return [str(got[k]) for k in sorted(got, key=int)]
            if isinstance(got, list):
                return [str(n) for n in got]
    if (root / "classes.txt").is_file():
        return [ln.strip() for ln in (root / "classes.txt").read_text().splitlines() if ln.strip()]
    raise ValueError(f"load_yolo: {root} has no data.yaml 'names' nor classes.txt; pass names=[...]")


def load_yolo(
    root: str | Path,
    *,
    images: str = "images",
    labels: str = "labels",
    names: Sequence[str] | None = None,
    tolerance: float = 1.0,
) -> DetectionDataset:
    """A YOLO set: ``root/images/x.jpg`` with ``root/labels/x.txt`` rows ``cls cx cy w h`` (fractions of W, H).

    Rows with more than five numbers are YOLO segmentation polygons (``cls x0 y0 x1 y1 ...``):
    the box is the polygon's bounding box and the polygon becomes the instance mask. An image
    without a label file has no boxes. Class names come from ``data.yaml`` (``names``),
    ``classes.txt`` or ``names``.

    Example:
        >>> ds = load_yolo("out/yolo")  # doctest: +SKIP
    """
    base = Path(root)
    img_dir, lab_dir = base / images, base / labels
    if not img_dir.is_dir():
        raise ValueError(f"load_yolo: image folder not found: {img_dir}")
    class_names = _yolo_names(base, names)
    files = sorted(f for f in img_dir.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"load_yolo: no images under {img_dir}")
    records = []
    for i, f in enumerate(files):
        size = _image_size(f)
        h, w = size
        txt = lab_dir / f.relative_to(img_dir).with_suffix(".txt")
        boxes: list[list[float]] = []
        labs: list[int] = []
        segs: list[Any] = []
        wheres: list[str] = []
        lines = txt.read_text().splitlines() if txt.is_file() else []
        for ln, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{txt}:{ln}"
            try:
                vals = [float(v) for v in line.split()]
            except ValueError:
                raise ValueError(f"{where}: not numbers: {line!r}") from None
            cls = vals[0]
            if cls != int(cls) or not 0 <= cls < len(class_names):
                raise ValueError(f"{where}: unknown class {vals[0]:g}; there are {len(class_names)} names")
            if len(vals) == 5:
                cx, cy, bw, bh = vals[1:]
                boxes.append([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
                segs.append(None)
            elif len(vals) >= 7 and len(vals) % 2 == 1:
                pts = np.asarray(vals[1:], np.float64).reshape(-1, 2) * [w, h]
                boxes.append([*pts.min(axis=0), *pts.max(axis=0)])
                segs.append([pts.reshape(-1).tolist()])
            else:
                raise ValueError(
                    f"{where}: expected 'cls cx cy w h' or 'cls x y x y x y ...', got {len(vals)} numbers"
                )
            labs.append(int(cls))
            wheres.append(where)
        xyxy = _check_boxes(np.asarray(boxes, np.float64).reshape(-1, 4), size, tolerance, wheres)
        records.append(
            DetectionRecord(
                f,
                size,
                i,
                xyxy,
                np.asarray(labs, np.int64),
                segs if any(s is not None for s in segs) else None,
            )
        )
    cats = [Category(k, n) for k, n in enumerate(class_names)]
    return DetectionDataset(records, cats, name=f"yolo:{base.name}")


# ---- image + mask folders -------------------------------------------------------------------


def load_mask_folder(
    images: str | Path, masks: str | Path, *, classes: Sequence[str] | None = None
) -> DetectionDataset:
    """Segmentation pairs: ``images/x.jpg`` with ``masks/x.png`` (one class id per pixel, same size).

    Samples have no boxes; ``masks`` is the ``[1, H, W]`` class-id map. A missing or
    differently sized mask is an error naming both files.

    Example:
        >>> ds = load_mask_folder("data/img", "data/mask")  # doctest: +SKIP
    """
    img_dir, mask_dir = Path(images), Path(masks)
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            raise ValueError(f"load_mask_folder: folder not found: {d}")
    files = sorted(f for f in img_dir.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"load_mask_folder: no images under {img_dir}")
    records = []
    for i, f in enumerate(files):
        rel = f.relative_to(img_dir)
        cands = [mask_dir / rel.with_suffix(s) for s in (".png", ".bmp", ".tif", ".tiff")]
        mf = next((c for c in cands if c.is_file()), None)
        if mf is None:
            raise ValueError(f"load_mask_folder: no mask for {f} (looked for {cands[0]})")
        size = _image_size(f)
        if _image_size(mf) != size:
            raise ValueError(
                f"load_mask_folder: mask {mf} is not the size of image {f} ({size[1]}x{size[0]})"
            )
        records.append(
            DetectionRecord(f, size, i, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), mask_file=mf)
        )
    names = list(classes) if classes is not None else []
    return DetectionDataset(
        records, [Category(k, n) for k, n in enumerate(names)], name=f"masks:{img_dir.name}"
    )


def load_detection(format: str, path: str | Path, **options: Any) -> DetectionDataset:
    """``coco`` (path = the JSON), ``yolo`` (path = the root) or ``masks`` (path = the image folder, ``masks=`` option)."""
    if format == "coco":
        return load_coco(path, **options)
    if format == "yolo":
        return load_yolo(path, **options)
    if format == "masks":
        return load_mask_folder(path, **options)
    raise ValueError(f"load_detection: format must be 'coco', 'yolo' or 'masks', got {format!r}")


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
        n = bx.xyxy.shape[1]
        lut = torch.zeros(masks.shape[0], n + 1, dtype=torch.int64, device=masks.device)
        new_id = torch.cumsum(bx.valid.to(torch.int64), dim=1) * bx.valid.to(torch.int64)  # [B, N]
        lut[:, 1:] = new_id
        ids = masks[:, 0].to(torch.int64).clamp(max=n)  # [B, H, W]
        mapped = torch.gather(lut, 1, ids.flatten(1)).reshape(ids.shape)
        masks = mapped.to(masks.dtype)[:, None]
    return batch.replace(boxes=Boxes(xyxy, valid, labels), masks=masks)
