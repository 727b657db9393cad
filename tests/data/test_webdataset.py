"""Real data kept as WebDataset tars: read with the webdataset library, named, resized, and used by a recipe."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from augmentgen.data import load_digits
from augmentgen.data.webdataset import load_webdataset, read_webdataset, shard_files


def _bytes(img: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img.squeeze(-1) if img.shape[-1] == 1 else img).save(buf, format=fmt)
    return buf.getvalue()


def _write(folder: Path, images: list[np.ndarray], labels: list[int], per_tar: int, ext: str = "png") -> None:
    """Tars as webdataset users write them: ``KEY.png`` (or ``KEY.jpg``) and ``KEY.cls``."""
    folder.mkdir(parents=True, exist_ok=True)
    fmt = {"png": "PNG", "jpg": "JPEG"}[ext]
    for t in range(0, len(images), per_tar):
        with wds.TarWriter(str(folder / f"part-{t // per_tar:04d}.tar")) as w:
            for i in range(t, min(t + per_tar, len(images))):
                w.write({"__key__": f"s{i:05d}", ext: _bytes(images[i], fmt), "cls": labels[i]})


def test_read_back_exactly_what_was_written_in_tar_order(tmp_path: Path) -> None:
    d = load_digits("test")
    imgs = [(d.images[i].astype(np.uint16) * 255 // 16).astype(np.uint8) for i in range(50)]
    _write(tmp_path / "tars", imgs, d.labels[:50].tolist(), per_tar=16)
    assert [p.name for p in shard_files(tmp_path / "tars")] == [f"part-{i:04d}.tar" for i in range(4)]
    images, labels = read_webdataset(tmp_path / "tars")
    assert np.array_equal(images, np.stack(imgs)) and labels.tolist() == d.labels[:50].tolist()
    assert len(read_webdataset(tmp_path / "tars", limit=7)[0]) == 7
    ds = load_webdataset(tmp_path / "tars", classes=[f"digit {k}" for k in range(10)])
    assert ds.classes[3] == "digit 3" and ds.image_shape == (1, 8, 8) and ds.name == "webdataset:tars"
    assert load_webdataset(tmp_path / "tars").classes == [str(k) for k in range(10)]


def test_several_sizes_are_resized_when_asked_and_named_when_not(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(20, 30), (40, 40), (33, 17)]]
    _write(tmp_path / "t", imgs, [0, 1, 2], per_tar=2, ext="jpg")
    with pytest.raises(ValueError, match="several shapes.*size="):
        read_webdataset(tmp_path / "t")
    images, labels = read_webdataset(tmp_path / "t", size=16, mode="L")
    assert images.shape == (3, 16, 16, 1) and labels.tolist() == [0, 1, 2]


def test_bad_tars_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no shards"):
        read_webdataset(tmp_path)
    img = np.zeros((4, 4, 3), np.uint8)
    with wds.TarWriter(str(tmp_path / "a.tar")) as w:
        w.write({"__key__": "k0", "png": _bytes(img, "PNG")})
    with pytest.raises(ValueError, match=r"a.tar:k0: sample has no 'cls'"):
        read_webdataset(tmp_path)
    with wds.TarWriter(str(tmp_path / "a.tar")) as w:
        w.write({"__key__": "k1", "png": b"not a png", "cls": 0})
    with pytest.raises(ValueError, match=r"k1.png: image does not decode"):
        read_webdataset(tmp_path)
    with wds.TarWriter(str(tmp_path / "a.tar")) as w:
        w.write({"__key__": "k2", "png": _bytes(img, "PNG"), "cls": 3})
    with pytest.raises(ValueError, match="labels go up to 3 but 2 class names"):
        load_webdataset(tmp_path, classes=["a", "b"])


@pytest.mark.parametrize("cut", ["mid-block", "at a block boundary"])
def test_a_tar_cut_short_is_named_not_read_as_a_smaller_data_set(tmp_path: Path, cut: str) -> None:
    """tarfile (and so webdataset) reads a tar cut at a member boundary without a word; this reader refuses it."""
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(20)]
    _write(tmp_path / "t", imgs, [0] * 20, per_tar=10)
    assert len(read_webdataset(tmp_path / "t")[0]) == 20
    tar = tmp_path / "t" / "part-0001.tar"
    data = tar.read_bytes()
    keep = len(data) // 2 + (100 if cut == "mid-block" else 0)
    tar.write_bytes(data[: keep - keep % 512 + (100 if cut == "mid-block" else 0)])
    want = "not whole 512-byte blocks" if cut == "mid-block" else "no end-of-archive marker"
    with pytest.raises(ValueError, match=rf"part-0001.tar: truncated.*{want}"):
        read_webdataset(tmp_path / "t")


def test_a_tar_with_a_zeroed_member_header_is_named_not_read_as_fewer_samples(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(10)]
    _write(tmp_path / "t", imgs, [1] * 10, per_tar=10)
    tar = tmp_path / "t" / "part-0000.tar"
    data = bytearray(tar.read_bytes())
    with tarfile.open(tar) as tf:
        at = tf.getmembers()[8].offset  # the header of the fifth sample's first member
    data[at : at + 512] = bytes(512)
    tar.write_bytes(bytes(data))
    with tarfile.open(tar) as tf:
        assert len(tf.getmembers()) == 8  # tarfile: four whole samples and not a word
    with pytest.raises(ValueError, match=r"part-0000.tar: data after the end-of-archive marker"):
        read_webdataset(tmp_path / "t")


def test_a_recipe_trains_on_webdataset_tars(tmp_path: Path) -> None:
    from augmentgen.eval.train_job import load_data
    from augmentgen.generators.config import DataSpec

    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (12, 12, 3), dtype=np.uint8) for _ in range(60)]
    labels = [i % 3 for i in range(60)]
    _write(tmp_path / "train", imgs, labels, per_tar=25)
    spec = DataSpec(source="webdataset", root=str(tmp_path / "train"), classes=["cat", "dog", "owl"], n_per_class=8)
    train, test = load_data(spec)
    assert train.classes == test.classes == ["cat", "dog", "owl"]
    assert train.class_counts().tolist() == [8, 8, 8] and len(test) == 12  # a stratified fifth held out
    _write(tmp_path / "test", imgs[:9], labels[:9], per_tar=5)
    train, test = load_data(spec.model_copy(update={"test_root": str(tmp_path / "test"), "image_size": 16}))
    assert len(test) == 9 and test.image_shape == train.image_shape == (3, 16, 16)
    assert np.array_equal(test.labels, labels[:9]) and test.classes == ["cat", "dog", "owl"]
