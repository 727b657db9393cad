"""Letterbox and the aspect-keeping resizes: golden placements, exact box mapping, both backends."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import augmentgen.ops  # noqa: F401  (registers the ops)
from augmentgen.ops.geometric import Letterbox, LongestMaxSize, SmallestMaxSize
from augmentgen.pipeline import Pipeline


def test_letterbox_golden_wide_image() -> None:
    img = np.full((30, 60, 3), 200, np.uint8)
    d = {"image": img, "boxes": np.array([[0, 0, 60, 30], [10, 5, 20, 15]], np.float32), "box_labels": np.array([1, 2])}
    out = Pipeline.from_dict([{"name": "letterbox", "size": [64, 64]}])(d)
    # scale 64/60, the 32-row content centred: rows 16..47, grey 114 above and below
    assert out["image"].shape == (64, 64, 3)
    assert (out["image"][:15] == 114).all() and (out["image"][49:] == 114).all()
    assert (out["image"][17:47, 1:63] == 200).all()  # one bilinear warp: the outermost pixels blend a little
    assert out["boxes"][0].tolist() == pytest.approx([0, 16, 64, 48])
    assert out["boxes"][1].tolist() == pytest.approx([10 * 64 / 60, 16 + 5 * 32 / 30, 20 * 64 / 60, 16 + 15 * 32 / 30])
    assert out["box_labels"].tolist() == [1, 2]


def test_letterbox_placement_options() -> None:
    assert Letterbox(size=(640, 640)).placement((720, 1280)) == (360, 640, 0, 140)
    assert Letterbox(size=(640, 640), position="top_left").placement((720, 1280)) == (360, 640, 0, 0)
    assert Letterbox(size=(64, 64), scale_up=False).placement((20, 30)) == (20, 30, 17, 22)  # not enlarged
    assert Letterbox(size=(64, 64)).placement((20, 30)) == (43, 64, 0, 10)
    assert LongestMaxSize(max_size=64).output_size((720, 1280)) == (36, 64)
    assert SmallestMaxSize(max_size=256).output_size((480, 640)) == (256, 341)
    for bad in ({"position": "middle"}, {"fill": 114}, {"size": 0}):
        with pytest.raises(ValueError, match="Letterbox"):
            Letterbox(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_size"):
        LongestMaxSize(max_size=0)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(8, 80),
    w=st.integers(8, 80),
    oh=st.integers(8, 64),
    ow=st.integers(8, 64),
    position=st.sampled_from(["center", "top_left"]),
    scale_up=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_letterbox_maps_boxes_exactly_and_keeps_the_aspect(
    h: int, w: int, oh: int, ow: int, position: str, scale_up: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 1, (4, 2)) * [w - 2, h - 2]
    boxes = np.concatenate([xy, xy + rng.uniform(1, 2, (4, 2))], 1).astype(np.float32)
    op = Letterbox(size=(oh, ow), position=position, scale_up=scale_up)
    nh, nw, left, top = op.placement((h, w))
    assert nh <= oh and nw <= ow and (nh == oh or nw == ow or not scale_up or (nh, nw) == (h, w))
    assert abs(nh / h - nw / w) <= 1 / h + 1 / w  # the aspect is kept to within rounding to whole pixels
    want = boxes * [nw / w, nh / h, nw / w, nh / h] + [left, top, left, top]
    pipe = Pipeline([op])
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    out_np = pipe({"image": img, "boxes": boxes, "box_labels": np.arange(4)})
    timg = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    out_t = pipe({"image": timg, "boxes": torch.from_numpy(boxes), "box_labels": torch.arange(4)})
    for out in (out_np, {k: np.asarray(v) for k, v in out_t.items()}):
        kept = out["box_labels"]
        assert np.allclose(out["boxes"], want[kept], atol=1e-3)
    assert out_np["image"].shape == (oh, ow, 3) and tuple(out_t["image"].shape) == (3, oh, ow)
    # the padding is the fill up to the content's edge, and the content is the image resized with its
    # edge pixels replicated (cv2.resize's), unblended with the fill whatever the scale
    canvas = np.zeros((oh, ow), bool)
    canvas[top : top + nh, left : left + nw] = True
    assert (out_np["image"][~canvas] == 114).all()
    out_tf = out_t["image"].permute(1, 2, 0).numpy()
    assert np.allclose(out_tf[~canvas], 114 / 255, atol=1e-6)
    ref = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR).reshape(nh, nw, 3).astype(np.float64)
    assert np.abs(out_np["image"][top : top + nh, left : left + nw] - ref).max() <= 1
    assert np.abs(out_tf[top : top + nh, left : left + nw] * 255 - ref).max() <= 1
