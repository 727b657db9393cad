"""The batched per-sample path: a sample's result does not depend on the batch it is in."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import augmentgen.ops  # noqa: F401
from augmentgen.core.registry import OPS
from augmentgen.pipeline import Pipeline
from augmentgen.pipeline.dataloader import AugmentedDataset, EpochSampler
from augmentgen.pipeline.many import map_samples, vectorizable


def build(name: str, **kw: object) -> object:
    if name in ("resize", "random_resized_crop", "center_crop", "random_crop"):
        kw.setdefault("size", (12, 14))
    return OPS.get(name)(**kw)


def images(n: int, size: tuple[int, int] = (16, 20), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]


def _eq(a: object, b: object) -> bool:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        return all(_eq(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and bool(np.array_equal(a, b))
    return bool(a == b)


def _map_or_skip(name: str, pipe: Pipeline, xs: list[object], **kw: object) -> list[object]:
    """``map_samples``, skipping the test for batch-only ops (mosaic, copy-paste)."""
    try:
        return map_samples(pipe, xs, **kw)  # type: ignore[arg-type]
    except ValueError as e:
        if "no per-sample path" in str(e):
            pytest.skip(f"{name} is batch-only")
        raise


@pytest.mark.parametrize("name", OPS.names())
def test_every_op_gives_each_sample_the_same_result_alone_and_in_a_batch(name: str) -> None:
    op = build(name, p=1.0 if name == "normalize" else 0.7)
    pipe = Pipeline([op])
    if not vectorizable(pipe):
        pytest.skip(f"{name} is not drawn per row")
    xs = images(6)
    idx = [3, 17, 4, 99, 0, 5]
    many = _map_or_skip(name, pipe, xs, seed=11, epoch=2, indices=idx)
    for k, i in enumerate(idx):
        alone = map_samples(pipe, [xs[k]], seed=11, epoch=2, indices=[i])[0]
        assert _eq(many[k], alone), (name, k)


def test_default_pipeline_with_targets_matches_alone_and_moves_boxes() -> None:
    pipe = Pipeline.from_dict(
        [
            {"name": "rotate", "degrees": [-30, 30]},
            {"name": "random_resized_crop", "size": [12, 12], "scale": [0.5, 1.0]},
            {"name": "color_jitter", "brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.1},
            {"name": "gaussian_noise", "sigma": [0.01, 0.05], "p": 0.5},
            {"name": "horizontal_flip", "p": 0.5},
        ]
    )
    masks = np.zeros((1, 16, 20), np.uint8)
    masks[0, 4:12, 5:15] = 1
    xs = [
        {"image": im, "boxes": np.array([[5.0, 4.0, 15.0, 12.0]], np.float32), "masks": masks, "label": 1}
        for im in images(5)
    ] + images(3)
    idx = list(range(8))
    many = map_samples(pipe, xs, seed=0, epoch=0, indices=idx)
    for k in idx:
        assert _eq(many[k], map_samples(pipe, [xs[k]], seed=0, epoch=0, indices=[k])[0])
    assert all(o["image"].shape == (12, 12, 3) and o["masks"].shape == (1, 12, 12) for o in many[:5])
    assert (
        len({(o["image"] if isinstance(o, dict) else o).tobytes() for o in many}) == 8
    )  # every sample drew its own parameters


def test_mixed_sizes_and_epochs_group_correctly() -> None:
    pipe = Pipeline.from_dict([{"name": "affine", "degrees": [-20, 20], "translate": [0.1, 0.1]}])
    xs = images(3, (16, 20)) + images(3, (10, 12), seed=1)
    out = map_samples(pipe, xs, seed=5, epoch=[0, 1, 0, 1, 0, 1], indices=[0, 1, 2, 3, 4, 5])
    for k in range(6):
        alone = map_samples(pipe, [xs[k]], seed=5, epoch=k % 2, indices=[k])[0]
        assert np.array_equal(out[k], alone)
        assert out[k].shape == xs[k].shape


def test_bad_inputs_are_clear_errors() -> None:
    pipe = Pipeline.from_dict([{"name": "rotate", "degrees": [-5, 5]}])
    with pytest.raises(ValueError, match="indices"):
        map_samples(pipe, images(2), seed=0, epoch=0, indices=[0])
    with pytest.raises(TypeError, match="per-sample"):
        map_samples(pipe, [torch.zeros(3, 8, 8)], seed=0, epoch=0, indices=[0])


def test_dataset_batch_fetch_equals_item_fetch_and_dataloader_uses_it() -> None:
    pipe = Pipeline.from_dict(
        [
            {"name": "rotate", "degrees": [-15, 15]},
            {"name": "color_jitter", "brightness": 0.2, "contrast": 0.2, "saturation": 0.2},
            {"name": "gaussian_noise", "sigma": [0.03, 0.03]},
        ]
    )
    data = [(im, k % 3) for k, im in enumerate(images(20))]
    ds = AugmentedDataset(data, pipe, seed=3)
    keys = [(1, 7), (1, 2), (1, 19), (1, 0)]
    batch = ds.__getitems__(keys)
    for key, got in zip(keys, batch):
        x, y = ds[key]
        assert torch.equal(got[0], x) and got[1] == y
    loader = DataLoader(ds, batch_size=5, sampler=EpochSampler(len(ds), seed=1))
    first = torch.cat([b[0] for b in loader])
    items = torch.stack([ds[key][0] for key in EpochSampler(len(ds), seed=1)])
    assert torch.equal(first, items)


@pytest.mark.parametrize("name", OPS.names())
def test_bare_images_take_the_array_path_and_match_the_sample_path(name: str) -> None:
    """Bare images skip the per-step ``Sample`` bookkeeping; the pixels equal those of the target-carrying path."""
    op = build(name, p=1.0 if name == "normalize" else 0.7)
    pipe = Pipeline([op, build("gaussian_noise", sigma=(0.02, 0.06), p=0.6)])
    if not vectorizable(pipe):
        pytest.skip(f"{name} is not drawn per row")
    xs = images(5, (70, 90))  # above the RGBA-warp threshold for size-keeping geometric ops
    idx = [8, 1, 30, 2, 5]
    with_targets = [{"image": x, "boxes": np.zeros((0, 4), np.float32)} for x in xs]
    bare = _map_or_skip(name, pipe, xs, seed=4, epoch=1, indices=idx)
    full = map_samples(pipe, with_targets, seed=4, epoch=1, indices=idx)
    for k in range(5):
        assert isinstance(bare[k], np.ndarray)
        assert np.array_equal(bare[k], full[k]["image"]), (name, k)


@pytest.mark.parametrize("size", [(16, 20), (70, 90)])
def test_dataset_tensors_are_the_chw_of_the_augmented_arrays(size: tuple[int, int]) -> None:
    """Small outputs are transposed for the whole batch at once, large ones per image: both are plain CHW."""
    pipe = Pipeline.from_dict([{"name": "rotate", "degrees": [-15, 15]}, {"name": "gaussian_noise", "sigma": [0.02, 0.02]}])
    xs = images(6, size)
    ds = AugmentedDataset(xs, pipe, seed=2)
    got = ds.__getitems__(list(range(6)))
    want = map_samples(pipe, xs, seed=2, epoch=0, indices=list(range(6)))
    for g, w in zip(got, want):
        assert g.is_contiguous() and g.shape == (3, *size) and g.dtype == torch.uint8
        assert torch.equal(g, torch.from_numpy(w).permute(2, 0, 1))
