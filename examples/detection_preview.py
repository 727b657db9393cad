"""Draw docs/img/detection-mix.jpg: the driving-coco fixture through geometry + weather, mosaic, copy-paste, mixup.

Each tile shows the instance masks (green) and the boxes with their category names, after
``compact_instances`` (dropped boxes and their pixels removed). Run from the repository root:

    .venv/bin/python examples/detection_preview.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

import augmentgen.ops  # noqa: F401  (fills the op registry)
from augmentgen.core.batch import Batch
from augmentgen.core.rng import torch_rng
from augmentgen.data.detection import compact_instances, load_coco
from augmentgen.pipeline import Pipeline
from augmentgen.recipes.detection_checks import draw_boxes

ROWS = {
    "geometry + weather": (
        {
            "box_policy": {"min_visibility": 0.3},
            "transforms": [
                {"name": "affine", "degrees": [-20, 20], "scale": [0.8, 1.3], "translate": [0.15, 0.1]},
                {"name": "perspective", "distortion_scale": 0.3},
                {"name": "rain", "p": 0.5},
                {"name": "night", "p": 0.3},
            ],
        },
        1,
    ),
    "mosaic": ({"transforms": [{"name": "mosaic", "p": 1.0, "min_visibility": 0.3}]}, 3),
    "copy-paste": ({"transforms": [{"name": "copy_paste", "p": 1.0, "paste_fraction": 1.0}]}, 5),
    "mixup": ({"transforms": [{"name": "mixup", "p": 1.0}]}, 7),
}


def tiles(batch: Batch, names: dict[int, str]) -> list[np.ndarray]:
    assert batch.boxes is not None and batch.masks is not None
    out = []
    for r in range(batch.batch_size):
        img = (batch.image[r].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        ids = batch.masks[r, 0].numpy()
        tint = img.copy()
        on = ids > 0
        tint[on] = (0.55 * img[on] + 0.45 * np.array([0, 255, 120])).astype(np.uint8)
        rows = [
            [*batch.boxes.xyxy[r, k].tolist(), int(batch.boxes.labels[r, k])]
            for k in range(batch.boxes.xyxy.shape[1])
            if batch.boxes.valid[r, k]
        ]
        out.append(draw_boxes(tint, rows, names))
    return out


def main(out: Path = Path("docs/img/detection-mix.jpg")) -> None:
    ds = load_coco("examples/data/driving-coco/annotations.json")
    batch = ds.to_batch(size=(192, 320))
    lines = []
    for spec, seed in ROWS.values():
        res = compact_instances(Pipeline.from_dict(spec)(batch, rng=torch_rng(seed)))
        lines.append(
            np.concatenate(
                [np.pad(t, ((2, 2), (2, 2), (0, 0))) for t in tiles(res, ds.category_names)[:4]], 1
            )
        )
    cv2.imwrite(str(out), np.concatenate(lines, 0)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 82])


if __name__ == "__main__":
    main()
