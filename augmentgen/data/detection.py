"""Detection and segmentation sets from disk: COCO JSON, YOLO txt, image + mask folders.

Readers check the annotations when they load (not when a sample is first read): a box
outside its image, an unknown category or a missing image file is a ``ValueError`` naming
the file and the annotation. Images are decoded lazily, one per ``ds[i]``. The data set
type, batching and ``compact_instances`` live in ``data.detection_dataset`` and are
re-exported here; masks are one instance-id plane per image (``k + 1`` = box slot ``k``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from augmentgen.data.detection_dataset import (
    MAX_INSTANCES,
    Category,
    DetectionDataset,
    DetectionRecord,
    compact_instances,
    samples_to_batch,
)
from augmentgen.data.sources import IMAGE_SUFFIXES

__all__ = [
    "MAX_INSTANCES",
    "Category",
    "DetectionDataset",
    "DetectionRecord",
    "compact_instances",
    "load_coco",
    "load_detection",
    "load_mask_folder",
    "load_yolo",
    "samples_to_batch",
]

logger = logging.getLogger(__name__)


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

    Crowd annotations (``iscrowd: 1``) are skipped, as detectors' COCO loaders do.

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
