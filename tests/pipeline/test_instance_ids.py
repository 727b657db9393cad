"""A dict sample's instance-id mask follows its boxes when a warp drops some of them (slot k <-> id k + 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import augmentgen.ops  # noqa: F401  (registers the ops)
from augmentgen.core.batch import renumber_instance_ids
from augmentgen.core.rng import sample_rng
from augmentgen.pipeline import Pipeline


def _sample(rng: np.random.Generator, n: int, side: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """n non-overlapping boxes on a grid of cells, each filled with its id in one mask plane."""
    cells = rng.permutation(16)[:n]
    boxes, mask = [], np.zeros((1, side, side), np.uint8)
    c = side // 4
    for k, cell in enumerate(cells):
        y, x = divmod(int(cell), 4)
        x0, y0 = x * c + 1, y * c + 1
        boxes.append([x0, y0, x0 + c - 2, y0 + c - 2])
        mask[0, y0 : y0 + c - 2, x0 : x0 + c - 2] = k + 1
    return np.asarray(boxes, np.float32), mask


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 8), backend=st.sampled_from(["numpy", "torch"]))
def test_kept_boxes_own_their_mask_ids_after_a_warp_drops_some(seed: int, n: int, backend: str) -> None:
    rng = np.random.default_rng(seed)
    boxes, mask = _sample(rng, n)
    labels = np.arange(10, 10 + n)
    pipe = Pipeline.from_dict(
        [{"name": "translate", "translate": [0.6, 0.6]}, {"name": "rotate", "degrees": [-30, 30], "p": 0.5}]
    )
    if backend == "numpy":
        d = {"image": np.zeros((48, 48, 3), np.uint8), "boxes": boxes, "box_labels": labels, "masks": mask}
        out = pipe(d, rng=sample_rng(seed, 0, 0))
        got_boxes, got_labels, got_mask = out["boxes"], out["box_labels"], out["masks"]
    else:
        d = {"image": torch.zeros(3, 48, 48), "boxes": torch.from_numpy(boxes), "box_labels": torch.from_numpy(labels),
             "masks": torch.from_numpy(mask)}
        out = pipe(d, rng=torch.Generator().manual_seed(seed))
        got_boxes, got_labels, got_mask = (np.asarray(out[k]) for k in ("boxes", "box_labels", "masks"))
    m = len(got_boxes)
    assert got_mask.max() <= m  # no id beyond the boxes left
    for k in range(m):
        ys, xs = np.nonzero(got_mask[0] == k + 1)
        if len(xs) == 0:
            continue  # a sliver of a box whose pixels the nearest-neighbour warp missed
        x0, y0, x1, y1 = got_boxes[k]
        assert xs.min() >= x0 - 1.5 and xs.max() + 1 <= x1 + 1.5 and ys.min() >= y0 - 1.5 and ys.max() + 1 <= y1 + 1.5
        # and the id's pixels came from the box with this label (labels 10.. were given in slot order)
        assert 10 <= int(got_labels[k]) < 10 + n


def test_renumber_instance_ids_golden() -> None:
    ids = torch.tensor([[0, 1, 2, 3, 4, 9]], dtype=torch.uint8)
    got = renumber_instance_ids(ids, torch.tensor([False, True, False, True]))
    assert got.tolist() == [[0, 0, 1, 0, 2, 0]] and got.dtype == torch.uint8  # ids past the slots: background
    batch = torch.tensor([[[1, 2]], [[1, 2]]])  # [B, H, W] with a keep per row
    assert renumber_instance_ids(batch, torch.tensor([[True, True], [False, True]])).tolist() == [[[1, 2]], [[0, 1]]]
    with pytest.raises(ValueError, match="do not lead with"):
        renumber_instance_ids(batch, torch.tensor([[True, True, True]]))  # 1 keep row for 2 masks
