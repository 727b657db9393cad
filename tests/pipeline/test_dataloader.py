from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from augmentgen.core.batch import Batch
from augmentgen.pipeline import AugmentedDataset, BatchAugment, EpochSampler, Pipeline, make_loader

SPEC = [{"name": "rotate", "degrees": [-30, 30]}, {"name": "horizontal_flip", "p": 0.5},
        {"name": "color_jitter", "brightness": 0.3, "contrast": 0.3}, {"name": "gaussian_noise", "p": 0.5}]


class Images(Dataset[tuple[np.ndarray, int]]):
    def __init__(self, n: int = 24) -> None:
        rng = np.random.default_rng(0)
        self.x = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.x[i], i % 3


def epochs(num_workers: int, n_epochs: int = 2, persistent: bool = False) -> list[torch.Tensor]:
    loader = make_loader(Images(), Pipeline.from_dict(SPEC), seed=11, batch_size=5, num_workers=num_workers,
                         persistent_workers=persistent and num_workers > 0)
    out = []
    for _ in range(n_epochs):
        out.append(torch.cat([imgs for imgs, _ in loader]))
    return out


def test_augmented_epochs_do_not_depend_on_worker_count_and_differ_between_epochs() -> None:
    ref = epochs(0)
    assert ref[0].shape == (24, 3, 16, 16) and ref[0].dtype == torch.uint8
    assert not torch.equal(ref[0], ref[1])
    for w in (1, 2, 4):
        got = epochs(w)
        assert all(torch.equal(a, b) for a, b in zip(ref, got)), f"num_workers={w} differs"
    got = epochs(2, persistent=True)
    assert all(torch.equal(a, b) for a, b in zip(ref, got)), "persistent workers differ"


def test_epoch_sampler_shards_ranks_without_duplicates() -> None:
    seen = []
    for r in range(3):
        s = EpochSampler(10, seed=1, rank=r, world_size=3)
        seen += [i for _, i in s]
    assert sorted(seen) == list(range(10))
    s = EpochSampler(10, seed=1)
    a, b = [i for _, i in s], [i for _, i in s]
    assert sorted(a) == sorted(b) == list(range(10)) and a != b


def test_augmented_dataset_float_output_and_int_index() -> None:
    ds = AugmentedDataset(Images(), Pipeline.from_dict(SPEC), seed=2, output="float")
    x, y = ds[3]
    assert x.dtype == torch.float32 and x.shape == (3, 16, 16) and 0 <= float(x.min()) and float(x.max()) <= 1
    ds.set_epoch(0)
    assert torch.equal(ds[3][0], ds[(0, 3)][0])
    assert not torch.equal(ds[(0, 3)][0], ds[(1, 3)][0])


class SameImage(Dataset[torch.Tensor]):
    """A user's own dataset calling a pipeline as ``transform`` with no index."""

    def __init__(self) -> None:
        self.pipe = Pipeline.from_dict(SPEC, seed=0)
        self.img = np.full((16, 16, 3), 128, np.uint8)

    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.pipe(self.img))


def test_plain_transform_calls_in_workers_do_not_repeat_across_workers() -> None:
    loader = DataLoader(SameImage(), batch_size=4, num_workers=2)
    outs = torch.cat(list(loader))
    assert len({o.numpy().tobytes() for o in outs}) == 16


def test_batch_augment_is_deterministic_per_epoch_and_step() -> None:
    aug = BatchAugment(Pipeline.from_dict(SPEC), seed=4)
    x = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    a = aug(x, epoch=0, step=1)
    assert a.dtype == torch.float32
    assert torch.equal(a, aug(x, epoch=0, step=1))
    assert not torch.equal(a, aug(x, epoch=0, step=2))
    b = aug(Batch(x, label=torch.arange(8)), epoch=0, step=1)
    assert isinstance(b, Batch) and torch.equal(b.image, a)


@pytest.mark.parametrize("bad", ["nope"])
def test_bad_output_kind(bad: str) -> None:
    with pytest.raises(ValueError, match="output"):
        AugmentedDataset(Images(), Pipeline([]), output=bad)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, np.int32])
@pytest.mark.parametrize("shape", [(70, 90, 3), (70, 90, 4), (70, 90, 2), (70, 90, 1), (70, 90), (8, 9, 3), (70, 90, 6)])
def test_hwc_to_chw_equals_the_transpose(dtype: type, shape: tuple[int, ...]) -> None:
    from augmentgen.pipeline.dataloader import hwc_to_chw

    a = (np.random.default_rng(0).random(shape) * 200).astype(dtype)
    for arr in (a, a[:, ::2]):  # contiguous and strided
        t = hwc_to_chw(arr)
        want = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        assert t.is_contiguous() and t.dtype == torch.from_numpy(arr[:0]).dtype
        assert np.array_equal(t.numpy(), want)


@pytest.mark.parametrize("shape", [(28, 28), (28, 28, 1), (28, 28, 3), (300, 300, 3)])
def test_hwc_to_chw_of_a_read_only_array_copies_it_without_a_warning(shape: tuple[int, ...]) -> None:
    """``np.asarray`` of a PIL image is read-only; sharing it would make torch warn in every worker."""
    import warnings

    from augmentgen.pipeline.dataloader import hwc_to_chw

    a = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    a.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = hwc_to_chw(a)
    t += 1  # the tensor is the caller's to write
    want = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    assert np.array_equal(t.numpy(), (want + 1).astype(np.uint8))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.int32])
@pytest.mark.parametrize("shape", [(70, 90, 3), (70, 90, 4), (70, 90, 1), (70, 90), (8, 9, 3), (70, 90, 6)])
def test_stack_chw_equals_stack_then_transpose(dtype: type, shape: tuple[int, ...]) -> None:
    from augmentgen.pipeline.dataloader import stack_chw

    rng = np.random.default_rng(1)
    images = [(rng.random(shape) * 200).astype(dtype) for _ in range(3)]
    for batch in (images, [im[:, ::2] for im in images]):  # contiguous and strided
        t = stack_chw(batch)
        block = np.stack(batch)
        want = block[:, None] if block.ndim == 3 else block.transpose(0, 3, 1, 2)
        assert t.is_contiguous() and t.dtype == torch.from_numpy(block[:0]).dtype
        assert np.array_equal(t.numpy(), want)
    with pytest.raises(ValueError, match="stack_chw"):
        stack_chw([images[0], images[0][:-1]])
    with pytest.raises(ValueError, match="stack_chw"):
        stack_chw([])


@pytest.mark.parametrize("workers", [0, 2])
def test_a_batch_of_several_sizes_names_the_images_and_the_fix(workers: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    sizes = [(31, 31), (41, 31), (31, 31), (31, 52)]
    data = [(Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)), i) for i, hw in enumerate(sizes)]
    flip = Pipeline.from_dict([{"name": "horizontal_flip"}])
    loader = make_loader(data, flip, seed=0, batch_size=4, shuffle=False, num_workers=workers)
    with pytest.raises(ValueError, match=r"image 1 of the batch is \(3, 41, 31\), image 0 \(3, 31, 31\).*random_resized_crop"):
        next(iter(loader))
    crop = Pipeline.from_dict([{"name": "random_resized_crop", "size": [24, 24]}, {"name": "horizontal_flip"}])
    x, y = next(iter(make_loader(data, crop, seed=0, batch_size=4, shuffle=False, num_workers=workers)))
    assert x.shape == (4, 3, 24, 24) and y.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("workers", [0, 2])
def test_detection_dicts_collate_to_a_batch_that_the_mix_ops_take(workers: int) -> None:
    from augmentgen.pipeline import collate_detection

    rng = np.random.default_rng(0)
    data = []
    for i in range(6):
        k = i % 3  # 0, 1 or 2 boxes: ragged, and one image with none
        xy = rng.uniform(0, 20, (k, 2))
        mask = np.zeros((1, 32, 32), np.uint8)
        for j, (x, y) in enumerate(xy.astype(int)):
            mask[0, y : y + 8, x : x + 8] = j + 1
        data.append({"image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
                     "boxes": np.concatenate([xy, xy + 8], 1).astype(np.float32), "box_labels": np.arange(k) + 5,
                     "masks": mask, "label": i, "image_id": 100 + i})
    flip = Pipeline.from_dict([{"name": "horizontal_flip", "p": 1.0}])
    batches = list(make_loader(data, flip, seed=0, batch_size=3, shuffle=False, num_workers=workers))
    assert len(batches) == 2
    b = batches[0]
    assert b.image.shape == (3, 3, 32, 32) and b.image.dtype == torch.uint8
    assert b.boxes.xyxy.shape == (3, 2, 4) and b.boxes.valid.tolist() == [[False, False], [True, False], [True, True]]
    assert b.boxes.labels.tolist() == [[-1, -1], [5, -1], [5, 6]] and b.label.tolist() == [0, 1, 2]
    assert b.meta["image_id"] == [100, 101, 102] and b.masks.shape == (3, 1, 32, 32)
    x0, _, x1, _ = data[2]["boxes"][1]  # flipped: x -> 32 - x
    assert b.boxes.xyxy[2, 1, [0, 2]].tolist() == pytest.approx([32 - x1, 32 - x0])
    assert torch.equal(b.image[1], torch.from_numpy(data[1]["image"][:, ::-1].copy()).permute(2, 0, 1))
    mixed = BatchAugment(Pipeline.from_dict([{"name": "mosaic"}]), seed=0)(b, epoch=0, step=0)
    assert mixed.boxes.xyxy.shape == (3, 8, 4)  # 4N slots
    single = collate_detection([data[0] | {"image": torch.zeros(3, 32, 32)}])
    assert single.boxes.xyxy.shape == (1, 0, 4) and single.label.tolist() == [0]
    two = collate_detection([data[1] | {"image": torch.zeros(3, 32, 32)}, {"image": torch.zeros(3, 32, 32), "boxes": None}])
    assert two.boxes.valid.tolist() == [[True], [False]] and two.label is None and two.masks is None
