"""One smoke test over the whole op registry, on every input kind (torchvision v2 style)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import augmentgen.ops  # noqa: F401
from augmentgen.core.batch import Batch, Boxes
from augmentgen.core.registry import OPS
from augmentgen.core.rng import sample_rng, torch_rng
from augmentgen.ops.base import op_from_dict
from augmentgen.pipeline import Pipeline

NAMES = OPS.names()
# batch ops (mosaic, copy-paste) mix rows: they refuse single images and change the box slots
BATCH_ONLY = {n for n in NAMES if getattr(OPS.get(n), "kind", "") == "mix"}


def build(name: str, **kw: object) -> object:
    cls = OPS.get(name)
    if name in ("resize", "random_resized_crop", "center_crop", "random_crop"):
        kw.setdefault("size", (12, 14))
    return cls(**kw)


def inputs() -> dict[str, object]:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    boxes = np.array([[2.0, 3.0, 12.0, 10.0], [5.0, 5.0, 9.0, 14.0]], np.float32)
    masks = np.zeros((1, 16, 20), np.uint8)
    masks[0, 3:10, 2:12] = 1
    timg = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    return {
        "hwc_uint8": img,
        "hwc_float": img.astype(np.float32) / 255,
        "dict_np": {"image": img, "label": 3, "boxes": boxes, "box_labels": [1, 2], "masks": masks},
        "chw_float": timg,
        "batch_float": Batch(timg.unsqueeze(0).repeat(3, 1, 1, 1), label=torch.tensor([0, 1, 2]),
                             boxes=Boxes.from_list([torch.from_numpy(boxes)] * 3, [torch.tensor([1, 2])] * 3),
                             masks=torch.from_numpy(masks).unsqueeze(0).repeat(3, 1, 1, 1)),
        "batch_uint8": Batch(torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).repeat(2, 1, 1, 1)),
    }


@pytest.mark.parametrize("name", NAMES)
def test_every_op_runs_on_every_input_kind_and_keeps_structure(name: str) -> None:
    op = build(name)
    pipe = Pipeline([op])
    for kind, x in inputs().items():
        if name == "normalize" and kind.endswith("uint8") and kind.startswith("batch"):
            continue  # normalize leaves [0, 1]; uint8 batches are converted by the user first
        rng = torch_rng(1) if isinstance(x, (Batch, torch.Tensor)) else sample_rng(1, 0, 0)
        if name in BATCH_ONLY and not isinstance(x, (Batch, torch.Tensor)):
            with pytest.raises(ValueError, match="no per-sample path"):
                pipe(x, rng=rng)
            continue
        if name == "copy_paste" and isinstance(x, Batch) and x.masks is None:
            with pytest.raises(ValueError, match="needs boxes and a"):  # nothing to cut objects out with
                pipe(x, rng=rng)
            continue
        out = pipe(x, rng=rng)
        assert type(out) is type(x), (name, kind)
        if isinstance(x, Batch):
            assert isinstance(out, Batch) and out.batch_size == x.batch_size
            assert torch.isfinite(out.image.float()).all(), (name, kind)
            if x.boxes is not None and name in BATCH_ONLY:
                assert out.boxes is not None and out.boxes.xyxy.shape[1] % x.boxes.xyxy.shape[1] == 0
            elif x.boxes is not None:
                assert out.boxes is not None and out.boxes.xyxy.shape[1] == x.boxes.xyxy.shape[1]
                assert torch.equal(out.boxes.labels, x.boxes.labels)  # slots and labels stay aligned
                h, w = out.size
                v = out.boxes.xyxy[out.boxes.valid]
                assert bool((v[:, 0] >= -1e-4).all() and (v[:, 2] <= w + 1e-4).all() and (v[:, 3] <= h + 1e-4).all())
            if x.masks is not None:
                assert out.masks is not None and out.masks.shape[-2:] == out.image.shape[-2:]
        elif isinstance(x, dict):
            assert set(out) == set(x) and out["label"] == 3
            assert out["masks"].shape[-2:] == out["image"].shape[:2]
            assert len(out["boxes"]) == len(out["box_labels"])
        elif isinstance(x, np.ndarray):
            assert out.dtype == (np.float32 if name == "normalize" else x.dtype) and out.ndim == 3
            assert np.isfinite(out).all()
        else:
            assert out.ndim == x.ndim


@pytest.mark.parametrize("name", NAMES)
def test_every_op_pickles_and_round_trips_through_its_dict(name: str) -> None:
    op = build(name, p=1.0 if name == "normalize" else 0.7)
    if name in BATCH_ONLY:
        xb = inputs()["batch_float"]
        assert isinstance(xb, Batch)
        refb = Pipeline([op])(xb, rng=torch_rng(5))
        again = op_from_dict(op.to_dict())  # type: ignore[attr-defined]
        assert again.to_dict() == op.to_dict()  # type: ignore[attr-defined]
        for other in (again, pickle.loads(pickle.dumps(op))):
            assert torch.equal(Pipeline([other])(xb, rng=torch_rng(5)).image, refb.image)
        return
    x = inputs()["hwc_uint8"]
    ref = Pipeline([op])(x, rng=sample_rng(5, 0, 1))
    again = op_from_dict(op.to_dict())  # type: ignore[attr-defined]
    assert again.to_dict() == op.to_dict()  # type: ignore[attr-defined]
    assert np.array_equal(Pipeline([again])(x, rng=sample_rng(5, 0, 1)), ref)
    clone = pickle.loads(pickle.dumps(op))
    assert np.array_equal(Pipeline([clone])(x, rng=sample_rng(5, 0, 1)), ref)


@pytest.mark.parametrize("name", NAMES)
def test_p_zero_is_exact_identity_for_every_size_preserving_op(name: str) -> None:
    op = build(name, p=0.0)
    if name in BATCH_ONLY:
        xb = inputs()["batch_float"]
        assert isinstance(xb, Batch)
        assert torch.equal(Pipeline([op])(xb, rng=torch_rng(0)).image, xb.image)
        return
    x = inputs()["hwc_uint8"]
    out = Pipeline([op])(x, rng=sample_rng(0, 0, 0))
    if out.shape == x.shape and name != "normalize":
        assert np.array_equal(out, x)
