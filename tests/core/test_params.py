"""Params rows: ``rows`` and ``pick`` give one-row Params equal to ``select`` of that row."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from augmentgen.core.params import Params
from augmentgen.ops.geometric import RotateParams


def test_rows_and_pick_are_one_row_selects() -> None:
    p = RotateParams(applied=np.array([True, False, True, True]), angle=np.array([1.0, 2.0, 3.0, 4.0], np.float32))
    rows = p.rows(4)
    picked = p.pick([3, 0])
    for i, r in enumerate(rows):
        want = p.select(slice(i, i + 1))
        assert type(r) is RotateParams and r.fields().keys() == want.fields().keys()
        assert all(np.array_equal(a, b) for a, b in zip(r.fields().values(), want.fields().values(), strict=True))
    assert [float(r.angle[0]) for r in picked] == [4.0, 1.0] and picked[0].angle.shape == (1,)
    assert p.pick([]) == []
    t = Params(applied=torch.tensor([True, False]))
    assert torch.equal(t.pick([1])[0].applied, torch.tensor([False]))
    assert dataclasses.is_dataclass(picked[1])
