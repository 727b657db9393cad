"""Detection round trips: COCO / YOLO -> shards (through a detection source) -> COCO / YOLO, boxes and categories kept."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from augmentgen.data.detection import load_coco, load_yolo
from augmentgen.shards import recipe_from_dict, write_shards
from augmentgen.shards.export import export_coco, export_yolo, load_categories

FIXTURE = Path(__file__).resolve().parents[2] / "examples" / "data" / "driving-coco" / "annotations.json"


def _write(src: dict, out: Path, pipeline: dict | None = None, fmt: str = "png") -> Path:
    n = src.pop("n")
    recipe = recipe_from_dict(
        {
            "shards": {"count": 1, "size": n, "batch_size": 3, "format": fmt},
            "source": {"kind": "detection", "order": "sequential", **src},
            "pipeline": pipeline,
        }
    )
    write_shards(recipe, out)
    return out


def _boxes_by_file(ds) -> dict[str, tuple[np.ndarray, list[int]]]:  # type: ignore[no-untyped-def]
    return {r.file.stem: (r.boxes, r.labels.tolist()) for r in ds.records}


def test_coco_to_shards_to_coco_and_yolo_keeps_boxes_and_categories(tmp_path: Path) -> None:
    src = load_coco(FIXTURE)
    h, w = 160, 320  # fixture images are 320 wide; heights differ, so boxes scale per image
    shards = _write(
        {"format": "coco", "path": str(FIXTURE), "size": [h, w], "n": len(src)}, tmp_path / "shards"
    )
    res = export_coco(shards, tmp_path / "coco")
    assert (res.images, res.boxes) == (5, 6)
    back = load_coco(tmp_path / "coco" / "annotations.json")
    assert back.category_names == src.category_names  # names came from the manifest
    for rec_in, rec_out in zip(src.records, back.records, strict=True):  # order is sequential
        sy = h / rec_in.size[0]
        np.testing.assert_allclose(rec_out.boxes, rec_in.boxes * [1, sy, 1, sy], atol=1e-3)
        assert rec_out.labels.tolist() == rec_in.labels.tolist()
        assert rec_out.size == (h, w)
    # masks came along as RLE: each object's pixels sit inside its box, within 2 px: the
    # fixture's polygon fill includes the outline (up to 1 px past the polygon), and the
    # nearest-neighbour resize to 160 px high can add up to one more
    for i in range(len(back)):
        s = back[i]
        for k, (x0, y0, x1, y1) in enumerate(s["boxes"]):
            ys, xs = np.nonzero(s["masks"][0] == k + 1)
            assert len(xs) > 0 and xs.min() >= x0 - 2 and xs.max() + 1 <= x1 + 2
            assert ys.min() >= y0 - 2 and ys.max() + 1 <= y1 + 2
    # the same shards as YOLO: contiguous class indices in id order, names kept
    export_yolo(shards, tmp_path / "yolo")
    y = load_yolo(tmp_path / "yolo")
    assert y.category_names == dict(enumerate(["person", "motorcycle", "cat", "cup", "rocket"]))
    ids = sorted(src.category_names)
    for rec_c, rec_y in zip(back.records, y.records, strict=True):
        np.testing.assert_allclose(rec_y.boxes, rec_c.boxes, atol=0.01)  # 6 decimals of W, H
        assert [ids[c] for c in rec_y.labels.tolist()] == rec_c.labels.tolist()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.integers(0, 2),
                st.floats(0.05, 0.95),
                st.floats(0.05, 0.95),
                st.floats(0.02, 0.5),
                st.floats(0.02, 0.5),
            ),
            max_size=4,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_yolo_to_shards_to_yolo_round_trip(tmp_path_factory: pytest.TempPathFactory, rows: list) -> None:
    root = tmp_path_factory.mktemp("yolo")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    (root / "data.yaml").write_text("names: [car, person, bike]\n")
    h, w = 30, 40
    for i, objs in enumerate(rows):
        cv2.imwrite(str(root / "images" / f"im{i}.png"), np.full((h, w, 3), 60 + i, np.uint8))
        lines = []
        for c, cx, cy, bw, bh in objs:  # keep boxes inside the image
            bw, bh = min(bw, 2 * cx, 2 * (1 - cx)), min(bh, 2 * cy, 2 * (1 - cy))
            lines.append(f"{c} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
        (root / "labels" / f"im{i}.txt").write_text("\n".join(lines))
    src = load_yolo(root)
    shards = _write({"format": "yolo", "path": str(root), "size": [h, w], "n": len(rows)}, root / "shards")
    export_yolo(shards, root / "out")
    back = load_yolo(root / "out")
    assert back.category_names == {0: "car", 1: "person", 2: "bike"}
    for a, b in zip(src.records, back.records, strict=True):
        np.testing.assert_allclose(b.boxes, a.boxes, atol=1e-3)  # no warp: even sub-pixel boxes stay
        assert b.labels.tolist() == a.labels.tolist()


def test_export_after_geometry_keeps_boxes_valid(tmp_path: Path) -> None:
    pipeline = {
        "box_policy": {"min_visibility": 0.3},
        "transforms": [
            {"name": "rotate", "degrees": 30},
            {"name": "mosaic", "p": 0.5},
            {"name": "horizontal_flip"},
        ],
    }
    shards = _write(
        {"format": "coco", "path": str(FIXTURE), "size": [96, 160], "n": 9},
        tmp_path / "s",
        pipeline,
        fmt="jpg",
    )
    export_coco(shards, tmp_path / "coco")
    data = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert len(data["images"]) == 9 and all(im["file_name"].endswith(".jpg") for im in data["images"])
    for a in data["annotations"]:
        x, y, bw, bh = a["bbox"]
        assert 0 <= x and 0 <= y and bw > 0 and bh > 0 and x + bw <= 160 + 1e-3 and y + bh <= 96 + 1e-3
    load_coco(tmp_path / "coco" / "annotations.json")  # the reader's checks pass on what we wrote


def test_categories_sources_and_errors(tmp_path: Path) -> None:
    assert load_categories({1: "a"}, tmp_path) == {1: "a"}
    (tmp_path / "c.json").write_text(json.dumps({"categories": [{"id": 3, "name": "car"}]}))
    assert load_categories(tmp_path / "c.json", tmp_path) == {3: "car"}
    (tmp_path / "categories.json").write_text(json.dumps({"5": "bus"}))
    assert load_categories(None, tmp_path) == {5: "bus"}
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="bad.json: cannot read"):
        load_categories(tmp_path / "bad.json", tmp_path)
    with pytest.raises(ValueError, match="shard not found: .*missing.tar"):
        export_coco(tmp_path / "missing.tar", tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no shards found"):
        export_yolo(tmp_path / "empty", tmp_path / "o")


def test_cli_export(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from augmentgen.cli import app

    shards = _write({"format": "coco", "path": str(FIXTURE), "size": [64, 96], "n": 3}, tmp_path / "s")
    runner = CliRunner()
    res = runner.invoke(app, ["export", "coco", str(shards), str(tmp_path / "coco")])
    assert res.exit_code == 0, res.output
    assert "3 images" in res.output and (tmp_path / "coco" / "annotations.json").is_file()
    res = runner.invoke(app, ["export", "yolo", str(shards), str(tmp_path / "yolo")])
    assert res.exit_code == 0 and len(list((tmp_path / "yolo" / "labels").glob("*.txt"))) == 3
    res = runner.invoke(app, ["export", "voc", str(shards), str(tmp_path / "x")])
    assert res.exit_code == 2 and "'coco' or 'yolo'" in res.output
    res = runner.invoke(app, ["export", "coco", str(tmp_path / "nope.tar"), str(tmp_path / "x")])
    assert res.exit_code == 2 and "shard not found" in res.output


def test_detection_shards_are_a_pure_function_of_recipe_and_seed(tmp_path: Path) -> None:
    pipeline = {
        "transforms": [
            {"name": "affine", "degrees": 10, "scale": [0.9, 1.2]},
            {"name": "mosaic", "p": 0.5},
            {"name": "copy_paste", "p": 0.5},
            {"name": "one_of", "transforms": [{"name": "rain"}, {"name": "fog"}, {"name": "night"}]},
        ]
    }
    src = {"format": "coco", "path": str(FIXTURE), "size": [64, 96], "n": 6}
    a = _write(dict(src), tmp_path / "a", pipeline)
    b = _write(dict(src), tmp_path / "b", pipeline)
    ta, tb = sorted(a.glob("*.tar")), sorted(b.glob("*.tar"))
    assert [p.read_bytes() for p in ta] == [p.read_bytes() for p in tb]


def test_mask_folder_source_writes_class_maps_to_mask_png(tmp_path: Path) -> None:
    from augmentgen.shards.reader import decode_sample, iter_raw_samples, shard_paths

    (tmp_path / "img").mkdir()
    (tmp_path / "mask").mkdir()
    m = np.zeros((20, 30), np.uint8)
    m[5:15, 10:25] = 2
    m[0:3, 0:30] = 1
    for i in range(2):
        cv2.imwrite(str(tmp_path / "img" / f"{i}.png"), np.full((20, 30, 3), 90 + i, np.uint8))
        cv2.imwrite(str(tmp_path / "mask" / f"{i}.png"), m)
    src = {
        "format": "masks",
        "path": str(tmp_path / "img"),
        "size": [20, 30],
        "n": 2,
        "options": {"masks": str(tmp_path / "mask"), "classes": ["bg", "road", "car"]},
    }
    shards = _write(src, tmp_path / "s", {"transforms": [{"name": "horizontal_flip", "p": 1.0}]})
    samples = [decode_sample(raw) for p in shard_paths(shards) for raw in iter_raw_samples(p)]
    assert len(samples) == 2
    for s in samples:
        assert s["boxes"] == [] and s["mask"].shape == (20, 30, 1)
        np.testing.assert_array_equal(s["mask"][..., 0], m[:, ::-1])  # class ids kept, flipped with the image
