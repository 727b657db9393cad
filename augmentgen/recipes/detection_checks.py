"""Checks of detection shards: box validity, and per-condition sample grids with the boxes drawn.

Example:
    >>> box_validity("runs/driving-weather/shards", {1, 4})["invalid"]  # doctest: +SKIP
    0
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from augmentgen.shards.reader import decode_sample, iter_raw_samples, shard_paths

_COLORS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180)]


def _samples(shards: str | Path) -> Any:
    for p in shard_paths(shards):
        for raw in iter_raw_samples(p):
            yield decode_sample(raw)


def box_validity(shards: str | Path, categories: set[int] | None = None) -> dict[str, Any]:
    """Count boxes that are non-finite, empty, outside the canvas, of an unknown category, or unmatched by mask ids.

    Returns:
        ``{"samples", "boxes", "invalid", "empty_samples", "per_category", "faults": [first 50]}``.
    """
    samples = boxes = invalid = empty = 0
    per_cat: Counter[int] = Counter()
    faults: list[str] = []

    def fault(msg: str) -> None:
        if len(faults) < 50:
            faults.append(msg)

    for s in _samples(shards):
        samples += 1
        h, w = s["image"].shape[:2]
        rows = s.get("boxes") or []
        empty += not rows
        for k, row in enumerate(rows):
            boxes += 1
            x0, y0, x1, y1, cat = row
            per_cat[int(cat)] += 1
            bad = None
            if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
                bad = "non-finite"
            elif x1 <= x0 or y1 <= y0:
                bad = "empty"
            elif x0 < 0 or y0 < 0 or x1 > w or y1 > h:
                bad = f"outside the {w}x{h} canvas"
            elif categories and int(cat) not in categories:
                bad = f"unknown category {cat}"
            if bad is not None:
                invalid += 1
                fault(f"{s['__key__']} box {k} {row[:4]}: {bad}")
        mask = s.get("mask")
        if mask is not None and int(mask.max(initial=0)) > len(rows):
            invalid += 1
            fault(f"{s['__key__']}: mask id {int(mask.max())} but {len(rows)} boxes")
    return {
        "samples": samples,
        "boxes": boxes,
        "invalid": invalid,
        "empty_samples": empty,
        "per_category": {str(k): v for k, v in sorted(per_cat.items())},
        "faults": faults,
    }


def draw_boxes(image: np.ndarray, rows: list[list[float]], names: dict[int, str]) -> np.ndarray:
    """A copy of an HWC uint8 RGB image with ``[x0, y0, x1, y1, id]`` boxes and their names drawn."""
    img = np.ascontiguousarray(image if image.shape[2] == 3 else np.repeat(image, 3, axis=2)).copy()
    for x0, y0, x1, y1, cat in rows:
        color = _COLORS[int(cat) % len(_COLORS)]
        p0, p1 = (int(round(x0)), int(round(y0))), (int(round(x1)) - 1, int(round(y1)) - 1)
        cv2.rectangle(img, p0, p1, color, 1)
        cv2.putText(
            img,
            names.get(int(cat), str(cat)),
            (p0[0] + 1, max(p0[1] + 9, 9)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.3,
            color,
            1,
            cv2.LINE_AA,
        )
    return img


def _conditions(meta: dict[str, Any], names: list[str]) -> set[str]:
    """Conditions a sample went through: op names in its provenance ``ops`` (``path:name`` keys)."""
    ops = meta.get("ops") or {}
    got = {key.rsplit(":", 1)[-1] for key in ops}
    return {n for n in names if n in got}


def condition_grids(
    shards: str | Path, out: Path, conditions: list[str], names: dict[int, str], per_grid: int
) -> dict[str, dict[str, Any]]:
    """One PNG per condition (and ``clear``: none of them) of up to ``per_grid`` samples with boxes drawn.

    Returns ``{condition: {"file": path, "samples": n_in_grid, "total": n_with_condition}}``.
    """
    out.mkdir(parents=True, exist_ok=True)
    tiles: dict[str, list[np.ndarray]] = {}
    totals: Counter[str] = Counter()
    for s in _samples(shards):
        conds = _conditions(s.get("meta") or {}, conditions) or {"clear"}
        for c in conds:
            totals[c] += 1
            if len(tiles.setdefault(c, [])) < per_grid:
                tiles[c].append(draw_boxes(s["image"], s.get("boxes") or [], names))
    result: dict[str, dict[str, Any]] = {}
    for c, imgs in sorted(tiles.items()):
        cols = min(4, len(imgs))
        h, w = imgs[0].shape[:2]
        grid = np.zeros((math.ceil(len(imgs) / cols) * (h + 2), cols * (w + 2), 3), np.uint8)
        for i, im in enumerate(imgs):
            r, k = divmod(i, cols)
            grid[r * (h + 2) : r * (h + 2) + h, k * (w + 2) : k * (w + 2) + w] = im
        path = out / f"grid-{c}.png"
        cv2.imwrite(str(path), grid[:, :, ::-1])
        result[c] = {"file": str(path), "samples": len(imgs), "total": totals[c]}
    return result
