"""The images every contender of the shard benchmark gets, the peers it is measured against and the encode ceiling.

- ``photo_dataset``: RGB uint8 crops of the scikit-image photos at one size, a label each.
- ``baseline``: the common practice, a Python loop calling ``webdataset.ShardWriter.write`` with
  PIL-encoded images (PIL defaults; quality 95 for JPEG) and the label, one process.
- ``raw_tar``: writing pre-encoded bytes only: ``tarfile``, ``webdataset.ShardWriter`` and
  augmentgen's ``tar_member``.
- ``encode_rate`` / ``encode_processes_rate``: the OpenCV encoder alone, on a thread or pool of
  threads / in forked processes (what the cores give at once): the ceiling.

Each returns a ``Rate``: samples/s of wall time and CPU us a sample over this process and the
children it waited for. ``augmentgen.bench.shards`` runs them next to augmentgen's writer.
"""

from __future__ import annotations

import io
import os
import resource
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from augmentgen.core.rng import sample_rng

POOL = 256  # distinct images per size: every contender cycles through the same ones

def photo_dataset(size: int = 32, n: int = 64, seed: int = 0) -> Any:
    """``n`` RGB crops of the scikit-image photos at ``size`` px, as an ``ArrayDataset`` (labels = photo id)."""
    from augmentgen.data import ArrayDataset
    from augmentgen.data.photos import PHOTOS, load_photo

    names = list(PHOTOS)
    rng = sample_rng(seed, 0, 0, "bench-shards")
    big = [load_photo(name, 256) for name in names]
    images = np.empty((n, size, size, 3), np.uint8)
    labels = np.empty(n, np.int64)
    for i in range(n):
        k = i % len(big)
        src = big[k] if big[k].ndim == 3 and big[k].shape[2] == 3 else np.repeat(big[k][..., :1], 3, axis=2)
        side = int(rng.integers(160, 257))
        y, x = int(rng.integers(0, 257 - side)), int(rng.integers(0, 257 - side))
        crop = src[y : y + side, x : x + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        images[i] = cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA)
        labels[i] = k
    return ArrayDataset(images, labels, names, f"bench-photos-{size}px")


Rate = tuple[float, float]  # (samples/s of wall time, CPU us per sample over all threads of this process)


def cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have ended (a forked pool's workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(n: int, fn: Callable[[], object]) -> Rate:
    t, c = time.perf_counter(), cpu_seconds()
    fn()
    return n / (time.perf_counter() - t), (cpu_seconds() - c) / n * 1e6


def pil_bytes(img: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    if fmt == "png":
        Image.fromarray(img).save(buf, format="PNG")
    else:
        Image.fromarray(img).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def baseline(images: np.ndarray, labels: np.ndarray, n: int, fmt: str, shard_size: int, out: Path) -> Rate:
    import webdataset as wds

    def run() -> None:
        with wds.ShardWriter(str(out / "base-%06d.tar"), maxcount=shard_size, verbose=0) as sink:
            for i in range(n):
                k = i % len(images)
                sink.write({"__key__": f"{i:08d}", fmt: pil_bytes(images[k], fmt), "cls": int(labels[k])})

    return timed(n, run)


def raw_tar(
    encoded: list[bytes], labels: np.ndarray, n: int, fmt: str, shard_size: int, out: Path
) -> dict[str, Rate]:
    import webdataset as wds

    from augmentgen.shards.tario import tar_end, tar_member

    def plain() -> None:
        for s in range(0, n, shard_size):
            with tarfile.open(out / f"plain-{s}.tar", "w") as tf:
                for i in range(s, min(n, s + shard_size)):
                    for ext, data in (
                        (fmt, encoded[i % len(encoded)]),
                        ("cls", b"%d" % labels[i % len(labels)]),
                    ):
                        ti = tarfile.TarInfo(f"{i:08d}.{ext}")
                        ti.size, ti.mtime = len(data), 0
                        tf.addfile(ti, io.BytesIO(data))

    def shardwriter() -> None:
        with wds.ShardWriter(str(out / "sw-%06d.tar"), maxcount=shard_size, verbose=0) as sink:
            for i in range(n):
                sink.write(
                    {
                        "__key__": f"{i:08d}",
                        fmt: encoded[i % len(encoded)],
                        "cls": int(labels[i % len(labels)]),
                    }
                )

    def ours() -> None:
        for s in range(0, n, shard_size):
            with open(out / f"ours-{s}.tar", "wb") as f:
                size = 0
                for i in range(s, min(n, s + shard_size)):
                    data = tar_member(f"{i:08d}.cls", b"%d" % labels[i % len(labels)]) + tar_member(
                        f"{i:08d}.{fmt}", encoded[i % len(encoded)]
                    )
                    f.write(data)
                    size += len(data)
                f.write(tar_end(size))

    return {
        "raw_tar_tarfile": timed(n, plain),
        "raw_tar_shardwriter": timed(n, shardwriter),
        "raw_tar_augmentgen": timed(n, ours),
    }


def encode_rate(images: np.ndarray, n: int, fmt: str, threads: int) -> Rate:
    from augmentgen.shards.encoders import EncodeSpec, encode_image

    spec = EncodeSpec(fmt, 95)
    if threads == 1:
        return timed(n, lambda: [encode_image(images[i % len(images)], spec) for i in range(n)])
    chunk = max(1, min(64, 65536 // (images.shape[1] * images.shape[2])))

    def job(s: int) -> None:
        for i in range(s, min(n, s + chunk)):
            encode_image(images[i % len(images)], spec)

    with ThreadPoolExecutor(threads) as pool:
        return timed(n, lambda: list(pool.map(job, range(0, n, chunk))))


def encode_processes_rate(images: np.ndarray, n: int, fmt: str, procs: int) -> Rate:
    """The encoder alone in ``procs`` forked processes at once (no GIL between them): what the cores give."""
    from augmentgen.shards.encoders import EncodeSpec, encode_image

    spec = EncodeSpec(fmt, 95)

    def run() -> None:
        pids = []
        for p in range(procs):
            pid = os.fork()
            if pid == 0:  # the child encodes its share and leaves without Python's clean-up
                code = 0
                try:
                    for i in range(p, n, procs):
                        encode_image(images[i % len(images)], spec)
                except BaseException:  # noqa: BLE001 - reported through the exit status
                    code = 1
                os._exit(code)
            pids.append(pid)
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            if status != 0:
                raise RuntimeError(f"an encoding process failed (status {status})")

    return timed(n, run)
