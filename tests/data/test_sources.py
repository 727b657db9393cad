"""Sources: Fashion-MNIST lookup, digits, image folders, balanced seeded subsets and splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from augmentgen.core import Batch
from augmentgen.data import (
    ArrayDataset,
    conform,
    load_digits,
    load_fashion_mnist,
    load_image_folder,
    subset_per_class,
    train_val_split,
    write_idx,
)
from augmentgen.data.sources import FASHION_MNIST_SYSTEM_DIR

HAVE_FMNIST = (FASHION_MNIST_SYSTEM_DIR / "t10k-images-idx3-ubyte.gz").is_file()


def _fake_fmnist(root: Path, n: int, split: str = "train", gz: bool = True) -> None:
    stem = "train" if split == "train" else "t10k"
    sfx = ".gz" if gz else ""
    rng = np.random.default_rng(0)
    write_idx(root / f"{stem}-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    write_idx(root / f"{stem}-labels-idx1-ubyte{sfx}", (np.arange(n) % 10).astype(np.uint8))


@pytest.mark.skipif(not HAVE_FMNIST, reason="Debian dataset-fashion-mnist not installed")
def test_fashion_mnist_from_system_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUGMENTGEN_DATA", raising=False)
    train = load_fashion_mnist("train")
    test = load_fashion_mnist("test")
    assert train.images.shape == (60000, 28, 28, 1) and test.images.shape == (10000, 28, 28, 1)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert train.num_classes == 10 and train.classes[0] == "T-shirt/top"
    assert train.class_counts().tolist() == [6000] * 10
    assert test.class_counts().tolist() == [1000] * 10
    img, lab = test[0]
    assert img.shape == (28, 28, 1) and isinstance(lab, int)
    assert lab == 9  # the first test image of Fashion-MNIST is an ankle boot


def test_fashion_mnist_root_wins_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _fake_fmnist(tmp_path / "a", 20, gz=False)
    _fake_fmnist(tmp_path / "b", 30)
    monkeypatch.setenv("AUGMENTGEN_DATA", str(tmp_path / "b"))
    assert len(load_fashion_mnist("train", root=tmp_path / "a")) == 20
    assert len(load_fashion_mnist("train")) == 30


def test_fashion_mnist_not_found_lists_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import augmentgen.data.sources as src

    monkeypatch.setenv("AUGMENTGEN_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(src, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "sys")
    monkeypatch.setattr(src, "_has_network", lambda *a, **k: False)
    with pytest.raises(ValueError) as e:
        load_fashion_mnist("test", root=tmp_path / "root")
    msg = str(e.value)
    for where in ("root", "env", "sys", "no network"):
        assert where in msg


def test_fashion_mnist_mismatched_files(tmp_path: Path) -> None:
    _fake_fmnist(tmp_path, 20)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    with pytest.raises(ValueError, match="19 labels for 20 images"):
        load_fashion_mnist("train", root=tmp_path, download=False)


def test_bad_split() -> None:
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("val")


def test_digits_split_is_deterministic_and_disjoint() -> None:
    tr, te = load_digits("train"), load_digits("test")
    assert len(tr) + len(te) == 1797
    assert tr.images.shape[1:] == (8, 8, 1) and tr.images.max() == 255
    assert set(te.class_counts().tolist()) <= {35, 36, 37, 38}
    np.testing.assert_array_equal(load_digits("test").labels, te.labels)
    other = load_digits("test", seed=1)
    assert not np.array_equal(other.images, te.images)


def test_to_batch_is_chw_float() -> None:
    ds = load_digits("test")
    b = ds.to_batch([3, 1])
    assert isinstance(b, Batch)
    assert b.image.shape == (2, 1, 8, 8) and b.image.dtype == torch.float32
    assert float(b.image.max()) <= 1.0
    np.testing.assert_allclose(b.image[0, 0].numpy(), ds.images[3, :, :, 0] / 255.0, rtol=1e-6)
    assert b.label is not None and b.label.tolist() == [int(ds.labels[3]), int(ds.labels[1])]
    assert ds.to_batch().batch_size == len(ds)
    u = ds.to_batch([3], uint8=True)
    assert u.image.dtype == torch.uint8 and torch.equal(u.as_float().image, b.image[:1])


def test_array_dataset_validates() -> None:
    with pytest.raises(ValueError, match="N, H, W, C"):
        ArrayDataset(np.zeros((2, 8, 8), np.uint8), np.zeros(2), ["a"])
    with pytest.raises(TypeError, match="uint8"):
        ArrayDataset(np.zeros((2, 8, 8, 1), np.float32), np.zeros(2), ["a"])
    with pytest.raises(ValueError, match="classes"):
        ArrayDataset(np.zeros((2, 8, 8, 1), np.uint8), np.array([0, 1]), ["a"])


@pytest.mark.parametrize("seed", [0, 1])
def test_subset_per_class_is_balanced_and_seeded(seed: int) -> None:
    ds = load_digits("train")
    a = subset_per_class(ds, 7, seed=seed)
    assert a.class_counts().tolist() == [7] * 10
    b = subset_per_class(ds, 7, seed=seed)
    np.testing.assert_array_equal(a.images, b.images)
    c = subset_per_class(ds, 7, seed=seed + 10)
    assert not np.array_equal(a.images, c.images)
    # rows are real rows of ds with their own labels
    first = a.images[0]
    match = np.flatnonzero((ds.images == first).all(axis=(1, 2, 3)))
    assert a.labels[0] in ds.labels[match]


def test_subset_too_few() -> None:
    ds = load_digits("test")
    with pytest.raises(ValueError, match="fewer than 100"):
        subset_per_class(ds, 100, seed=0)


def test_train_val_split() -> None:
    ds = load_digits("train")
    tr, va = train_val_split(ds, 0.25, seed=3)
    assert len(tr) + len(va) == len(ds)
    assert (va.class_counts() > 0).all()
    tr2, va2 = train_val_split(ds, 0.25, seed=3)
    np.testing.assert_array_equal(va.images, va2.images)
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(ds, 1.5)


def _write_png(p: Path, arr: np.ndarray) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(p)


def test_image_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    imgs = {}
    for cls in ("cat", "dog"):
        for i in range(3):
            a = rng.integers(0, 256, (6, 5), dtype=np.uint8)
            imgs[(cls, i)] = a
            _write_png(tmp_path / cls / f"{i}.png", a)
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    ds = load_image_folder(tmp_path)
    assert ds.classes == ["cat", "dog"]
    assert ds.images.shape == (6, 6, 5, 1)
    assert ds.class_counts().tolist() == [3, 3]
    np.testing.assert_array_equal(ds.images[4, :, :, 0], imgs[("dog", 1)])
    rgb = load_image_folder(tmp_path, mode="RGB", size=(4, 4))
    assert rgb.images.shape == (6, 4, 4, 3)


def test_image_folder_corrupt_image_named(tmp_path: Path) -> None:
    _write_png(tmp_path / "a" / "ok.png", np.zeros((4, 4), np.uint8))
    bad = tmp_path / "a" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match="broken.png"):
        load_image_folder(tmp_path)


def test_image_folder_size_mismatch_named(tmp_path: Path) -> None:
    _write_png(tmp_path / "a" / "0.png", np.zeros((4, 4), np.uint8))
    _write_png(tmp_path / "b" / "1.png", np.zeros((5, 4), np.uint8))
    with pytest.raises(ValueError, match="1.png"):
        load_image_folder(tmp_path)


def test_image_folder_empty(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no class subfolders"):
        load_image_folder(tmp_path)


def test_a_class_folder_without_images_is_named(tmp_path: Path) -> None:
    """A class no image stands for would be a label every model is built for and never sees."""
    _write_png(tmp_path / "a" / "0.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "readme.txt").write_text("images go here")
    (tmp_path / "c").mkdir()
    with pytest.raises(ValueError, match=r"class folder\(s\) \['b', 'c'\] under .* hold no images"):
        load_image_folder(tmp_path)


def test_conform_golden_resize_and_modes() -> None:
    # 4x4 -> 2x2 by area: each output pixel the mean of its 2x2 block
    img = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1) * 10
    ds = ArrayDataset(img, np.array([0]), ["a"], "g")
    small = conform(ds, size=2)
    assert small.images[0, :, :, 0].tolist() == [[25, 45], [105, 125]]
    # gray from RGB: ITU-R 601 weights, as PIL's convert("L")
    rgb = np.zeros((1, 4, 4, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    gray = conform(ArrayDataset(rgb, np.array([0]), ["a"]), mode="L")
    want = np.asarray(Image.fromarray(rgb[0]).convert("L"))
    assert gray.image_shape == (1, 4, 4)
    assert np.abs(gray.images[0, :, :, 0].astype(int) - want.astype(int)).max() <= 1
    back = conform(gray, mode="RGB", size=8)  # RGB from gray repeats the plane; up is bilinear
    assert back.image_shape == (3, 8, 8) and (back.images == back.images[..., :1]).all()
    assert conform(ds) is ds and conform(ds, size=4, mode="L") is ds  # nothing to change
    with pytest.raises(ValueError, match="mode"):
        conform(ds, mode="CMYK")


def _folder(root: Path, classes: tuple[str, ...], n: int, hw: tuple[int, int], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for c in classes:
        for i in range(n):
            _write_png(root / c / f"{i}.png", rng.integers(0, 256, (*hw, 3), dtype=np.uint8))


def test_recipe_data_section_resizes_an_image_folder_and_names_the_fix(tmp_path: Path) -> None:
    from augmentgen.eval.train_job import load_data
    from augmentgen.generators.config import DataSpec

    _folder(tmp_path / "train", ("a", "b", "c"), 10, (30, 40))
    spec = DataSpec(source="image_folder", root=str(tmp_path / "train"))
    with pytest.raises(ValueError, match=r"40x30.*set data.image_size \(e.g. 40\)"):
        load_data(spec)
    with pytest.raises(ValueError, match=r"data.n_per_class=9: .*fewer than 9"):
        load_data(spec.model_copy(update={"image_size": 16, "n_per_class": 9}))  # 8 a class after the split
    train, test = load_data(spec.model_copy(update={"image_size": 16, "n_per_class": 5}))
    assert train.image_shape == test.image_shape == (3, 16, 16)
    assert train.class_counts().tolist() == [5, 5, 5] and len(test) == 6  # 20% of 30, stratified
    train, test = load_data(spec.model_copy(update={"image_size": 16, "mode": "L", "test_fraction": 0.5}))
    assert train.image_shape == (1, 16, 16) and len(train) == len(test) == 15
    # a separate test folder: all of root trains, the test set is that folder in the same size and mode
    _folder(tmp_path / "test", ("a", "b", "c"), 4, (20, 20), seed=1)
    train, test = load_data(spec.model_copy(update={"image_size": 16, "test_root": str(tmp_path / "test")}))
    assert len(train) == 30 and len(test) == 12 and test.image_shape == (3, 16, 16)
    _folder(tmp_path / "other", ("a", "b", "d"), 2, (16, 16))
    with pytest.raises(ValueError, match=r"data.test_root .*other.*differ"):
        load_data(spec.model_copy(update={"image_size": 16, "test_root": str(tmp_path / "other")}))


def test_image_folder_of_large_jpegs_resizes_as_it_reads(tmp_path: Path) -> None:
    """Camera-sized JPEGs are decoded at a reduced scale and resized one at a time: close to a full decode."""
    import cv2
    import skimage.data

    photo = cv2.resize(skimage.data.astronaut(), (1600, 1200), interpolation=cv2.INTER_CUBIC)
    for i in range(3):
        (tmp_path / "a").mkdir(exist_ok=True)
        Image.fromarray(np.roll(photo, 40 * i, axis=1)).save(tmp_path / "a" / f"{i}.jpg", quality=92)
    ds = load_image_folder(tmp_path, size=(48, 64))
    assert ds.images.shape == (3, 48, 64, 3)
    for i in range(3):
        with Image.open(tmp_path / "a" / f"{i}.jpg") as im:
            full = np.asarray(im.convert("RGB").resize((64, 48), Image.Resampling.BILINEAR))  # a full decode
        assert np.abs(ds.images[i].astype(int) - full.astype(int)).mean() < 1.0  # within rounding, on average
