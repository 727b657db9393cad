"""Build the driving-coco fixture: scikit-image photos with hand-placed boxes and polygon masks, as COCO.

Run from the repository root (it is deterministic: same JPEG bytes and JSON every time):

    .venv/bin/python examples/data/driving-coco/make_fixture.py

Every image is resized to 320 px wide; the polygons below were placed by hand on those
320 px images (a 40 px grid drawn over each photo). Category ids are deliberately not
contiguous, as in COCO itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from augmentgen.data.photos import load_photo

WIDTH = 320
CATEGORIES = [
    {"id": 1, "name": "person", "supercategory": "person"},
    {"id": 4, "name": "motorcycle", "supercategory": "vehicle"},
    {"id": 17, "name": "cat", "supercategory": "animal"},
    {"id": 47, "name": "cup", "supercategory": "kitchen"},
    {"id": 80, "name": "rocket", "supercategory": "vehicle"},
]
# fmt: off
# photo -> [(category id, polygon [x0, y0, x1, y1, ...] in 320 px wide image coordinates)]
OBJECTS: dict[str, list[tuple[int, list[float]]]] = {
    "stereo_motorcycle": [
        (4, [40, 90, 60, 70, 120, 75, 200, 60, 240, 60, 250, 110, 290, 150, 295, 190, 260, 195, 230, 165,
             160, 160, 120, 170, 80, 170, 55, 150, 45, 120]),
    ],
    "astronaut": [
        (1, [15, 130, 70, 110, 95, 40, 130, 10, 185, 20, 190, 110, 215, 135, 230, 230, 175, 319, 15, 319]),
        (80, [250, 5, 262, 1, 272, 10, 275, 100, 290, 140, 270, 160, 235, 150, 245, 110]),
    ],
    "rocket": [
        (80, [155, 65, 160, 60, 166, 70, 168, 200, 152, 200]),
    ],
    "chelsea": [
        (17, [1, 1, 300, 1, 290, 60, 260, 130, 230, 180, 190, 211, 1, 211]),
    ],
    "coffee": [
        (47, [92, 15, 215, 15, 215, 70, 195, 105, 120, 110, 98, 80]),
    ],
}
# fmt: on


def main(out: Path = Path(__file__).resolve().parent) -> None:
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id, (photo, objects) in enumerate(OBJECTS.items(), start=1):
        img = load_photo(photo)
        h = round(img.shape[0] * WIDTH / img.shape[1])
        img = cv2.resize(img, (WIDTH, h), interpolation=cv2.INTER_AREA)
        name = f"{photo}.jpg"
        ok, data = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise RuntimeError(f"cannot encode {name}")
        (out / "images" / name).write_bytes(data.tobytes())
        images.append({"id": image_id, "file_name": name, "width": WIDTH, "height": h})
        for cat, poly in objects:
            pts = np.asarray(poly, np.float64).reshape(-1, 2)
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0)
            area = 0.5 * abs(
                float(np.dot(pts[:, 0], np.roll(pts[:, 1], 1)) - np.dot(pts[:, 1], np.roll(pts[:, 0], 1)))
            )
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    "area": area,
                    "segmentation": [[float(v) for v in poly]],
                    "iscrowd": 0,
                }
            )
    coco = {
        "info": {"description": "augmentgen driving-coco fixture: scikit-image photos, hand-placed polygons"},
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    (out / "annotations.json").write_text(json.dumps(coco, indent=1) + "\n")


if __name__ == "__main__":
    main()
