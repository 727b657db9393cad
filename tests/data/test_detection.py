"""Detection readers: COCO (polygons, RLE), YOLO (boxes, polygons), image + mask folders, batching, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from augmentgen.core.batch import Batch, Boxes
from augmentgen.data.detection import (
    compact_instances,
    load_coco,
    load_detection,
    load_mask_folder,
    load_yolo,
    samples_to_batch,
)
from augmentgen.data.detection_masks import mask_to_rle, polygons_to_mask, rle_to_mask

FIXTURE = Path(__file__).resolve().parents[2] / "examples" / "data" / "driving-coco"
ANN = FIXTURE / "annotations.json"


def _write_img(path: Path, h: int, w: int, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))


def _coco(tmp_path: Path, **edit: object) -> Path:
    data = {
        "images": [{"id": 7, "file_name": "a.png", "width": 40, "height": 30}],
        "annotations": [
            {
                "id": 1,
                "image_id": 7,
                "category_id": 3,
                "bbox": [4, 5, 10, 8],
                "iscrowd": 0,
                "segmentation": [[4, 5, 14, 5, 14, 13, 4, 13]],
            },
            {
                "id": 2,
                "image_id": 7,
                "category_id": 9,
                "bbox": [20, 2, 6, 6],
                "iscrowd": 0,
                "segmentation": mask_to_rle(np.pad(np.ones((6, 6), np.uint8), ((2, 22), (20, 14)))),
            },
        ],
        "categories": [{"id": 3, "name": "car"}, {"id": 9, "name": "person"}],
    }
    data.update(edit)  # type: ignore[arg-type]
    _write_img(tmp_path / "a.png", 30, 40)
    p = tmp_path / "ann.json"
    p.write_text(json.dumps(data))
    return p


def test_fixture_loads_with_boxes_inside_and_masks_inside_boxes() -> None:
    ds = load_coco(ANN)
    assert len(ds) == 5
    assert ds.category_names == {1: "person", 4: "motorcycle", 17: "cat", 47: "cup", 80: "rocket"}
    coco = json.loads(ANN.read_text())
    assert sum(len(r.boxes) for r in ds.records) == len(coco["annotations"])
    for i in range(len(ds)):
        s = ds[i]
        h, w = s["image"].shape[:2]
        assert s["image"].dtype == np.uint8 and s["masks"].shape == (1, h, w)
        for k, (x0, y0, x1, y1) in enumerate(s["boxes"]):
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            ys, xs = np.nonzero(s["masks"][0] == k + 1)
            assert len(xs) > 50, "every fixture object has a visible mask"
            # OpenCV's polygon fill includes the outline's pixels: at most one pixel past the box
            assert (
                xs.min() >= x0 - 1
                and xs.max() + 1 <= x1 + 1
                and ys.min() >= y0 - 1
                and ys.max() + 1 <= y1 + 1
            )


def test_coco_polygon_and_rle_annotations(tmp_path: Path) -> None:
    ds = load_coco(_coco(tmp_path))
    s = ds[0]
    np.testing.assert_allclose(s["boxes"], [[4, 5, 14, 13], [20, 2, 26, 8]])
    assert s["box_labels"].tolist() == [3, 9]
    m = s["masks"][0]
    assert set(np.unique(m).tolist()) == {0, 1, 2}
    ys, xs = np.nonzero(m == 2)  # the RLE mask is exact
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (20, 25, 2, 7)
    assert s["image_id"] == 7


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            {"annotations": [{"id": 5, "image_id": 7, "category_id": 3, "bbox": [30, 5, 20, 8]}]},
            "outside the 40x30 image",
        ),
        (
            {"annotations": [{"id": 5, "image_id": 7, "category_id": 4, "bbox": [3, 5, 2, 8]}]},
            "unknown category_id 4",
        ),
        (
            {"annotations": [{"id": 5, "image_id": 8, "category_id": 3, "bbox": [3, 5, 2, 8]}]},
            "image_id 8 is not in",
        ),
        (
            {"annotations": [{"id": 5, "image_id": 7, "category_id": 3, "bbox": [3, 5, 0, 8]}]},
            "empty or non-finite",
        ),
        ({"images": [{"id": 7, "file_name": "gone.png", "width": 40, "height": 30}]}, "file not found"),
    ],
)
def test_coco_errors_name_the_annotation_or_file(tmp_path: Path, edit: dict, message: str) -> None:
    p = _coco(tmp_path, **edit)
    with pytest.raises(ValueError, match=message) as info:
        load_coco(p)
    assert str(p) in str(info.value)


def test_coco_clips_boxes_within_tolerance(tmp_path: Path) -> None:
    ann = [{"id": 5, "image_id": 7, "category_id": 3, "bbox": [-0.5, 2, 40.8, 8]}]
    ds = load_coco(_coco(tmp_path, annotations=ann))
    np.testing.assert_allclose(ds.records[0].boxes, [[0, 2, 40, 10]])
    assert ds[0]["masks"] is None  # no segmentation anywhere


def test_coco_images_subfolder_and_wrong_size(tmp_path: Path) -> None:
    p = _coco(tmp_path)
    (tmp_path / "images").mkdir()
    shutil.move(tmp_path / "a.png", tmp_path / "images" / "a.png")
    ds = load_coco(p)
    assert ds.records[0].file == tmp_path / "images" / "a.png"
    _write_img(tmp_path / "images" / "a.png", 31, 40)
    with pytest.raises(ValueError, match="annotations say 40x30"):
        ds[0]


def _yolo(tmp_path: Path, rows: str, names: str | None = "names: [car, person]\n") -> Path:
    _write_img(tmp_path / "images" / "x.png", 20, 50)
    _write_img(tmp_path / "images" / "y.png", 20, 50)  # no label file: no boxes
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "x.txt").write_text(rows)
    if names is not None:
        (tmp_path / "data.yaml").write_text(names)
    return tmp_path


def test_yolo_boxes_and_polygons(tmp_path: Path) -> None:
    ds = load_yolo(_yolo(tmp_path, "1 0.5 0.5 0.2 0.5\n\n0 0.1 0.1 0.3 0.1 0.3 0.6 0.1 0.6\n"))
    assert ds.category_names == {0: "car", 1: "person"}
    x = ds[0]
    np.testing.assert_allclose(x["boxes"], [[20, 5, 30, 15], [5, 2, 15, 12]], atol=1e-4)
    assert x["box_labels"].tolist() == [1, 0]
    ys, xs = np.nonzero(x["masks"][0] == 2)
    assert xs.min() >= 4 and xs.max() <= 15 and ys.min() >= 1 and ys.max() <= 12
    assert not (x["masks"][0] == 1).any()  # a plain box row has no mask
    y = ds[1]
    assert y["boxes"].shape == (0, 4) and y["masks"] is None


@pytest.mark.parametrize(
    ("rows", "names", "message"),
    [
        ("2 0.5 0.5 0.2 0.2\n", "names: [car, person]\n", r"x.txt:1: unknown class 2"),
        ("0 0.5 0.5 0.2\n", "names: [car, person]\n", r"x.txt:1: expected 'cls cx cy w h'"),
        ("0 a b c d\n", "names: [car, person]\n", r"x.txt:1: not numbers"),
        ("0 0.95 0.5 0.2 0.2\n", "names: [car, person]\n", "outside the 50x20 image"),
        ("0 0.5 0.5 0.2 0.2\n", None, "no data.yaml 'names'"),
    ],
)
def test_yolo_errors(tmp_path: Path, rows: str, names: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_yolo(_yolo(tmp_path, rows, names))


def test_yolo_names_from_classes_txt_and_dict(tmp_path: Path) -> None:
    root = _yolo(tmp_path, "1 0.5 0.5 0.2 0.2\n", names="names: {0: car, 1: truck}\n")
    assert load_yolo(root).category_names == {0: "car", 1: "truck"}
    (root / "data.yaml").unlink()
    (root / "classes.txt").write_text("a\nb\n")
    assert load_detection("yolo", root).category_names == {0: "a", 1: "b"}


def test_mask_folder(tmp_path: Path) -> None:
    _write_img(tmp_path / "img" / "p.jpg", 12, 16)
    m = np.zeros((12, 16), np.uint8)
    m[3:6, 4:9] = 2
    (tmp_path / "mask").mkdir()
    cv2.imwrite(str(tmp_path / "mask" / "p.png"), m)
    ds = load_mask_folder(tmp_path / "img", tmp_path / "mask", classes=["bg", "road", "car"])
    s = ds[0]
    np.testing.assert_array_equal(s["masks"][0], m)
    assert s["boxes"].shape == (0, 4)
    cv2.imwrite(str(tmp_path / "mask" / "p.png"), m[:10])
    with pytest.raises(ValueError, match="is not the size of image"):
        load_mask_folder(tmp_path / "img", tmp_path / "mask")
    (tmp_path / "mask" / "p.png").unlink()
    with pytest.raises(ValueError, match="no mask for"):
        load_mask_folder(tmp_path / "img", tmp_path / "mask")


def test_to_batch_resizes_boxes_and_masks_together() -> None:
    ds = load_coco(ANN)
    b = ds.to_batch(size=(96, 160))
    assert b.image.shape == (5, 3, 96, 160) and b.image.dtype == torch.float32
    assert b.masks is not None and b.masks.shape == (5, 1, 96, 160)
    assert b.boxes is not None and b.boxes.xyxy.shape == (5, 2, 4)
    assert b.boxes.valid.sum().item() == 6
    # 320 px wide -> 160: x halves; each image's height scales by its own factor
    r0 = ds.records[0]
    np.testing.assert_allclose(
        b.boxes.xyxy[0, 0].numpy(), r0.boxes[0] * [0.5, 96 / r0.size[0], 0.5, 96 / r0.size[0]], rtol=1e-5
    )
    assert b.meta["image_id"] == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="pass size"):
        samples_to_batch([ds[0], ds[1]])


def test_load_detection_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="'coco', 'yolo' or 'masks'"):
        load_detection("voc", ANN)


@given(
    arrays(np.uint8, st.tuples(st.integers(1, 20), st.integers(1, 20)), elements=st.integers(0, 1)),
    st.booleans(),
)
def test_rle_round_trip(mask: np.ndarray, compressed: bool) -> None:
    np.testing.assert_array_equal(rle_to_mask(mask_to_rle(mask, compressed=compressed)), mask)


def test_rle_golden_column_major() -> None:
    # COCO RLE runs down columns first, starting with zeros
    assert rle_to_mask({"size": [2, 3], "counts": [1, 2, 3]}).tolist() == [[0, 1, 0], [1, 0, 0]]
    # runs [5000, 5000]; 5000 = 8 + 28 * 32 + 4 * 1024 -> 5-bit groups 8|0x20, 28|0x20, 4, each +48:
    # "X", "l", "4" (the second run is not delta-coded: deltas start at the third run)
    m = np.zeros((100, 100), np.uint8)
    m[:, 50:] = 1
    rle = mask_to_rle(m)
    assert rle["counts"] == "Xl4Xl4"
    np.testing.assert_array_equal(rle_to_mask(rle), m)
    with pytest.raises(ValueError, match="runs sum to"):
        rle_to_mask({"size": [2, 2], "counts": [1, 2]})


def test_polygon_mask_area() -> None:
    assert int(polygons_to_mask([[0, 0, 8, 0, 8, 8, 0, 8]], (8, 8)).sum()) == 64
    with pytest.raises(ValueError, match="even number"):
        polygons_to_mask([[0, 0, 8]], (8, 8))


def test_compact_instances_packs_valid_boxes_and_renumbers_masks() -> None:
    masks = torch.tensor([[[[1, 2, 3, 0]]], [[[0, 3, 3, 1]]]], dtype=torch.uint8)  # [2, 1, 1, 4]
    xyxy = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    valid = torch.tensor([[True, False, True], [False, False, True]])
    labels = torch.tensor([[10, 11, 12], [20, 21, 22]])
    b = Batch(torch.zeros(2, 3, 1, 4), boxes=Boxes(xyxy, valid, labels), masks=masks)
    out = compact_instances(b)
    assert out.boxes is not None and out.masks is not None
    assert out.boxes.labels.tolist() == [[10, 12], [22, -1]]
    assert out.boxes.valid.tolist() == [[True, True], [True, False]]
    torch.testing.assert_close(out.boxes.xyxy[0], xyxy[0, [0, 2]])
    torch.testing.assert_close(out.boxes.xyxy[1, 0], xyxy[1, 2])
    assert out.masks[:, 0, 0].tolist() == [[1, 0, 2, 0], [0, 1, 1, 0]]


def test_sample_dicts_go_through_a_pipeline_per_sample() -> None:
    """``ds[i]`` uses the pipeline's dict keys, so a DataLoader can augment it directly."""
    import augmentgen.ops  # noqa: F401
    from augmentgen.pipeline import Pipeline

    ds = load_coco(ANN)
    s = ds[1]  # astronaut: a person and a rocket
    pipe = Pipeline.from_dict([{"name": "horizontal_flip", "p": 1.0}, {"name": "fog"}])
    out = pipe(s, rng=np.random.default_rng(0))
    w = s["image"].shape[1]
    np.testing.assert_allclose(out["boxes"][:, [0, 2]], w - s["boxes"][:, [2, 0]], atol=1e-4)
    assert out["box_labels"].tolist() == [1, 80]
    np.testing.assert_array_equal(out["masks"], s["masks"][:, :, ::-1])
    assert out["image_id"] == s["image_id"]
