"""On the CPU, an op that acts on few rows of a batch (a one_of's choice) runs on those rows alone:
the result must be the whole-batch computation's, row for row, for every registered op."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augmentgen.core.batch import Batch, Boxes
from augmentgen.core.registry import OPS
from augmentgen.core.rng import torch_rng
from augmentgen.ops.base import Op
from augmentgen.ops.functional.warp import WarpSpec, warp_batch
from augmentgen.pipeline import OneOf, Pipeline
from augmentgen.pipeline.plan import Step, _fused_color_rows, _fused_color_torch

ROW_OPS = sorted(
    n for n in OPS.names() if getattr(OPS.get(n), "kind", "") in ("pixel", "color") and n != "normalize"
)


def _images(b: int, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (b, 3, 20, 24), generator=g, dtype=torch.uint8)
    return x if dtype == torch.uint8 else x.to(dtype) / 255


@pytest.mark.parametrize("name", ROW_OPS)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_an_op_on_a_few_rows_equals_the_whole_batch_computation(name: str, dtype: torch.dtype) -> None:
    op: Op = OPS.get(name)(p=0.25)
    batch = Batch(_images(16, dtype))
    params = op.sample_params(batch, torch_rng(3)).to_torch(batch.device)
    applied = torch.as_tensor(params.applied)
    assert 0 < int(applied.sum()) <= 8  # the sparse path: at most half the rows act
    out = op.apply(batch, params).image
    whole = torch.where(applied.reshape(-1, 1, 1, 1), op._apply_rows(batch.image, params).to(dtype), batch.image)
    assert out.dtype == dtype and torch.equal(out, whole), name


def test_a_warp_of_few_rows_moves_their_targets_as_a_whole_batch_warp_does() -> None:
    b = 12
    img = _images(b, torch.float32)
    boxes = Boxes.from_list([torch.tensor([[2.0, 3.0, 12.0, 10.0], [5.0, 5.0, 9.0, 14.0]])] * b, [torch.tensor([1, 2])] * b)
    masks = torch.zeros(b, 1, 20, 24, dtype=torch.uint8)
    masks[:, 0, 3:10, 2:12] = 1
    kps = torch.tensor([[4.0, 5.0], [10.0, 12.0]]).repeat(b, 1, 1)
    batch = Batch(img, boxes=boxes, masks=masks, keypoints=kps)
    mat = torch.eye(3).repeat(b, 1, 1)
    moved = torch.tensor([1, 6, 7])
    ang = torch.tensor([0.3, -0.5, 0.2])
    mat[moved, 0, 0], mat[moved, 0, 1], mat[moved, 1, 0], mat[moved, 1, 1] = ang.cos(), -ang.sin(), ang.sin(), ang.cos()
    mat[moved, 0, 2] = 3.0
    out = warp_batch(batch, mat, (20, 24), WarpSpec())  # 3 of 12 rows move: only they are warped
    for i in range(b):
        row = batch.index(torch.tensor([i]))
        one = warp_batch(row, mat[i : i + 1], (20, 24), WarpSpec()) if i in moved else row  # a row alone
        assert torch.allclose(out.image[i], one.image[0], atol=1e-6)
        assert torch.equal(out.masks[i], one.masks[0]) and torch.allclose(out.keypoints[i], one.keypoints[0])
        assert torch.allclose(out.boxes.xyxy[i], one.boxes.xyxy[0]) and torch.equal(out.boxes.valid[i], one.boxes.valid[0])
    assert not torch.equal(out.image[1], img[1]) and torch.equal(out.image[0], img[0])


def test_a_fused_colour_run_over_few_rows_equals_the_whole_batch_pass() -> None:
    pipe = Pipeline([OneOf([OPS.get("brightness")(brightness=0.5), OPS.get("contrast")(contrast=0.5)], p=0.3)])
    batch = Batch(_images(20, torch.float32))
    trace = pipe.sample_trace(batch, torch_rng(5))
    steps = list(trace.steps)
    acting = np.logical_or.reduce([np.asarray(s.params.applied) for s in steps])
    assert 0 < acting.sum() <= 10
    sparse = _fused_color_torch(steps, batch.image)
    whole = _fused_color_rows([Step(s.path, s.leaf, s.params) for s in steps], batch.image)
    assert torch.allclose(sparse, whole, atol=1e-6) and torch.equal(sparse[~torch.from_numpy(acting)], batch.image[~torch.from_numpy(acting)])
