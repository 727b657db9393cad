"""Boxes and masks under the ops: geometric pipelines keep them consistent, photometric ops leave them alone.

Objects are random rectangles and discs drawn into an instance-id mask (pixel value k + 1
is box slot k, the layout ``data.detection`` uses); each box is the tight box of its mask.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import augmentgen.ops  # noqa: F401  (fills the registry)
from augmentgen.core.batch import Batch, Boxes, Sample
from augmentgen.core.registry import OPS
from augmentgen.core.rng import torch_rng
from augmentgen.ops.box_policy import BoxPolicy
from augmentgen.ops.geometric import CenterCrop, Pad, Rotate
from augmentgen.pipeline import Pipeline


def _scene(seed: int, h: int, w: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Image [H, W, 3] uint8, id mask [H, W] uint8, boxes [n, 4], labels [n] (rectangles and discs)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ids = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    for k in range(n):
        x0, y0 = int(rng.integers(0, w - 2)), int(rng.integers(0, h - 2))
        x1, y1 = int(rng.integers(x0 + 2, w + 1)), int(rng.integers(y0 + 2, h + 1))
        if k % 2:
            cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, min(x1 - x0, y1 - y0) / 2
            region = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r
        else:
            region = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
        ids[region] = k + 1  # later objects occlude earlier ones, as in a real scene
    boxes = np.zeros((n, 4), np.float32)
    for k in range(n):
        ys, xs = np.nonzero(ids == k + 1)
        if len(xs):
            boxes[k] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        else:
            boxes[k] = [0, 0, 1, 1]
    return img, ids, boxes, rng.integers(0, 90, n).astype(np.int64)


_SENSITIVE = ["rotate", "affine", "perspective", "pad", "scale", "translate", "shear"]
_FREE = ["random_crop", "center_crop", "random_resized_crop", "horizontal_flip", "vertical_flip", "resize"]
_RIGID = ["rotate", "pad", "translate", "random_crop", "center_crop", "horizontal_flip", "vertical_flip"]


def _geometric_op(
    data: Any, size: tuple[int, int], names: list[str]
) -> tuple[dict[str, Any], tuple[int, int]]:
    """One random geometric op (of ``names``) valid for images of ``size``, and its output size."""
    h, w = size
    name = data.draw(st.sampled_from(names))
    p = data.draw(st.sampled_from([1.0, 0.5]))
    if name == "rotate":
        return {"name": name, "degrees": data.draw(st.floats(0, 180)), "p": p}, size
    if name == "affine":
        return {
            "name": name,
            "degrees": 30.0,
            "translate": 0.2,
            "scale": [0.7, 1.4],
            "shear_x": 15.0,
            "p": p,
        }, size
    if name == "perspective":
        return {"name": name, "distortion_scale": data.draw(st.floats(0.0, 0.6)), "p": p}, size
    if name in ("random_crop", "center_crop"):
        ch, cw = data.draw(st.integers(4, h)), data.draw(st.integers(4, w))
        return {"name": name, "size": [ch, cw]}, (ch, cw)
    if name in ("random_resized_crop", "resize"):
        out = (data.draw(st.integers(8, 48)), data.draw(st.integers(8, 48)))
        return {"name": name, "size": list(out)}, out
    if name == "pad":
        pad = data.draw(st.integers(0, 6))
        return {"name": name, "padding": pad}, (h + 2 * pad, w + 2 * pad)
    if name == "scale":
        return {"name": name, "scale": [0.5, 1.5], "p": p}, size
    if name == "translate":
        return {"name": name, "translate": 0.4, "p": p}, size
    if name == "shear":
        return {"name": name, "shear_x": 20.0, "shear_y": 10.0, "p": p}, size
    return {"name": name, "p": p}, size


def _check_boxes_cover_masks(ids: np.ndarray, boxes: np.ndarray, valid: np.ndarray, tol: float = 1.0) -> None:
    h, w = ids.shape
    for k in range(len(boxes)):
        if not valid[k]:
            continue
        x0, y0, x1, y1 = boxes[k].tolist()
        assert 0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h, f"box {k} {boxes[k]} leaves the {w}x{h} canvas"
        ys, xs = np.nonzero(ids == k + 1)
        if len(xs) == 0:
            continue
        tight = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert tight[0] >= x0 - tol and tight[1] >= y0 - tol, f"box {k} {boxes[k]} misses its mask {tight}"
        assert tight[2] <= x1 + tol and tight[3] <= y1 + tol, f"box {k} {boxes[k]} misses its mask {tight}"


def _run_both_backends(
    data: Any,
    seed: int,
    stages: list[dict[str, Any]],
    size: tuple[int, int],
    *,
    fuse: bool,
    hw: tuple[int, int],
    tol: float,
) -> None:
    h, w = hw
    n = data.draw(st.integers(1, 5))
    img, ids, boxes, labels = _scene(seed, h, w, n)
    pipe = Pipeline.from_dict({"transforms": stages, "fuse": fuse})
    # torch backend, a batch of two copies with independent parameters
    batch = Batch(
        torch.from_numpy(img).permute(2, 0, 1)[None].repeat(2, 1, 1, 1),
        boxes=Boxes.from_list([torch.from_numpy(boxes)] * 2, [torch.from_numpy(labels)] * 2),
        masks=torch.from_numpy(ids)[None, None].repeat(2, 1, 1, 1),
    )
    out = pipe(batch, rng=torch_rng(seed))
    assert out.size == size and out.boxes is not None and out.masks is not None
    for r in range(2):
        assert out.boxes.labels[r].tolist() == labels.tolist(), "labels keep their slots"
        _check_boxes_cover_masks(
            out.masks[r, 0].numpy(), out.boxes.xyxy[r].numpy(), out.boxes.valid[r].numpy(), tol
        )
    # numpy / OpenCV backend
    sample = Sample(img, boxes=boxes, box_valid=np.ones(n, bool), box_labels=labels, masks=ids[None])
    s = pipe(sample, rng=np.random.default_rng(seed))
    assert s.size == size and s.boxes is not None and s.masks is not None and s.box_valid is not None
    _check_boxes_cover_masks(s.masks[0], s.boxes, s.box_valid, tol)


@settings(max_examples=60)
@given(st.data(), st.integers(0, 10_000))
def test_fused_geometric_pipelines_keep_boxes_around_masks_within_one_pixel(data: Any, seed: int) -> None:
    """Any chain that fuses into one warp: border-sensitive ops, then border-free ones (see pipeline.plan)."""
    hw = (data.draw(st.integers(12, 40)), data.draw(st.integers(12, 40)))
    stages, size = [], hw
    for names, most in ((_SENSITIVE, 3), (_FREE, 2)):
        for _ in range(data.draw(st.integers(0, most))):
            op, size = _geometric_op(data, size, names)
            stages.append(op)
    _run_both_backends(data, seed, stages, size, fuse=True, hw=hw, tol=1.0)


@settings(max_examples=40)
@given(st.data(), st.integers(0, 10_000))
def test_unfused_rigid_chains_keep_boxes_around_masks_within_a_pixel_per_warp(data: Any, seed: int) -> None:
    """Each nearest-neighbour mask warp can move a mask edge by up to sqrt(2)/2 px past the exact
    region, so k separate warps without magnification stay within k pixels (a later upscale would
    magnify the earlier error; fused warps do not accumulate it)."""
    hw = (data.draw(st.integers(12, 40)), data.draw(st.integers(12, 40)))
    stages, size = [], hw
    k = data.draw(st.integers(1, 4))
    for _ in range(k):
        op, size = _geometric_op(data, size, _RIGID)
        stages.append(op)
    _run_both_backends(data, seed, stages, size, fuse=False, hw=hw, tol=float(k))


def _photometric_names() -> list[str]:
    names = [
        "brightness",
        "contrast",
        "saturation",
        "hue",
        "gamma",
        "color_jitter",
        "grayscale",
        "gaussian_blur",
        "motion_blur",
        "gaussian_noise",
        "shot_noise",
        "speckle_noise",
        "salt_and_pepper",
        "cutout",
        "random_erasing",
        # weather and lighting ops (issue 8, part 1): checked as soon as they are registered
        "fog",
        "rain",
        "snow",
        "sun_flare",
        "shadow",
        "night",
        "lens_droplets",
        "jpeg",
        "sensor_noise",
    ]
    return [n for n in names if n in OPS]


@pytest.mark.parametrize("name", _photometric_names())
def test_photometric_ops_leave_boxes_and_masks_untouched(name: str) -> None:
    img, ids, boxes, labels = _scene(3, 40, 56, 4)
    op = OPS.get(name)(p=1.0)
    batch = Batch(
        torch.from_numpy(img).permute(2, 0, 1)[None].float().div(255).repeat(3, 1, 1, 1),
        boxes=Boxes.from_list([torch.from_numpy(boxes)] * 3, [torch.from_numpy(labels)] * 3),
        masks=torch.from_numpy(ids)[None, None].repeat(3, 1, 1, 1),
    )
    out = Pipeline([op])(batch, rng=torch_rng(1))
    assert out.boxes is not None and batch.boxes is not None
    assert torch.equal(out.boxes.xyxy, batch.boxes.xyxy) and torch.equal(out.boxes.valid, batch.boxes.valid)
    assert torch.equal(out.boxes.labels, batch.boxes.labels) and torch.equal(out.masks, batch.masks)
    assert not torch.equal(out.image, batch.image), (
        f"{name} at p=1 changed nothing; the test would be vacuous"
    )
    sample = Sample(img, boxes=boxes, box_valid=np.ones(4, bool), box_labels=labels, masks=ids[None])
    s = Pipeline([op])(sample, rng=np.random.default_rng(1))
    assert s.boxes is boxes or np.array_equal(s.boxes, boxes)
    assert np.array_equal(s.masks, ids[None]) and np.array_equal(s.box_labels, labels)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_seeded_determinism_with_targets(backend: str) -> None:
    img, ids, boxes, labels = _scene(5, 36, 44, 5)
    stages = [
        {"name": "affine", "degrees": 20.0, "translate": 0.1, "scale": [0.8, 1.2]},
        {"name": "horizontal_flip"},
        {"name": "random_resized_crop", "size": [32, 32], "scale": [0.5, 1.0]},
        {"name": "color_jitter"},
        {"name": "gaussian_noise"},
    ]
    pipe = Pipeline.from_dict({"transforms": stages, "box_policy": {"min_visibility": 0.2}})
    if backend == "torch":
        batch = Batch(
            torch.from_numpy(img).permute(2, 0, 1)[None].float().div(255).repeat(4, 1, 1, 1),
            boxes=Boxes.from_list([torch.from_numpy(boxes)] * 4, [torch.from_numpy(labels)] * 4),
            masks=torch.from_numpy(ids)[None, None].repeat(4, 1, 1, 1),
        )
        a, b, c = (pipe(batch, rng=torch_rng(s)) for s in (7, 7, 8))
        assert a.boxes is not None and b.boxes is not None and c.boxes is not None
        assert torch.equal(a.image, b.image) and torch.equal(a.masks, b.masks)
        assert torch.equal(a.boxes.xyxy, b.boxes.xyxy) and torch.equal(a.boxes.valid, b.boxes.valid)
        assert not torch.equal(a.boxes.xyxy, c.boxes.xyxy)
    else:
        sample = Sample(img, boxes=boxes, box_valid=np.ones(5, bool), box_labels=labels, masks=ids[None])
        a, b, c = (pipe(sample, rng=np.random.default_rng(s)) for s in (7, 7, 8))
        assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks)
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.box_valid, b.box_valid)
        assert not np.array_equal(a.boxes, c.boxes)


# ---- box policy ------------------------------------------------------------------------------


def _one_box_batch(xyxy: list[float], size: int = 40) -> Batch:
    return Batch(
        torch.zeros(1, 3, size, size),
        boxes=Boxes(
            torch.tensor([[xyxy, [10.0, 10.0, 30.0, 30.0]]]),
            torch.tensor([[True, True]]),
            torch.tensor([[3, 4]]),
        ),
    )


def test_box_policy_min_visibility_drops_mostly_hidden_boxes_and_keeps_slots() -> None:
    # pad 20 px on the left, centre-crop back to 40: a shift right by 10 px, so the box
    # [22, 10, 38, 20] keeps 8 of its 16 px width
    batch = _one_box_batch([22.0, 10.0, 38.0, 20.0])
    ops = [Pad(padding=(20, 0, 0, 0)), CenterCrop(size=40)]
    for vis, keep in ((0.4, True), (0.6, False)):
        for backend in ("torch", "numpy"):
            pipe = Pipeline(ops, box_policy=BoxPolicy(min_visibility=vis))
            if backend == "torch":
                out = pipe(batch, rng=torch_rng(0))
                assert out.boxes is not None
                valid, labels, xyxy = (
                    out.boxes.valid[0].tolist(),
                    out.boxes.labels[0].tolist(),
                    out.boxes.xyxy[0, 0],
                )
            else:
                s = pipe(Sample.from_batch(batch), rng=np.random.default_rng(0))
                assert s.box_valid is not None and s.boxes is not None and s.box_labels is not None
                valid, labels, xyxy = (
                    s.box_valid.tolist(),
                    s.box_labels.tolist(),
                    torch.from_numpy(s.boxes[0]),
                )
            assert valid == [keep, True], (vis, backend)
            assert labels == [3, 4]
            torch.testing.assert_close(xyxy, torch.tensor([32.0, 10.0, 40.0, 20.0]))


def test_box_policy_min_area_and_default_unchanged() -> None:
    batch = _one_box_batch([0.0, 0.0, 6.0, 6.0])  # 36 px^2
    op = Rotate(degrees=(0.0, 0.0))  # identity matrix: the warp is skipped, policy cannot act
    flip = OPS.get("horizontal_flip")(p=1.0)
    out = Pipeline([flip], box_policy={"min_area": 40})(batch, rng=torch_rng(0))
    assert out.boxes is not None and out.boxes.valid[0].tolist() == [False, True]
    out = Pipeline([flip], box_policy={"min_area": 30})(batch, rng=torch_rng(0))
    assert out.boxes is not None and out.boxes.valid[0].tolist() == [True, True]
    # without a policy, the pipeline gives exactly what the op gives on its own
    default = Pipeline([flip, op])(batch, rng=torch_rng(0))
    direct = flip.apply(batch, flip.sample_params(batch, torch_rng(0)))
    assert default.boxes is not None and direct.boxes is not None
    assert torch.equal(default.boxes.xyxy, direct.boxes.xyxy) and torch.equal(
        default.boxes.valid, direct.boxes.valid
    )


def test_box_policy_serializes_and_validates() -> None:
    pipe = Pipeline.from_dict(
        {"transforms": [{"name": "rotate"}], "box_policy": {"min_visibility": 0.3, "min_area": 9}}
    )
    assert pipe.box_policy == BoxPolicy(min_visibility=0.3, min_area=9.0)
    again = Pipeline.from_dict(pipe.to_dict())
    assert again.box_policy == pipe.box_policy
    assert "box_policy" not in Pipeline.from_dict({"transforms": []}).to_dict()
    with pytest.raises(ValueError, match=r"pipeline.box_policy: unknown key\(s\) \['min_vis'\]"):
        Pipeline.from_dict({"transforms": [], "box_policy": {"min_vis": 0.3}})
    with pytest.raises(ValueError, match=r"min_visibility must be in \[0, 1\]"):
        BoxPolicy(min_visibility=1.5)
    with pytest.raises(ValueError, match="min_area must be a finite number >= 0"):
        BoxPolicy(min_area=-1)
