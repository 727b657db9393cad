"""One shard: pure function of (recipe, seed, i), reproducible tar metadata, provenance that replays, bad rows rejected."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from augmentgen.core.batch import Batch, Boxes
from augmentgen.core.rng import derive_seed, torch_rng
from augmentgen.shards.build import build_source
from augmentgen.shards.commit import DiskFullError, ShardRecord, commit_shard
from augmentgen.shards.config import ShardsConfig, recipe_from_dict
from augmentgen.shards.encoders import decode_image
from augmentgen.shards.reader import decode_sample, iter_raw_samples
from augmentgen.shards.sources import DatasetSource, GeneratorSource, ShardTask
from augmentgen.shards.writer import ShardFailure, ShardWriter

from .toy import ToyGenerator, make_recipe, noise_dataset, tar_digests


def _write(
    out: Path, indices: list[int], *, threads: int = 1, queue: int = 0, **layout: Any
) -> list[ShardRecord | ShardFailure]:
    recipe = make_recipe(**layout)
    out.mkdir(parents=True, exist_ok=True)
    with ShardWriter(build_source(recipe), recipe.shards, out, threads=threads, queue=queue) as w:
        return list(w.write_many(indices))


def test_a_shard_is_the_same_bytes_alone_in_any_order_with_any_threads(tmp_path: Path) -> None:
    _write(tmp_path / "all", [0, 1, 2, 3])
    _write(tmp_path / "alone", [2], threads=3, queue=1)
    _write(tmp_path / "reverse", [3, 1, 2, 0], threads=2)
    full = tar_digests(tmp_path / "all")
    assert len(full) == 4 and len(set(full.values())) == 4
    assert tar_digests(tmp_path / "alone") == {"toy-000002.tar": full["toy-000002.tar"]}
    assert tar_digests(tmp_path / "reverse") == full
    _write(tmp_path / "other-seed", [2], seed=1)
    assert tar_digests(tmp_path / "other-seed")["toy-000002.tar"] != full["toy-000002.tar"]


def test_record_matches_the_file(tmp_path: Path) -> None:
    (rec,) = _write(tmp_path, [1])
    assert isinstance(rec, ShardRecord)
    data = (tmp_path / rec.file).read_bytes()
    assert rec.sha256 == hashlib.sha256(data).hexdigest() and rec.bytes == len(data)
    assert rec.samples == 20 and sum(rec.classes.values()) == 20
    assert not list(tmp_path.glob("*.tmp.*"))


def test_members_are_sorted_with_fixed_metadata(tmp_path: Path) -> None:
    _write(tmp_path, [0])
    with tarfile.open(tmp_path / "toy-000000.tar") as tf:
        infos = tf.getmembers()
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {(0, 0, 0, "", "", 0o444)}
    names = [i.name for i in infos]
    assert names[:3] == ["000000-000000.cls", "000000-000000.image.png", "000000-000000.json"]
    assert names == sorted(names) and len(names) == 3 * 20


def test_dataset_provenance_points_at_the_source_row(tmp_path: Path) -> None:
    _write(tmp_path, [3])
    ds = noise_dataset(48, 16)
    task = ShardTask.make(3, size=20, base_seed=0, batch_size=8)
    for k, raw in enumerate(iter_raw_samples(tmp_path / "toy-000003.tar")):
        s = decode_sample(raw)
        meta = s["meta"]
        assert s["__key__"] == f"000003-{k:06d}"
        assert (meta["shard"], meta["index"], meta["row"]) == (3, k, k % 8)
        assert meta["seed"] == derive_seed(task.seed, "batch", k // 8)
        assert np.array_equal(s["image"], ds.images[meta["source_index"]])
        assert s["label"] == meta["label"] == ds.labels[meta["source_index"]]


def test_dataset_order_is_a_permutation_per_pass() -> None:
    ds = noise_dataset(10, 4)
    src = DatasetSource(ds.images, ds.labels)
    first, second = src.indices(0, 10, 7), src.indices(10, 10, 7)
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(10))
    assert first.tolist() != second.tolist()
    assert np.array_equal(src.indices(5, 10, 7), np.concatenate([first[5:], second[:5]]))
    assert DatasetSource(ds.images, ds.labels, order="sequential").indices(8, 4, 0).tolist() == [8, 9, 0, 1]


@pytest.fixture
def toy_generator_dir(tmp_path: Path) -> Path:
    d = tmp_path / "toy-gen"
    ToyGenerator(num_classes=4, size=8).save_pretrained(d)
    return d


def test_generator_provenance_replays_each_sample(tmp_path: Path, toy_generator_dir: Path) -> None:
    recipe = recipe_from_dict(
        {
            "shards": {"name": "gen", "count": 2, "size": 12, "batch_size": 5},
            "source": {
                "kind": "generator",
                "target": "shards.toy:ToyGenerator",
                "path": str(toy_generator_dir),
                "classes": 4,
            },
        }
    )
    out = tmp_path / "out"
    out.mkdir()
    with ShardWriter(build_source(recipe), recipe.shards, out) as w:
        rec = w.write(1)
    assert rec.classes == {
        "0": 3,
        "1": 3,
        "2": 3,
        "3": 3,
    }  # labels cycle over the global index: exact balance
    gen = ToyGenerator.from_pretrained(toy_generator_dir)
    weights = hashlib.sha256((toy_generator_dir / "model.safetensors").read_bytes()).hexdigest()
    samples = [decode_sample(r) for r in iter_raw_samples(out / "gen-000001.tar")]
    for s in samples:
        meta = s["meta"]
        assert meta["generator"] == {
            "name": "shards.toy:ToyGenerator",
            "version": "0.1.0",
            "weights_sha256": weights,
        }
        assert meta["condition"] == s["label"] == (12 + meta["index"]) % 4
        assert isinstance(meta["filter_score"], float)
        n = 5 if meta["index"] < 10 else 2
        first = meta["index"] - meta["row"]
        labels = torch.tensor([(12 + first + r) % 4 for r in range(n)])
        again = gen.generate(labels, n, torch_rng(meta["seed"], "generate")).image[meta["row"]]
        expect = (again.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert np.array_equal(s["image"], expect)


def test_nan_and_out_of_range_rows_are_rejected_and_counted(tmp_path: Path) -> None:
    gen = ToyGenerator(num_classes=4, size=8, nan_class=1, range_class=2)
    src = GeneratorSource(gen, class_ids=[0, 1, 2, 3], info={"name": "toy"})
    with ShardWriter(src, ShardsConfig(name="bad", count=1, size=16, batch_size=8), tmp_path) as w:
        rec = w.write(0)
    assert rec.samples == 8 and rec.rejected == {"nan": 4, "range": 4}
    assert rec.classes == {"0": 4, "3": 4}
    keys = [s["__key__"] for s in iter_raw_samples(tmp_path / "bad-000000.tar")]
    assert keys == [f"000000-{k:06d}" for k in range(16) if k % 4 in (0, 3)]


class _TracingPipeline:
    """A stand-in for ``Pipeline``: inverts images and returns per-sample params in a trace."""

    class _Trace:
        def __init__(self, n: int) -> None:
            self.n = n

        def per_sample(self) -> list[dict[str, Any]]:
            return [{"0:invert": {"k": i}} for i in range(self.n)]

    def __call__(self, batch: Batch, *, rng: torch.Generator, return_trace: bool = False) -> Any:
        out = batch.replace(image=1.0 - batch.image)
        return (out, self._Trace(batch.batch_size)) if return_trace else out


def test_pipeline_runs_and_its_params_land_in_provenance(tmp_path: Path) -> None:
    ds = noise_dataset(16, 4)
    src = DatasetSource(ds.images, ds.labels, pipeline=_TracingPipeline())
    with ShardWriter(src, ShardsConfig(name="p", count=1, size=6, batch_size=4), tmp_path) as w:
        w.write(0)
    for s in map(decode_sample, iter_raw_samples(tmp_path / "p-000000.tar")):
        assert s["meta"]["ops"] == {"0:invert": {"k": s["meta"]["row"]}}
        assert np.array_equal(s["image"], 255 - ds.images[s["meta"]["source_index"]])


def test_real_pipeline_params_are_recorded(tmp_path: Path) -> None:
    import augmentgen.ops  # noqa: F401
    from augmentgen.core.registry import OPS

    if "brightness" not in OPS:
        pytest.skip("the brightness op is not registered yet")
    recipe = make_recipe(count=1, size=8)
    recipe = recipe.model_copy(update={"pipeline": {"transforms": [{"name": "brightness", "p": 1.0}]}})
    with ShardWriter(build_source(recipe), recipe.shards, tmp_path) as w:
        w.write(0)
    metas = [decode_sample(r)["meta"] for r in iter_raw_samples(tmp_path / "toy-000000.tar")]
    assert all(set(m["ops"]) == {"0:brightness"} for m in metas)


class _BoxSource:
    """Batches with boxes and a one-plane mask (for the extra members)."""

    def describe(self) -> dict[str, Any]:
        return {"kind": "boxes"}

    def batches(self, task: ShardTask) -> Iterator[Batch]:
        for j, (_, n) in enumerate(task.spans()):
            boxes = Boxes.from_list([torch.tensor([[1.0, 2.0, 5.0, 6.0]])] * n, [torch.tensor([7])] * n)
            masks = torch.zeros(n, 1, 8, 8, dtype=torch.uint8)
            masks[:, :, 2:6, 1:5] = 1
            yield Batch(
                image=torch.rand(n, 3, 8, 8, generator=torch_rng(task.seed, j)), boxes=boxes, masks=masks
            )


def test_boxes_and_masks_are_written_when_present(tmp_path: Path) -> None:
    with ShardWriter(_BoxSource(), ShardsConfig(name="b", count=1, size=3), tmp_path) as w:
        w.write(0)
    raws = list(iter_raw_samples(tmp_path / "b-000000.tar"))
    assert sorted(k for k in raws[0] if not k.startswith("__")) == [
        "boxes.json",
        "image.png",
        "json",
        "mask.png",
    ]
    s = decode_sample(raws[0])
    assert s["boxes"] == [[1.0, 2.0, 5.0, 6.0, 7]] and s["label"] is None
    assert int(s["mask"].sum()) == 16 and json.loads(raws[0]["json"])["index"] == 0


class _FailingSource:
    def __init__(self, bad: int) -> None:
        self.inner = DatasetSource(*_noise_arrays())
        self.bad = bad

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def batches(self, task: ShardTask) -> Iterator[Batch]:
        for j, b in enumerate(self.inner.batches(task)):
            if task.index == self.bad and j == 1:
                raise RuntimeError("source broke mid-shard")
            yield b


def _noise_arrays() -> tuple[np.ndarray, np.ndarray]:
    ds = noise_dataset(16, 4)
    return ds.images, ds.labels


def test_a_failing_shard_leaves_nothing_and_the_others_are_written(tmp_path: Path) -> None:
    with ShardWriter(
        _FailingSource(bad=1), ShardsConfig(name="f", count=3, size=10, batch_size=4), tmp_path
    ) as w:
        results = list(w.write_many([0, 1, 2]))
        with pytest.raises(RuntimeError, match="source broke"):
            w.write(1)
    assert [type(r).__name__ for r in results] == ["ShardRecord", "ShardFailure", "ShardRecord"]
    assert isinstance(results[1], ShardFailure) and "source broke" in results[1].text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f-000000.tar", "f-000002.tar"]


def test_torchvision_jpeg_encoder_writes_decodable_members(tmp_path: Path) -> None:
    _write(tmp_path, [0], format="jpg", jpeg_encoder="torchvision")
    raw = next(iter_raw_samples(tmp_path / "toy-000000.tar"))
    assert decode_image(raw["image.jpg"], "jpg").shape == (16, 16, 3)
    assert io.BytesIO(raw["image.jpg"]).read(2) == b"\xff\xd8"


def test_golden_bytes_of_an_npy_shard(tmp_path: Path) -> None:
    """Codec-free shards (npy members) pin the whole layout: keys, member order, provenance json, tar headers."""
    recipe = make_recipe(count=2, size=6, batch_size=4, format="npy", options={"n": 8, "size": 4})
    with ShardWriter(build_source(recipe), recipe.shards, tmp_path) as w:
        w.write(0)
        w.write(1)
    assert tar_digests(tmp_path) == {
        "toy-000000.tar": "6d6746746bb16ce03f6772ddc14fa58fb06d02a9f248ff5fd7442e2e82bb7129",
        "toy-000001.tar": "6e28a87e6d7448ca3af6a5623bfd4d6ee00ac96ed0b8f8fbdd825702ea44b750",
    }


class _ScoringSource:
    """Wraps a source the way a filter does: drops a row and adds per-sample scores to the batch meta."""

    def __init__(self) -> None:
        ds = noise_dataset(16, 4)
        self.inner = DatasetSource(ds.images, ds.labels)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "filters": "drop row 0"}

    def batches(self, task: ShardTask) -> Iterator[Batch]:
        for b in self.inner.batches(task):
            kept = b.index(torch.arange(1, b.batch_size))
            yield kept.replace(meta={**kept.meta, "filter_score": [0.5 + r for r in range(kept.batch_size)]})


def test_scores_added_by_a_wrapping_source_land_in_provenance(tmp_path: Path) -> None:
    with ShardWriter(_ScoringSource(), ShardsConfig(name="s", count=1, size=8, batch_size=4), tmp_path) as w:
        rec = w.write(0)
    assert rec.samples == 6
    metas = [decode_sample(r)["meta"] for r in iter_raw_samples(tmp_path / "s-000000.tar")]
    assert [m["filter_score"] for m in metas] == [0.5, 1.5, 2.5] * 2
    assert [m["row"] for m in metas] == [1, 2, 3] * 2  # the source's own rows survive the filter


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="posix_fadvise is Linux/BSD only")
@pytest.mark.parametrize("threads", [1, 2])
def test_each_shard_is_released_from_the_page_cache_after_its_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    events: list[tuple[str, str]] = []
    fsync, fadvise = os.fsync, os.posix_fadvise

    def name(fd: int) -> str:
        return Path(os.readlink(f"/proc/self/fd/{fd}")).name

    def record_fsync(fd: int) -> None:
        events.append(("fsync", name(fd)))
        fsync(fd)

    def record_fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        assert (offset, length, advice) == (0, 0, os.POSIX_FADV_DONTNEED)  # the whole file
        events.append(("release", name(fd)))
        fadvise(fd, offset, length, advice)

    monkeypatch.setattr(os, "fsync", record_fsync)
    monkeypatch.setattr(os, "posix_fadvise", record_fadvise)
    records = _write(tmp_path, [0, 1, 2], threads=threads)
    shard_events = [(what, n) for what, n in events if ".tar" in n]
    for rec in records:
        assert isinstance(rec, ShardRecord)
        mine = [what for what, n in shard_events if n.startswith(rec.file)]
        assert mine == ["fsync", "release"], (rec.file, shard_events)  # released once, after the data is on disk
        data = (tmp_path / rec.file).read_bytes()  # read back from the disk: whole and unchanged
        assert hashlib.sha256(data).hexdigest() == rec.sha256


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="posix_fadvise is Linux/BSD only")
def test_a_file_system_that_refuses_the_advice_still_gets_its_shards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(fd: int, offset: int, length: int, advice: int) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "posix_fadvise", refuse)
    records = _write(tmp_path / "refused", [0, 1])
    assert all(isinstance(r, ShardRecord) for r in records), records
    monkeypatch.undo()
    _write(tmp_path / "released", [0, 1])
    assert tar_digests(tmp_path / "refused") == tar_digests(tmp_path / "released")


def test_an_uncommitted_shard_is_whole_under_its_temporary_name_until_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = make_recipe()
    out = tmp_path / "out"
    out.mkdir()
    with ShardWriter(build_source(recipe), recipe.shards, out) as w:
        rec = w.write_uncommitted(1)
        again = w.write_uncommitted(2)
    assert rec.pending is not None and (out / rec.pending).exists() and not (out / rec.file).exists()
    assert hashlib.sha256((out / rec.pending).read_bytes()).hexdigest() == rec.sha256  # whole already
    done = commit_shard(out, rec)
    assert done.pending is None and not (out / rec.pending).exists()
    assert done == dataclasses.replace(rec, pending=None) and commit_shard(out, done) is done
    _write(tmp_path / "committed", [1])
    assert tar_digests(out) == tar_digests(tmp_path / "committed")
    # a full disk at the fsync: a DiskFullError naming the shard, and no file left under either name

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFullError, match="toy-000002.tar"):
        commit_shard(out, again)
    assert again.pending is not None and not (out / again.pending).exists() and not (out / again.file).exists()
