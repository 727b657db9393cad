"""Mosaic and copy-paste: pixels, boxes, labels and instance masks move together; seeded; batch-only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import augmentgen.ops  # noqa: F401
from augmentgen.core.batch import Batch, Boxes, Sample
from augmentgen.core.rng import torch_rng
from augmentgen.ops.mix import BoxMixUp, BoxMixUpParams, CopyPaste, CopyPasteParams, Mosaic, MosaicParams
from augmentgen.pipeline import Pipeline


def _scene_batch(seed: int, b: int = 4, h: int = 24, w: int = 32, n: int = 3) -> Batch:
    """Each row: a background colour and n rectangles, one per vertical band (no overlap), id masks, tight boxes."""
    g = np.random.default_rng(seed)
    image = torch.zeros(b, 3, h, w)
    masks = torch.zeros(b, 1, h, w, dtype=torch.uint8)
    boxes, labels = [], []
    for r in range(b):
        image[r] = torch.tensor(g.random(3), dtype=torch.float32)[:, None, None]
        bx = []
        for k in range(n):
            lo, hi = k * w // n, (k + 1) * w // n
            x0, y0 = int(g.integers(lo, hi - 2)), int(g.integers(0, h - 4))
            x1, y1 = int(g.integers(x0 + 2, hi + 1)), int(g.integers(y0 + 2, min(h, y0 + 10) + 1))
            masks[r, 0, y0:y1, x0:x1] = k + 1
            image[r, :, y0:y1, x0:x1] = torch.tensor(g.random(3), dtype=torch.float32)[:, None, None]
        for k in range(n):  # boxes from what is visible after later objects were drawn
            ys, xs = torch.nonzero(masks[r, 0] == k + 1, as_tuple=True)
            bx.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else [0, 0, 0, 0])
        boxes.append(torch.tensor(bx, dtype=torch.float32))
        labels.append(torch.tensor(g.integers(1, 9, n)))
    bxs = Boxes.from_list(boxes, labels)
    bxs = Boxes(bxs.xyxy, bxs.valid & (bxs.xyxy[..., 2] > bxs.xyxy[..., 0]), bxs.labels)
    return Batch(image, boxes=bxs, masks=masks)


def _assert_boxes_match_masks(out: Batch, exact: bool) -> None:
    assert out.boxes is not None and out.masks is not None
    h, w = out.size
    for r in range(out.batch_size):
        ids = out.masks[r, 0]
        for k in range(out.boxes.xyxy.shape[1]):
            present = bool((ids == k + 1).any())
            if not out.boxes.valid[r, k]:
                assert not present, f"row {r}: pixels of dropped slot {k} remain"
                continue
            x0, y0, x1, y1 = out.boxes.xyxy[r, k].tolist()
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            if not present:
                continue
            ys, xs = torch.nonzero(ids == k + 1, as_tuple=True)
            tight = [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
            if exact:
                assert tight == [x0, y0, x1, y1], (r, k, tight, [x0, y0, x1, y1])
            else:
                assert tight[0] >= x0 and tight[1] >= y0 and tight[2] <= x1 and tight[3] <= y1


def test_mosaic_golden_tiles_and_boxes() -> None:
    batch = _scene_batch(0)
    op = Mosaic(min_visibility=0.0)
    params = MosaicParams(
        applied=torch.tensor([True, False, True, True]),
        partners=torch.tensor([[1, 2, 3], [0, 0, 0], [3, 3, 3], [0, 1, 2]]),
        x0=torch.tensor([10, 0, 16, 5]),
        y0=torch.tensor([8, 0, 12, 7]),
    )
    out = op.apply(batch, params)
    # row 0: window corner (10, 8): top-left tile is row 0 shifted by (-10, -8)
    torch.testing.assert_close(out.image[0, :, :16, :22], batch.image[0, :, 8:, 10:])
    torch.testing.assert_close(out.image[0, :, :16, 22:], batch.image[1, :, 8:, :10])  # top-right
    torch.testing.assert_close(out.image[0, :, 16:, :22], batch.image[2, :, :8, 10:])  # bottom-left
    torch.testing.assert_close(out.image[0, :, 16:, 22:], batch.image[3, :, :8, :10])  # bottom-right
    assert torch.equal(out.image[1], batch.image[1]) and out.boxes is not None and batch.boxes is not None
    assert torch.equal(out.boxes.xyxy[1, :3], batch.boxes.xyxy[1]) and not out.boxes.valid[1, 3:].any()
    # slot t*N + k is object k of tile t; labels follow
    assert out.boxes.labels[0].tolist() == torch.cat([batch.boxes.labels[r] for r in (0, 1, 2, 3)]).tolist()
    _assert_boxes_match_masks(out, exact=True)  # copies of rectangles: clipped boxes are exact


@settings(max_examples=30)
@given(st.integers(0, 10_000), st.floats(0.0, 0.9))
def test_mosaic_boxes_follow_masks(seed: int, vis: float) -> None:
    batch = _scene_batch(seed)
    op = Mosaic(min_visibility=vis, p=0.8)
    params = op.sample_params(batch, torch_rng(seed))
    assert isinstance(params, MosaicParams)
    out = op.apply(batch, params)
    assert out.image.shape == batch.image.shape and out.boxes is not None and batch.boxes is not None
    assert out.boxes.xyxy.shape == (4, 12, 4)
    _assert_boxes_match_masks(out, exact=True)
    # visibility: every kept box keeps at least `vis` of its source box's area, and labels follow
    area = lambda b: float((b[2] - b[0]) * (b[3] - b[1]))  # noqa: E731
    for r in range(4):
        if not bool(params.applied[r]):
            continue
        rows = [r, *params.partners[r].tolist()]
        for slot in range(12):
            t, k = divmod(slot, 3)
            assert out.boxes.labels[r, slot] == batch.boxes.labels[rows[t], k]
            if bool(out.boxes.valid[r, slot]):
                assert area(out.boxes.xyxy[r, slot]) >= vis * area(batch.boxes.xyxy[rows[t], k]) - 1e-4


@settings(max_examples=30)
@given(st.integers(0, 10_000), st.floats(0.0, 1.0))
def test_copy_paste_boxes_follow_masks(seed: int, frac: float) -> None:
    batch = _scene_batch(seed, n=4)
    op = CopyPaste(paste_fraction=frac)
    out = op.apply(batch, op.sample_params(batch, torch_rng(seed)))
    assert out.boxes is not None and out.boxes.xyxy.shape == (4, 8, 4)
    _assert_boxes_match_masks(out, exact=False)
    # every pasted object's pixels equal its source pixels
    assert batch.boxes is not None and batch.masks is not None
    params = op.sample_params(batch, torch_rng(seed))
    assert isinstance(params, CopyPasteParams)
    for r in range(4):
        j = int(params.source[r])
        assert j != r
        for k in range(4):
            if bool(out.boxes.valid[r, 4 + k]):
                sel = out.masks[r, 0] == 4 + k + 1
                assert torch.equal(out.image[r][:, sel], batch.image[j][:, sel])
                assert out.boxes.labels[r, 4 + k] == batch.boxes.labels[j, k]


def test_copy_paste_golden_occlusion() -> None:
    image = torch.zeros(2, 3, 10, 10)
    masks = torch.zeros(2, 1, 10, 10, dtype=torch.uint8)
    masks[0, 0, 2:8, 2:8] = 1  # row 0: one 6x6 object
    masks[1, 0, 0:10, 5:10] = 1  # row 1: the right half
    image[1] = 1.0
    boxes = Boxes(
        torch.tensor([[[2.0, 2, 8, 8]], [[5.0, 0, 10, 10]]]),
        torch.tensor([[True], [True]]),
        torch.tensor([[3], [7]]),
    )
    batch = Batch(image, boxes=boxes, masks=masks)
    params = CopyPasteParams(
        applied=torch.tensor([True, False]), source=torch.tensor([1, 0]), seed=torch.tensor([0, 0])
    )
    out = CopyPaste(paste_fraction=1.0).apply(batch, params)
    assert out.boxes is not None and out.masks is not None
    # the pasted half covers columns 5..9: row 0's object shrinks to columns 2..4
    assert out.boxes.xyxy[0].tolist() == [[2.0, 2.0, 5.0, 8.0], [5.0, 0.0, 10.0, 10.0]]
    assert out.boxes.labels[0].tolist() == [3, 7] and out.boxes.valid[0].tolist() == [True, True]
    assert torch.equal(out.image[0, :, :, 5:], torch.ones(3, 10, 5)) and out.image[0, :, :, :5].sum() == 0
    assert out.masks[0, 0, 4].tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 2, 2]
    # a policy that demands 60% of the box: 3x6 of 6x6 is 50%, so the occluded box is dropped
    out = CopyPaste(paste_fraction=1.0, min_visibility=0.6).apply(batch, params)
    assert out.boxes is not None and out.masks is not None
    assert out.boxes.valid[0].tolist() == [False, True] and not (out.masks[0, 0] == 1).any()


def test_mix_ops_are_seeded_and_batch_only() -> None:
    batch = _scene_batch(3)
    pipe = Pipeline.from_dict(
        {"transforms": [{"name": "mosaic"}, {"name": "copy_paste"}, {"name": "horizontal_flip"}]}
    )
    a, b, c = (pipe(batch, rng=torch_rng(s)) for s in (1, 1, 2))
    assert torch.equal(a.image, b.image) and torch.equal(a.masks, b.masks)
    assert torch.equal(a.boxes.xyxy, b.boxes.xyxy) and not torch.equal(a.image, c.image)
    assert a.boxes.xyxy.shape == (4, 24, 4)  # mosaic 4N, then copy-paste doubles
    sample = Sample(np.zeros((8, 8, 3), np.uint8))
    for name in ("mosaic", "copy_paste"):
        with pytest.raises(ValueError, match="no per-sample path"):
            Pipeline.from_dict([{"name": name}])(sample, rng=np.random.default_rng(0))


def test_mix_errors() -> None:
    with pytest.raises(ValueError, match="Mosaic.center must lie in"):
        Mosaic(center=(0.5, 1.5))
    with pytest.raises(ValueError, match="paste_fraction"):
        CopyPaste(paste_fraction=2.0)
    no_masks = Batch(torch.zeros(2, 3, 8, 8), boxes=Boxes.from_list([torch.zeros(1, 4)] * 2))
    op = CopyPaste()
    with pytest.raises(ValueError, match="needs boxes and a"):
        op.apply(no_masks, op.sample_params(no_masks, torch_rng(0)))
    many = Batch(
        torch.zeros(2, 3, 8, 8),
        boxes=Boxes.from_list([torch.zeros(70, 4)] * 2),
        masks=torch.zeros(2, 1, 8, 8, dtype=torch.uint8),
    )
    m = Mosaic()
    with pytest.raises(ValueError, match="280 box slots do not fit uint8"):
        m.apply(many, m.sample_params(many, torch_rng(0)))


def test_mosaic_box_slots_do_not_depend_on_the_draw() -> None:
    """A batch where no row draws a mosaic still has 4n box slots (shapes never depend on the rng)."""
    batch = _scene_batch(6970)
    assert batch.boxes is not None
    op = Mosaic(p=0.0)
    out = op.apply(batch, op.sample_params(batch, torch_rng(0)))
    assert out.boxes is not None and torch.equal(out.image, batch.image)
    n = batch.boxes.xyxy.shape[1]
    assert out.boxes.xyxy.shape == (4, 4 * n, 4)
    assert torch.equal(out.boxes.xyxy[:, :n], batch.boxes.xyxy) and torch.equal(out.boxes.valid[:, :n], batch.boxes.valid)
    assert not out.boxes.valid[:, n:].any() and (out.boxes.labels[:, n:] == -1).all()


def _boxes_batch(seed: int, b: int, n: int, uint8: bool = False) -> Batch:
    g = np.random.default_rng(seed)
    image = torch.from_numpy(g.random((b, 3, 6, 7))).float()
    if uint8:
        image = (image * 255).round().to(torch.uint8)
    xy = g.random((b, n, 2)) * 4
    wh = 0.5 + g.random((b, n, 2)) * 2
    boxes = [torch.from_numpy(np.concatenate([xy[r], xy[r] + wh[r]], 1)).float() for r in range(b)]
    labels = [torch.from_numpy(g.integers(0, 5, n)) for _ in range(b)]
    bx = Boxes.from_list(boxes, labels)
    drop = torch.from_numpy(g.random((b, n)) < 0.2)  # some slots already invalid
    return Batch(image, boxes=Boxes(bx.xyxy, bx.valid & ~drop, torch.where(drop, -1, bx.labels)))


def test_mixup_golden_blend_and_boxes() -> None:
    batch = Batch(
        torch.stack([torch.full((1, 2, 2), 0.2), torch.full((1, 2, 2), 0.8)]),
        boxes=Boxes.from_list([torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([[1.0, 1, 2, 2]])],
                              [torch.tensor([3]), torch.tensor([7])]),
    )  # fmt: skip
    params = BoxMixUpParams(
        applied=torch.tensor([True, False]), source=torch.tensor([1, 0]), weight=torch.tensor([0.25, 0.9], dtype=torch.float64)
    )
    out = BoxMixUp().apply(batch, params)
    assert torch.allclose(out.image[0], torch.full((1, 2, 2), 0.25 * 0.2 + 0.75 * 0.8))
    assert torch.equal(out.image[1], batch.image[1])  # not applied: bit for bit
    assert out.boxes is not None
    assert out.boxes.xyxy[0].tolist() == [[0.0, 0, 1, 1], [1.0, 1, 2, 2]]
    assert out.boxes.labels.tolist() == [[3, 7], [7, -1]] and out.boxes.valid.tolist() == [[True, True], [True, False]]


@settings(max_examples=40)
@given(b=st.integers(1, 5), n=st.integers(0, 3), p=st.floats(0, 1), seed=st.integers(0, 10_000), uint8=st.booleans())
def test_mixup_keeps_both_rows_boxes(b: int, n: int, p: float, seed: int, uint8: bool) -> None:
    batch = _boxes_batch(seed, b, n, uint8)
    op = BoxMixUp(p=p, alpha=2.0)
    params = op.sample_params(batch, torch_rng(seed))
    out = op.apply(batch, params)
    assert batch.boxes is not None and out.boxes is not None
    assert out.boxes.xyxy.shape == (b, 2 * n, 4) and out.image.dtype == batch.image.dtype
    for i in range(b):
        j, w, on = int(params.source[i]), float(params.weight[i]), bool(params.applied[i])
        assert b == 1 or j != i
        assert torch.equal(out.boxes.xyxy[i, :n], batch.boxes.xyxy[i])
        assert torch.equal(out.boxes.valid[i, :n], batch.boxes.valid[i])
        assert torch.equal(out.boxes.valid[i, n:], batch.boxes.valid[j] & on)
        assert torch.equal(out.boxes.labels[i, n:], torch.where(out.boxes.valid[i, n:], batch.boxes.labels[j], -1))
        if on:
            want = w * batch.image[i].double() + (1 - w) * batch.image[j].double()
            assert torch.allclose(out.image[i].double(), want, atol=0.5 if uint8 else 1e-6)
        else:
            assert torch.equal(out.image[i], batch.image[i])


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), alpha=st.sampled_from([0.3, 1.0, 32.0]))
def test_mixup_merges_instance_masks_with_the_boxes(seed: int, alpha: float) -> None:
    batch = _scene_batch(seed)
    op = BoxMixUp(alpha=alpha)
    params = op.sample_params(batch, torch_rng(seed))
    out = op.apply(batch, params)
    _assert_boxes_match_masks(out, exact=False)
    assert batch.masks is not None and out.masks is not None and batch.boxes is not None
    n = batch.boxes.xyxy.shape[1]
    for i in range(batch.batch_size):
        j, w = int(params.source[i]), float(params.weight[i])
        own, other = batch.masks[i, 0], batch.masks[j, 0]
        got = out.masks[i, 0]
        # where one image has an object, it is there; where both do, the heavier one's
        assert torch.equal(got[(own > 0) & (other == 0)], own[(own > 0) & (other == 0)])
        assert torch.equal(got[(own == 0) & (other > 0)], other[(own == 0) & (other > 0)] + n)
        both = (own > 0) & (other > 0)
        assert torch.equal(got[both], own[both] if w >= 0.5 else other[both] + n)


def test_mixup_in_a_pipeline_is_seeded_and_refuses_what_it_cannot_carry() -> None:
    batch = _boxes_batch(0, 4, 2)
    pipe = Pipeline.from_dict([{"name": "mosaic"}, {"name": "mixup", "p": 0.5}])
    a, b, c = (pipe(batch, rng=torch_rng(s)) for s in (1, 1, 2))
    assert torch.equal(a.image, b.image) and torch.equal(a.boxes.xyxy, b.boxes.xyxy)
    assert not torch.equal(a.image, c.image)
    assert a.boxes.xyxy.shape == (4, 16, 4)  # mosaic 4N, then mixup doubles
    op = BoxMixUp()
    labelled = Batch(torch.rand(2, 3, 4, 4), label=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="class labels.*LabelMix"):
        op.apply(labelled, op.sample_params(labelled, torch_rng(0)))
    unlabelled = Batch(torch.rand(2, 3, 4, 4))  # images only: blended
    assert not torch.equal(op.apply(unlabelled, op.sample_params(unlabelled, torch_rng(0))).image, unlabelled.image)
    pts = Batch(torch.rand(2, 3, 4, 4), keypoints=torch.zeros(2, 1, 2))
    with pytest.raises(ValueError, match="cannot carry keypoints"):
        op.apply(pts, op.sample_params(pts, torch_rng(0)))
    with pytest.raises(ValueError, match="no per-sample path"):
        Pipeline.from_dict([{"name": "mixup"}])(Sample(np.zeros((8, 8, 3), np.uint8)), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        BoxMixUp(alpha=0.0)
