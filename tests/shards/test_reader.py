"""Reading back: plain webdataset and tar, seeded shuffles, disjoint splits over workers and ranks, mixing."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from torch.utils.data import DataLoader

from augmentgen.shards.config import RunConfig
from augmentgen.shards.distribute import write_shards
from augmentgen.shards.encoders import EncodeSpec, encode_image
from augmentgen.shards.mixing import MixedDataset, mix, real_image
from augmentgen.shards.reader import collate, decode_batch, load, shard_paths, split_key

from .toy import make_recipe, noise_dataset


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shards")
    write_shards(make_recipe(count=4, size=20), out, run=RunConfig(threads=1))
    return out


ALL_KEYS = {f"{i:06d}-{k:06d}" for i in range(4) for k in range(20)}


def test_plain_webdataset_reads_images_labels_and_provenance(shards: Path) -> None:
    urls = [str(p) for p in shard_paths(shards)]
    ds = wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("rgb")
    samples = list(ds)
    assert {s["__key__"] for s in samples} == ALL_KEYS
    s = samples[0]
    assert s["image.png"].shape == (16, 16, 3) and s["image.png"].dtype == np.float32
    assert s["cls"] == s["json"]["label"] and s["json"]["shard"] == 0


def test_plain_tar_lists_the_members(shards: Path) -> None:
    listing = subprocess.run(
        ["tar", "-tvf", str(shards / "toy-000001.tar")], capture_output=True, text=True, check=True
    )
    lines = listing.stdout.splitlines()
    assert len(lines) == 60 and lines[0].endswith("000001-000000.cls")
    assert all(line.startswith("-r--r--r--") and "1970-01-01" in line for line in lines)


def test_load_yields_samples_and_batches(shards: Path) -> None:
    samples = list(load(shards))
    assert [s["__key__"] for s in samples] == sorted(ALL_KEYS)
    assert samples[0]["image"].shape == (16, 16, 3) and samples[0]["meta"]["index"] == 0
    batches = list(load(shards, batch_size=32))
    assert [b.batch_size for b in batches] == [32, 32, 16]
    assert batches[0].image.shape == (32, 3, 16, 16) and batches[0].image.dtype == torch.uint8
    assert batches[0].label is not None and batches[0].meta["key"][:2] == ["000000-000000", "000000-000001"]
    assert [b.batch_size for b in load(shards, batch_size=32, drop_last=True)] == [32, 32]


def test_shuffle_is_seeded_per_epoch(shards: Path) -> None:
    def keys(seed: int, epoch: int) -> list[str]:
        ds = load(shards, shuffle=16, seed=seed)
        ds.set_epoch(epoch)
        return [s["__key__"] for s in ds]

    a = keys(0, 0)
    assert a == keys(0, 0) and set(a) == ALL_KEYS
    assert a != sorted(a) and a != keys(0, 1) and a != keys(1, 0)


@pytest.mark.parametrize("num_shards", [4, 1])
def test_dataloader_workers_and_ranks_split_without_duplicates(shards: Path, num_shards: int) -> None:
    paths = shard_paths(shards)[:num_shards]
    expected = {k for k in ALL_KEYS if int(k[:6]) < num_shards}
    seen: Counter[str] = Counter()
    for rank in range(2):
        ds = load(paths, shuffle=8, seed=3, rank=rank, world_size=2)
        loader = DataLoader(ds, batch_size=None, num_workers=2)
        seen.update(s["__key__"] for s in loader)
    assert set(seen) == expected and max(seen.values()) == 1


def test_mixed_dataset_keeps_an_exact_ratio(shards: Path) -> None:
    real = noise_dataset(30, 16)
    mixed = list(MixedDataset(real, load(shards, shuffle=8), ratio=0.25, seed=0))
    is_syn = [s["meta"].get("source") != "real" for s in mixed]
    assert len(mixed) == 40 and sum(is_syn) == 10  # one pass over 30 real rows, a quarter synthetic
    assert all(sum(is_syn[:k]) == int(k * 0.25) for k in range(len(mixed) + 1))
    reals = [s for s, syn in zip(mixed, is_syn, strict=True) if not syn]
    assert sorted(s["meta"]["source_index"] for s in reals) == list(range(30))
    many = list(MixedDataset(noise_dataset(300, 16), load(shards), ratio=0.5))
    assert sum(s["meta"].get("source") != "real" for s in many) == 300  # the 80 synthetic samples cycle


class _TupleDataset(torch.utils.data.Dataset[tuple[object, int]]):
    """A torchvision-style map data set: item i is ``(image, label)``, the image as ``kind`` gives it."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, kind: str) -> None:
        self.images, self.labels, self.kind = images, labels, kind

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[object, int]:
        img = self.images[i]
        if self.kind == "pil":
            return Image.fromarray(img), int(self.labels[i])
        chw = torch.from_numpy(img).permute(2, 0, 1)
        return (chw.float() / 255.0 if self.kind == "float" else chw), int(self.labels[i])


@pytest.mark.parametrize("kind", ["pil", "uint8", "float"])
def test_mixed_dataset_takes_a_map_style_dataset_of_tuples_in_dataloader_workers(shards: Path, kind: str) -> None:
    src = noise_dataset(30, 16, seed=5)
    real = _TupleDataset(src.images, src.labels, kind)
    mixed = MixedDataset(real, load(shards, shuffle=8), ratio=0.25, seed=1)
    loader = DataLoader(mixed, batch_size=8, collate_fn=collate, num_workers=2)
    seen: Counter[int] = Counter()
    synthetic = 0
    for batch in loader:
        assert batch.image.dtype == torch.uint8 and tuple(batch.image.shape[1:]) == (3, 16, 16)
        for r, prov in enumerate(batch.meta["provenance"]):
            if prov.get("source") != "real":
                synthetic += 1
                continue
            i = prov["source_index"]
            seen[i] += 1
            assert batch.meta["key"][r] == f"real-{i}" and int(batch.label[r]) == int(src.labels[i])
            assert torch.equal(batch.image[r], torch.from_numpy(src.images[i]).permute(2, 0, 1))  # pixels kept exactly
    assert sorted(seen) == list(range(30)) and max(seen.values()) == 1  # split across the workers, none twice
    assert synthetic == 10  # each worker keeps a quarter of its own stream synthetic: 15 real + 5 each


def test_mixed_dataset_reads_a_list_of_sample_dicts_and_names_a_bad_item(shards: Path) -> None:
    src = noise_dataset(6, 16, seed=2)
    gray = [{"image": src.images[i, :, :, 0], "label": int(src.labels[i])} for i in range(6)]
    out = [s for s in MixedDataset(gray, load(shards), ratio=0.5) if s["meta"].get("source") == "real"]
    assert sorted(s["meta"]["source_index"] for s in out) == list(range(6))
    assert all(s["image"].shape == (16, 16, 1) and s["image"].dtype == np.uint8 for s in out)
    own = [{"image": src.images[0], "label": 1, "meta": {"site": "a"}, "__key__": "mine"}]
    (s,) = [s for s in MixedDataset(own, load(shards), ratio=0.0)]
    assert s["__key__"] == "mine" and s["meta"] == {"source": "real", "source_index": 0, "site": "a"}
    with pytest.raises(TypeError, match=r"MixedDataset: real item 3: expected an image .*got str"):
        list(MixedDataset([(src.images[0], 0)] * 3 + [("not an image", 1)], load(shards), ratio=0.0))
    with pytest.raises(ValueError, match=r"real item 0: an image must be .* 1 or 3 channels, got shape \(16, 16, 4\)"):
        list(MixedDataset(iter([(np.zeros((16, 16, 4), np.uint8), 0)]), load(shards), ratio=0.0))


@given(
    hnp.arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 3]))),
)
@settings(max_examples=60, deadline=None)
def test_real_image_gives_the_same_pixels_for_every_form_of_an_image(img: np.ndarray) -> None:
    chw = torch.from_numpy(img).permute(2, 0, 1)
    forms = [img, chw, chw.float() / 255.0, Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)]
    if img.shape[2] == 1:
        forms.append(img[:, :, 0])
    for form in forms:
        out = real_image(form, "x")
        assert out.dtype == np.uint8 and out.flags.c_contiguous and np.array_equal(out, img)


@pytest.mark.parametrize("size", [16, 72])  # stacked in one pass / split into the batch's planes one by one
def test_batches_are_the_collated_samples_and_the_shuffle_keeps_its_order(tmp_path: Path, size: int) -> None:
    out = tmp_path / "s"
    write_shards(make_recipe(count=2, size=12, options={"n": 24, "size": size}), out, run=RunConfig(threads=1))
    samples = list(load(out, shuffle=7, seed=2))
    raws = list(load(out, shuffle=7, seed=2).raw_samples())  # the buffer shuffles encoded samples
    assert [r["__key__"] for r in raws] == [s["__key__"] for s in samples]
    batches = list(load(out, shuffle=7, seed=2, batch_size=10))
    assert [b.batch_size for b in batches] == [10, 10, 4]
    for k, b in enumerate(batches):
        want = collate(samples[10 * k : 10 * k + 10])
        assert torch.equal(b.image, want.image) and b.image.is_contiguous()
        assert torch.equal(b.label, want.label) and b.meta == want.meta
    mixed = [raws[0], {**raws[1], "image.png": encode_image(np.zeros((size, size + 1, 3), np.uint8), EncodeSpec("png"))}]
    with pytest.raises(ValueError, match=rf"collate: .*{raws[1]['__key__']}.* is \({size}, {size + 1}, 3\)"):
        decode_batch(mixed)


def test_mix_interleaves_two_streams() -> None:
    out = list(mix(({"r": i} for i in range(4)), ({"s": i} for i in range(100)), 1 / 3))
    assert ["s" in x for x in out] == [False, False, True, False, False, True]  # ends with the real stream
    with pytest.raises(ValueError, match="ratio must be in"):
        list(mix([], [], 1.0))


def test_split_key_follows_webdataset() -> None:
    assert split_key("a/000001-000002.image.png") == ("a/000001-000002", "image.png")
    assert split_key("k.cls") == ("k", "cls")


def test_corrupt_member_names_shard_and_sample(shards: Path, tmp_path: Path) -> None:
    data = bytearray((shards / "toy-000000.tar").read_bytes())
    start = data.index(b"\x89PNG")
    data[start : start + 40] = bytes(40)
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(data))
    with pytest.raises(
        ValueError, match=r"bad\.tar: 000000-000000\.image\.png: \d+ bytes do not decode as png"
    ):
        list(load(bad))
    bad.write_bytes(bytes(data[:3000]))
    with pytest.raises(ValueError, match=r"bad\.tar: .*truncated"):
        list(load(bad))


def test_collate_makes_contiguous_nchw_batches_and_names_samples_that_do_not_fit() -> None:
    rng = np.random.default_rng(0)
    samples = [
        {"__key__": f"k{i}", "image": rng.integers(0, 256, (70, 90, 3), dtype=np.uint8), "label": i, "meta": {"i": i}}
        for i in range(3)
    ]
    b = collate(samples)
    want = np.stack([s["image"] for s in samples]).transpose(0, 3, 1, 2)
    assert b.image.is_contiguous() and np.array_equal(b.image.numpy(), want)
    assert b.label is not None and b.label.tolist() == [0, 1, 2]
    assert b.meta["key"] == ["k0", "k1", "k2"] and b.meta["provenance"][2] == {"i": 2}
    samples[1]["image"] = samples[1]["image"][:60]
    with pytest.raises(ValueError, match="collate: samples k0 to k2: stack_chw: image 1"):
        collate(samples)
