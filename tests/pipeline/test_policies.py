"""TrivialAugment: one op per image (or none, 1 in 14), magnitudes in TrivialAugmentWide's ranges, seeded and replayable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import augmentgen.ops  # noqa: F401
from augmentgen.data.photos import load_photo
from augmentgen.pipeline import Pipeline, TrivialAugment
from augmentgen.pipeline.policies import WIDE_ROTATE, WIDE_SHEAR_DEG


def test_one_op_per_image_uniformly_with_the_identity_as_the_fourteenth() -> None:
    pipe = Pipeline([TrivialAugment()])
    x = torch.rand(2800, 3, 8, 8)
    _, trace = pipe(x, rng=torch.Generator().manual_seed(0), return_trace=True)
    applied = np.stack([np.asarray(s.params.applied) for s in trace.steps])  # [13 ops, B]
    assert applied.shape == (13, 2800) and (applied.sum(0) <= 1).all()  # never two ops on one image
    counts = np.append(applied.sum(1), (applied.sum(0) == 0).sum())  # 13 ops, then the identity
    assert counts.sum() == 2800 and (np.abs(counts - 200) < 60).all(), counts  # 1/14 each (binomial sd ~13)
    by_name = {type(s.leaf).__name__: s for s in trace.steps}
    angles = np.asarray(by_name["Rotate"].params.angle)[np.asarray(by_name["Rotate"].params.applied)]
    assert np.abs(angles).max() <= WIDE_ROTATE and np.abs(angles).max() > 100  # the wide range, both signs
    assert (angles < 0).any() and (angles > 0).any()
    bits = np.asarray(by_name["Posterize"].params.bits)
    assert set(bits.tolist()) == set(range(2, 9))
    shear = [s for s in trace.steps if type(s.leaf).__name__ == "Shear"][0]
    assert np.abs(np.asarray(shear.params.shear_x)).max() <= WIDE_SHEAR_DEG + 1e-4


def test_seeded_per_sample_and_round_trips_through_its_dict() -> None:
    img = load_photo("astronaut", 32)
    pipe = Pipeline.from_dict([{"name": "trivial_augment", "fill": 0.5, "translate": 0.2}], seed=3)
    again = Pipeline.from_dict(pipe.to_dict())
    outs = [pipe(img, index=i) for i in range(20)]
    assert all(np.array_equal(o, again(img, index=i)) for i, o in enumerate(outs))
    assert sum(not np.array_equal(o, img) for o in outs) >= 15  # most images changed, by different ops
    assert len({o.tobytes() for o in outs}) >= 15
    assert pipe.to_dict()["transforms"] == [{"name": "trivial_augment", "p": 1.0, "fill": 0.5, "translate": 0.2}]
    out, trace = pipe(img, index=7, return_trace=True)
    assert np.array_equal(pipe.replay(img, trace), out)


def test_p_zero_is_the_identity_and_bad_settings_are_named() -> None:
    img = load_photo("coffee", 16)
    assert all(np.array_equal(Pipeline([TrivialAugment(p=0.0)], seed=0)(img, index=i), img) for i in range(10))
    with pytest.raises(ValueError, match=r"trivial_augment\): unknown key\(s\) \['magnitude'\]"):
        Pipeline.from_dict([{"name": "trivial_augment", "magnitude": 9}])
    with pytest.raises(ValueError, match="trivial_augment.fill must be in"):
        Pipeline.from_dict([{"name": "trivial_augment", "fill": 2}])
