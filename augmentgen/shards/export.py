"""Shards back to the detection formats people train on: COCO JSON and YOLO txt.

A shard sample's ``boxes.json`` holds ``[x0, y0, x1, y1, category_id]`` rows in pixels
(valid boxes only); its ``mask.png``, when present, is an instance-id map whose value
``k + 1`` is row ``k`` (``data.detection.compact_instances`` writes it that way). Image
members are copied byte for byte (``npy`` images are written as PNG).

Category names come from ``categories`` (a ``{id: name}`` mapping or a JSON file holding a
COCO ``categories`` list or such a mapping), else from ``categories.json`` beside the
shards, else the categories a detection source recorded in the manifest, else ``class_<id>``.

Example:
    >>> export_coco("runs/driving/shards", "out/coco")  # doctest: +SKIP
    ExportResult(images=..., boxes=..., out=...)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from augmentgen.data.detection_masks import mask_to_rle
from augmentgen.shards.encoders import EncodeSpec, decode_image, encode_image
from augmentgen.shards.manifest import read_manifest
from augmentgen.shards.reader import IMAGE_EXTS, decode_sample, iter_raw_samples, shard_paths

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: image and box counts, and the output folder."""

    images: int
    boxes: int
    out: Path


def load_categories(categories: Mapping[int, str] | str | Path | None, shards: str | Path) -> dict[int, str]:
    """``{category id: name}`` from a mapping, a JSON file, or ``categories.json`` in the shard folder."""
    if isinstance(categories, Mapping):
        return {int(k): str(v) for k, v in categories.items()}
    path = Path(categories) if categories is not None else None
    if path is None:
        cand = Path(shards) / "categories.json"
        if not (Path(shards).is_dir() and cand.is_file()):
            return _manifest_categories(shards)
        path = cand
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"categories file {path}: cannot read: {e}") from e
    if isinstance(data, dict) and "categories" in data:
        data = data["categories"]
    if isinstance(data, list):
        return {int(c["id"]): str(c.get("name", c["id"])) for c in data}
    if isinstance(data, dict):
        return {int(k): str(v) for k, v in data.items()}
    raise ValueError(f"categories file {path}: expected a COCO 'categories' list or an {{id: name}} mapping")


def _manifest_categories(shards: str | Path) -> dict[int, str]:
    """The categories a detection source described in the shard folder's manifest (``{}`` if none)."""
    if not Path(shards).is_dir():
        return {}
    manifest = read_manifest(Path(shards))
    source = {} if manifest is None else (manifest.versions or {}).get("source") or {}
    cats = source.get("categories") if isinstance(source, dict) else None
    return {int(k): str(v) for k, v in cats.items()} if isinstance(cats, dict) else {}


def _samples(shards: str | Path) -> Iterator[tuple[dict[str, Any], str, bytes]]:
    """Decoded samples with their image member's extension and bytes, in shard order."""
    paths = shard_paths(shards)
    if not paths:
        raise ValueError(f"export: no shards found at {shards}")
    for p in paths:
        if not p.is_file():
            raise ValueError(f"export: shard not found: {p}")
        for raw in iter_raw_samples(p):
            sample = decode_sample(raw)
            ext = next(
                e for e in raw if e.rsplit(".", 1)[-1] in IMAGE_EXTS and not e.startswith(("mask", "masks"))
            )
            yield sample, ext, raw[ext]


def _write_image(out: Path, key: str, ext: str, data: bytes) -> str:
    suffix = ext.rsplit(".", 1)[-1]
    if suffix == "npy":
        data = encode_image(decode_image(data, "npy", key), EncodeSpec("png"))
        suffix = "png"
    name = f"{key.replace('/', '_')}.{suffix}"
    (out / name).write_bytes(data)
    return name


def _rows(sample: dict[str, Any]) -> list[list[float]]:
    rows = sample.get("boxes") or []
    for r in rows:
        if not (isinstance(r, list) and len(r) == 5):
            raise ValueError(
                f"export: sample {sample['__key__']}: boxes.json rows must be [x0, y0, x1, y1, id], got {r!r}"
            )
    return rows


def export_coco(
    shards: str | Path,
    out: str | Path,
    *,
    categories: Mapping[int, str] | str | Path | None = None,
    masks: bool = True,
) -> ExportResult:
    """Write ``out/images/*`` and ``out/annotations.json`` (COCO detection, RLE masks when the shards have them).

    Args:
        shards: a shard folder (its manifest's done shards), a glob, or tar paths.
        out: the output folder (created).
        categories: names for the category ids (see the module docstring).
        masks: add ``segmentation`` (compressed RLE) from ``mask.png`` instance ids.
    """
    root = Path(out)
    (root / "images").mkdir(parents=True, exist_ok=True)
    names = load_categories(categories, shards)
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    seen: set[int] = set()
    for sample, ext, data in _samples(shards):
        h, w = sample["image"].shape[:2]
        image_id = len(images) + 1
        images.append(
            {
                "id": image_id,
                "file_name": _write_image(root / "images", sample["__key__"], ext, data),
                "width": int(w),
                "height": int(h),
            }
        )
        ids = sample.get("mask")
        ids = ids[..., 0] if ids is not None and masks else None
        rows = _rows(sample)
        if ids is not None and int(ids.max(initial=0)) > len(rows):
            logger.warning(
                "%s: mask ids exceed its %d boxes; no segmentation exported", sample["__key__"], len(rows)
            )
            ids = None
        for k, (x0, y0, x1, y1, cat) in enumerate(rows):
            ann: dict[str, Any] = {
                "id": len(anns) + 1,
                "image_id": image_id,
                "category_id": int(cat),
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "area": float((x1 - x0) * (y1 - y0)),
                "iscrowd": 0,
            }
            if ids is not None:
                m = (ids == k + 1).astype(np.uint8)
                if m.any():
                    ann["segmentation"] = mask_to_rle(m)
                    ann["area"] = float(m.sum())
            anns.append(ann)
            seen.add(int(cat))
    cats = sorted(set(names) | seen)
    coco = {
        "info": {"description": f"exported by augmentgen from {shards}"},
        "images": images,
        "annotations": anns,
        "categories": [{"id": c, "name": names.get(c, f"class_{c}")} for c in cats],
    }
    (root / "annotations.json").write_text(json.dumps(coco) + "\n")
    return ExportResult(len(images), len(anns), root)


def export_yolo(
    shards: str | Path, out: str | Path, *, categories: Mapping[int, str] | str | Path | None = None
) -> ExportResult:
    """Write ``out/images/*``, ``out/labels/*.txt`` (``cls cx cy w h``, fractions) and ``out/data.yaml``.

    YOLO class indices are contiguous: category ids are sorted and numbered 0, 1, ...; when
    they already are ``0..C-1`` (a YOLO source) the indices are the ids.
    """
    root = Path(out)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    names = load_categories(categories, shards)
    per_image: list[tuple[str, int, int, list[list[float]]]] = []
    seen: set[int] = set()
    for sample, ext, data in _samples(shards):
        h, w = sample["image"].shape[:2]
        rows = _rows(sample)
        seen.update(int(r[4]) for r in rows)
        per_image.append((_write_image(root / "images", sample["__key__"], ext, data), h, w, rows))
    ids = sorted(set(names) | seen)
    index = {c: i for i, c in enumerate(ids)}
    n_boxes = 0
    for name, h, w, rows in per_image:
        lines = []
        for x0, y0, x1, y1, cat in rows:
            cx, cy, bw, bh = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h
            lines.append(f"{index[int(cat)]} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
        (root / "labels" / (Path(name).stem + ".txt")).write_text("".join(line + "\n" for line in lines))
        n_boxes += len(lines)
    import yaml

    data_yaml = {
        "path": str(root.resolve()),
        "train": "images",
        "val": "images",
        "names": {i: names.get(c, f"class_{c}") for c, i in index.items()},
    }
    (root / "data.yaml").write_text(yaml.safe_dump(data_yaml, sort_keys=False))
    return ExportResult(len(per_image), n_boxes, root)
