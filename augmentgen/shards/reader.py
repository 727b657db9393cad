"""Read shards back: samples or ``Batch``es, shuffled with a seeded buffer, split across DataLoader workers and DDP ranks.

Every consumer (``rank * num_workers + worker_id``) gets a disjoint part: whole shards when
there are at least as many shards as consumers, otherwise every ``consumers``-th sample.
The shuffle draws from ``derive_seed(seed, epoch, consumer)``, so an epoch reads the same
on any machine; call ``set_epoch`` between epochs. ``mixing.MixedDataset`` interleaves real
and synthetic samples at an exact ratio.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from augmentgen.core.batch import Batch
from augmentgen.core.rng import derive_seed
from augmentgen.pipeline.dataloader import split_pays, stack_chw
from augmentgen.shards.encoders import decode_image
from augmentgen.shards.manifest import read_manifest
from augmentgen.shards.tario import iter_tar

IMAGE_EXTS = ("png", "jpg", "jpeg", "webp", "npy")


def split_key(name: str) -> tuple[str, str]:
    """``"dir/000001-000002.image.png"`` -> ``("dir/000001-000002", "image.png")`` (webdataset's rule: first dot of the basename)."""
    slash = name.rfind("/") + 1
    dot = name.find(".", slash)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1 :]


def iter_raw_samples(path: str | Path) -> Iterator[dict[str, Any]]:
    """The samples of one tar as ``{"__key__": key, "__url__": path, ext: bytes, ...}``; strict about truncation."""
    where = str(path)
    current: dict[str, Any] | None = None
    with open(path, "rb") as f:
        for name, data in iter_tar(f, where):
            key, ext = split_key(name)
            if current is not None and current["__key__"] != key:
                yield current
                current = None
            if current is None:
                current = {"__key__": key, "__url__": where}
            current[ext] = data
    if current is not None:
        yield current


def decode_sample(raw: dict[str, Any]) -> dict[str, Any]:
    """Raw members to ``{"__key__", "image" HWC uint8, "label" int | None, "meta" dict, "boxes", "mask"}``.

    Raises ValueError naming the shard and member that does not decode.
    """
    where = f"{raw.get('__url__', 'shard')}: {raw['__key__']}"
    out: dict[str, Any] = {"__key__": raw["__key__"], "label": None, "meta": {}}
    image_ext = next(
        (e for e in raw if e.rsplit(".", 1)[-1] in IMAGE_EXTS and not e.startswith(("mask", "masks"))), None
    )
    if image_ext is None:
        raise ValueError(
            f"{where}: sample has no image member (members: {sorted(k for k in raw if not k.startswith('__'))})"
        )
    out["image"] = decode_image(raw[image_ext], image_ext, f"{where}.{image_ext}")
    try:
        if "cls" in raw:
            out["label"] = int(raw["cls"])
        if "json" in raw:
            out["meta"] = json.loads(raw["json"])
        if "boxes.json" in raw:
            out["boxes"] = json.loads(raw["boxes.json"])
    except ValueError as e:
        raise ValueError(f"{where}: a cls/json member does not parse ({e})") from e
    if "mask.png" in raw:
        out["mask"] = decode_image(raw["mask.png"], "png", f"{where}.mask.png")
    if "masks.npy" in raw:
        out["mask"] = decode_image(raw["masks.npy"], "npy", f"{where}.masks.npy")
    return out


def shard_paths(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """Shards of an output folder (done ones, in index order, from its manifest) or an explicit list / glob."""
    if isinstance(source, (str, Path)):
        p = Path(source)
        if p.is_dir():
            manifest = read_manifest(p)
            if manifest is not None:
                return [
                    p / manifest.shards[k].file
                    for k in sorted(manifest.shards)
                    if manifest.shards[k].state == "done"
                ]
            return sorted(p.glob("*.tar"))
        if any(ch in str(p) for ch in "*?["):
            return sorted(Path(x) for x in glob.glob(str(p)))
        return [p]
    return [Path(s) for s in source]


def consumer() -> tuple[int, int]:
    """``(id, count)`` of this reader among DDP ranks x DataLoader workers."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    info = get_worker_info()
    wid, nw = (0, 1) if info is None else (info.id, info.num_workers)
    return rank * nw + wid, world * nw


def collate(samples: list[dict[str, Any]]) -> Batch:
    """Decoded samples (same image size) to a Batch: ``[B, C, H, W]`` uint8 image, labels, keys and provenance in meta."""
    try:
        images = stack_chw([s["image"] for s in samples])
    except ValueError as e:
        raise ValueError(f"collate: samples {samples[0]['__key__']} to {samples[-1]['__key__']}: {e}") from e
    return _batch(samples, images)


def _batch(samples: list[dict[str, Any]], images: torch.Tensor) -> Batch:
    labels = [s["label"] for s in samples]
    label = None if any(lab is None for lab in labels) else torch.tensor(labels, dtype=torch.int64)
    meta = {"key": [s["__key__"] for s in samples], "provenance": [s.get("meta", {}) for s in samples]}
    return Batch(image=images, label=label, meta=meta)


def decode_batch(raws: list[dict[str, Any]]) -> Batch:
    """Raw samples (``iter_raw_samples``) decoded and collated: ``collate([decode_sample(r) for r in raws])``.

    Large images go into the batch's planes one by one as they are decoded, so a batch never holds
    all its decoded HWC images at once (38 MB for 256 at 224 px, drawn from fresh memory each batch).
    """
    first = decode_sample(raws[0])
    img = first["image"]
    h, w = img.shape[:2]
    c = img.shape[2] if img.ndim == 3 else 1
    if not split_pays(h, w, c, img.dtype):
        return collate([first, *(decode_sample(r) for r in raws[1:])])
    out = np.empty((len(raws), c, h, w), img.dtype)
    samples = []
    for i, raw in enumerate(raws):
        s = first if i == 0 else decode_sample(raw)
        im = s.pop("image")
        if im.shape != img.shape or im.dtype != img.dtype:
            raise ValueError(
                f"collate: sample {s['__key__']} is {im.shape} {im.dtype}, {first['__key__']} {img.shape} {img.dtype}"
            )
        cv2.split(np.ascontiguousarray(im), [out[i, k] for k in range(c)])
        samples.append(s)
    return _batch(samples, torch.from_numpy(out))


class ShardDataset(IterableDataset[Any]):
    """Samples (dicts) or Batches from shards, for a DataLoader.

    Args:
        shards: tar paths.
        shuffle: size of the seeded shuffle buffer (0 reads in order).
        seed: base seed of the shard order and buffer.
        batch_size: yield ``Batch``es of this many samples (None yields sample dicts).
        drop_last: drop a final short batch.
        rank, world_size: override DDP rank / world size (default: torch.distributed or env).

    Example:
        >>> ds = load("out/digits", shuffle=256, seed=0, batch_size=64)  # doctest: +SKIP
        >>> next(iter(ds)).image.shape  # doctest: +SKIP
        torch.Size([64, 1, 8, 8])
    """

    def __init__(
        self,
        shards: Sequence[Path],
        *,
        shuffle: int = 0,
        seed: int = 0,
        batch_size: int | None = None,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        if not shards:
            raise ValueError("ShardDataset: no shards to read")
        if shuffle < 0 or (batch_size is not None and batch_size < 1):
            raise ValueError(
                f"ShardDataset: shuffle must be >= 0 and batch_size >= 1, got {shuffle}, {batch_size}"
            )
        self.shards, self.shuffle, self.seed = list(shards), shuffle, seed
        self.batch_size, self.drop_last = batch_size, drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _consumer(self) -> tuple[int, int]:
        cid, count = consumer()
        if self.rank is None and self.world_size is None:
            return cid, count
        info = get_worker_info()
        wid, nw = (0, 1) if info is None else (info.id, info.num_workers)
        rank = self.rank if self.rank is not None else 0
        world = self.world_size if self.world_size is not None else 1
        return rank * nw + wid, world * nw

    def samples(self) -> Iterator[dict[str, Any]]:
        """This consumer's decoded samples for the current epoch, shuffled when asked."""
        for raw in self.raw_samples():
            yield decode_sample(raw)

    def raw_samples(self) -> Iterator[dict[str, Any]]:
        """What ``samples`` yields, still encoded (``iter_raw_samples``' dicts of member bytes).

        The shuffle buffer holds these, not decoded images: a PNG is about half its pixels' size
        and a JPEG a tenth, so a buffer of 5,000 224 px images takes 0.4 GB (PNG) instead of 0.75.
        """
        me, count = self._consumer()
        order = list(range(len(self.shards)))
        rng = np.random.Generator(np.random.PCG64(derive_seed(self.seed, self.epoch, "shards")))
        if self.shuffle:
            order = rng.permutation(len(self.shards)).tolist()
        by_shard = len(self.shards) >= count
        mine = order[me::count] if by_shard else order

        def stream() -> Iterator[dict[str, Any]]:
            j = 0
            for s in mine:
                for raw in iter_raw_samples(self.shards[s]):
                    if by_shard or j % count == me:
                        yield raw
                    j += 1

        if not self.shuffle:
            yield from stream()
            return
        buf_rng = np.random.Generator(np.random.PCG64(derive_seed(self.seed, self.epoch, "buffer", me)))
        buf: list[dict[str, Any]] = []
        for s in stream():
            if len(buf) < self.shuffle:
                buf.append(s)
                continue
            k = int(buf_rng.integers(len(buf)))
            buf[k], s = s, buf[k]
            yield s
        order_left = buf_rng.permutation(len(buf))
        for k in order_left:
            yield buf[int(k)]

    def __iter__(self) -> Iterator[Any]:
        if self.batch_size is None:
            yield from self.samples()
            return
        chunk: list[dict[str, Any]] = []
        for raw in self.raw_samples():
            chunk.append(raw)
            if len(chunk) == self.batch_size:
                yield decode_batch(chunk)
                chunk = []
        if chunk and not self.drop_last:
            yield decode_batch(chunk)


def load(
    source: str | Path | Sequence[str | Path],
    *,
    shuffle: int = 0,
    seed: int = 0,
    batch_size: int | None = None,
    drop_last: bool = False,
    rank: int | None = None,
    world_size: int | None = None,
) -> ShardDataset:
    """Open shards (an output folder, a glob, or a list of tars) as a ``ShardDataset``.

    Example:
        >>> for sample in load("out/digits"):  # doctest: +SKIP
        ...     sample["image"].shape, sample["label"], sample["meta"]["seed"]
    """
    paths = shard_paths(source)
    if not paths:
        raise ValueError(f"load: no shards found at {source}")
    return ShardDataset(
        paths,
        shuffle=shuffle,
        seed=seed,
        batch_size=batch_size,
        drop_last=drop_last,
        rank=rank,
        world_size=world_size,
    )
