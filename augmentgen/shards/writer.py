"""Write one shard: source batches -> checked uint8 -> encode pool -> sequential tar -> atomic rename.

The caller's thread draws batches from the source (on its device) and quantizes them;
encode chunks run in a thread pool (OpenCV releases the GIL) and come back as finished tar
bytes, which the caller's thread appends in order. At most ``queue`` chunks are in flight,
so memory stays flat however many shards a writer makes. The tar goes to
``{name}-{i:06d}.tar.tmp.{pid}`` and is fsynced and renamed when whole.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
from collections import Counter, deque
from collections.abc import Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np
import torch

from augmentgen.core.batch import Batch
from augmentgen.shards.config import ShardsConfig
from augmentgen.shards.encoders import EncodeSpec, encode_image, encode_jpeg_torch, to_uint8
from augmentgen.shards.manifest import ShardEntry, fsync_dir
from augmentgen.shards.sources import ShardSource, ShardTask, jsonable
from augmentgen.shards.tario import BLOCK, tar_end, tar_header

logger = logging.getLogger(__name__)

TMP_MARK = ".tmp."
_ZEROS = bytes(BLOCK)


class DiskFullError(OSError):
    """The disk filled up while writing a shard; shards already done are kept."""


@dataclass(frozen=True)
class ShardRecord:
    """What a finished shard holds (goes into the manifest)."""

    index: int
    file: str
    samples: int
    classes: dict[str, int]
    sha256: str
    bytes: int
    rejected: dict[str, int] = field(default_factory=dict)

    def entry(self) -> ShardEntry:
        return ShardEntry(
            file=self.file,
            state="done",
            samples=self.samples,
            classes=self.classes,
            sha256=self.sha256,
            bytes=self.bytes,
            rejected=self.rejected,
        )


@dataclass(frozen=True)
class ShardFailure:
    """A shard that raised: its index and the error (its temporary file is already removed)."""

    index: int
    error: Exception

    @property
    def text(self) -> str:
        return f"{type(self.error).__name__}: {self.error}"


@dataclass
class _OpenShard:
    """A shard being written: its paths, open file, running hash and counts."""

    index: int
    final: Path
    tmp: Path
    file: BinaryIO | None = None
    hasher: Any = field(default_factory=hashlib.sha256)
    size: int = 0
    samples: int = 0
    classes: Counter[int] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)


@dataclass
class _Item:
    """One sample on its way to the tar: the image (array, or bytes when encoded on the GPU) and its members."""

    key: str
    image: np.ndarray | bytes
    label: int | None
    meta: dict[str, Any]
    boxes: list[list[float]] | None = None
    mask: np.ndarray | None = None


def _json_default(obj: Any) -> Any:
    v = jsonable(obj)
    if v is None:
        raise TypeError(f"provenance value of type {type(obj).__name__} has no JSON form")
    return v


# One encoder for every call: json.dumps with non-default options builds a new encoder each time.
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False, default=_json_default)


def _json_bytes(obj: Any) -> bytes:
    return _JSON.encode(obj).encode()


def _sample_members(it: _Item, img_name: str, img: bytes) -> list[tuple[str, bytes]]:
    """Members of one sample in name order: boxes.json, cls, image.*, json, mask.png / masks.npy."""
    members: list[tuple[str, bytes]] = []
    if it.boxes is not None:
        members.append(("boxes.json", _json_bytes(it.boxes)))
    if it.label is not None:
        members.append(("cls", b"%d" % it.label))
    members.append((img_name, img))
    members.append(("json", _json_bytes(it.meta)))
    if it.mask is not None:
        if it.mask.shape[0] == 1:
            members.append(("mask.png", encode_image(it.mask.transpose(1, 2, 0), EncodeSpec("png"))))
        else:
            members.append(("masks.npy", encode_image(it.mask.transpose(1, 2, 0), EncodeSpec("npy"))))
    return members


def encode_chunk(items: list[_Item], spec: EncodeSpec) -> bytes:
    """Tar bytes of ``items``, members of each sample sorted by name (runs in a pool thread)."""
    parts: list[bytes] = []
    img_name = "image." + spec.extension
    for it in items:
        img = it.image if isinstance(it.image, bytes) else encode_image(it.image, spec)
        prefix = it.key + "."
        for name, data in _sample_members(it, img_name, img):
            parts.append(tar_header(prefix + name, len(data)))
            parts.append(data)
            pad = -len(data) % BLOCK
            if pad:
                parts.append(_ZEROS[:pad])
    return b"".join(parts)


def _chunk_size(h: int, w: int) -> int:
    # About 64k pixels per pool task: small images share a task so the per-task overhead stays small.
    return max(1, min(64, 65536 // max(1, h * w)))


def _boxes_rows(batch: Batch) -> list[list[list[float]]] | None:
    if batch.boxes is None:
        return None
    xyxy, valid, labels = (
        t.detach().cpu() for t in (batch.boxes.xyxy, batch.boxes.valid, batch.boxes.labels)
    )
    return [
        [
            [*map(float, xyxy[r, k].tolist()), int(labels[r, k])]
            for k in range(xyxy.shape[1])
            if bool(valid[r, k])
        ]
        for r in range(xyxy.shape[0])
    ]


class ShardWriter:
    """Writes shards of one recipe into ``out``; one instance per process, reused across shards.

    Args:
        source: where samples come from.
        shards: the shard layout (size, format, seed, batch size, encoder settings).
        out: the output folder.
        threads: encode threads.
        queue: encode chunks in flight (0: enough for two batches, at least 4 per thread).

    Example:
        >>> with ShardWriter(source, ShardsConfig(count=2, size=100), Path("out")) as w:  # doctest: +SKIP
        ...     record = w.write(0)
    """

    def __init__(
        self, source: ShardSource, shards: ShardsConfig, out: str | Path, *, threads: int = 1, queue: int = 0
    ) -> None:
        if threads < 1:
            raise ValueError(f"ShardWriter.threads must be >= 1, got {threads}")
        self.source, self.shards, self.out = source, shards, Path(out)
        self.spec = EncodeSpec(shards.format, shards.quality, shards.png_compression)
        self.threads = threads
        self.queue = queue
        self._pool: ThreadPoolExecutor | None = None
        self._finisher: ThreadPoolExecutor | None = None

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for pool in (self._pool, self._finisher):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._finisher = None

    @property
    def finisher(self) -> ThreadPoolExecutor:
        if self._finisher is None:
            self._finisher = ThreadPoolExecutor(1, thread_name_prefix="augmentgen-fsync")
        return self._finisher

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="augmentgen-encode")
        return self._pool

    def task(self, index: int) -> ShardTask:
        if not 0 <= index < self.shards.count:
            raise ValueError(f"shard index {index} is outside [0, {self.shards.count}) of shards.count")
        return ShardTask.make(
            index, size=self.shards.size, base_seed=self.shards.seed, batch_size=self.shards.batch_size
        )

    def _items(self, batch: Batch, task: ShardTask, offset: int, rejected: Counter[str]) -> list[_Item]:
        n = batch.batch_size
        gpu_jpeg = self.spec.format == "jpg" and self.shards.jpeg_encoder == "torchvision"
        images, finite, ok = to_uint8(batch.image)
        if not ok.all():
            rejected["nan"] += int((~finite).sum())
            rejected["range"] += int((finite & ~ok).sum())
            logger.warning(
                "shard %d: rejected %d of %d generated rows (NaN/inf or outside [0, 1])",
                task.index,
                int((~ok).sum()),
                n,
            )
        encoded: dict[int, bytes] = {}
        if gpu_jpeg and ok.any():
            img = batch.image  # quantized again where it lives, so a CUDA batch is encoded on the GPU
            q = (
                img
                if img.dtype == torch.uint8
                else (torch.nan_to_num(img.float()).clamp(0, 1) * 255).round().to(torch.uint8)
            )
            rows = np.flatnonzero(ok)
            jpegs = encode_jpeg_torch(q[torch.from_numpy(rows).to(q.device)], self.shards.quality)
            encoded = dict(zip(rows.tolist(), jpegs, strict=True))
        labels = None if batch.label is None else batch.label.detach().cpu().tolist()
        prov = batch.meta.get("provenance")
        boxes = _boxes_rows(batch)
        masks = None if batch.masks is None else batch.masks.detach().cpu().to(torch.uint8).numpy()
        items: list[_Item] = []
        for r in range(n):
            if not ok[r]:
                continue
            k = offset + r
            meta = dict(prov[r]) if isinstance(prov, list) and r < len(prov) else {}
            meta.update(shard=task.index, index=k)
            label = None if labels is None else int(labels[r])
            if label is not None:
                meta["label"] = label
            items.append(
                _Item(
                    key=f"{task.index:06d}-{k:06d}",
                    image=encoded.get(r, images[r]),
                    label=label,
                    meta=meta,
                    boxes=None if boxes is None else boxes[r],
                    mask=None if masks is None else masks[r],
                )
            )
        return items

    def write(self, index: int) -> ShardRecord:
        """Write shard ``index`` under a temporary name, then rename it into place; returns its record."""
        with contextlib.closing(self.write_many([index])) as results:
            res = next(results)
        if isinstance(res, ShardFailure):
            raise res.error
        return res

    def write_many(self, indices: Iterable[int]) -> Generator[ShardRecord | ShardFailure, None, None]:
        """Write shards in order; each one's fsync and rename overlap the next one's encoding.

        Yields, in order, a ``ShardRecord`` per shard renamed into place or a ``ShardFailure``
        (its temporary file removed, nothing under its name); a failure does not stop the others.
        """
        finishing: deque[Future[ShardRecord | ShardFailure]] = deque()
        try:
            for i in indices:
                try:
                    shard = self._write_data(i)
                    fut = self.finisher.submit(self._finish, shard)
                except Exception as e:  # noqa: BLE001 - reported to the caller, who retries or records it
                    fut = Future()
                    fut.set_result(ShardFailure(i, self._explain(e, i)))
                finishing.append(fut)
                failure = fut.result() if fut.done() else None
                if isinstance(failure, ShardFailure) and isinstance(failure.error, DiskFullError):
                    break  # no point starting another shard on a full disk
                # At most two shards wait for their fsync: open files and dirty pages stay bounded.
                while finishing and (finishing[0].done() or len(finishing) > 2):
                    yield finishing.popleft().result()
            while finishing:
                yield finishing.popleft().result()
        finally:
            for fut in finishing:  # closed early: still finish what was written, nothing is left half-done
                fut.result()

    def _explain(self, e: Exception, index: int) -> Exception:
        if (
            isinstance(e, OSError)
            and not isinstance(e, DiskFullError)
            and e.errno in (errno.ENOSPC, errno.EDQUOT)
        ):
            err = DiskFullError(
                e.errno,
                f"no space left on the device of {self.out} while writing {self.shards.file_name(index)}; "
                "the shards already done are kept: free space and rerun with --resume",
            )
            err.__cause__ = e
            return err
        return e

    def _write_data(self, index: int) -> _OpenShard:
        task = self.task(index)
        final = self.out / self.shards.file_name(index)
        shard = _OpenShard(index, final, final.with_name(final.name + f"{TMP_MARK}{os.getpid()}"))
        pending: deque[Future[bytes]] = deque()
        f = open(shard.tmp, "wb", buffering=1 << 20)  # noqa: SIM115 - closed by _finish or below
        try:

            def flush_one() -> None:
                data = pending.popleft().result()
                f.write(data)
                shard.hasher.update(data)
                shard.size += len(data)

            position = 0  # rows seen so far, rejected ones included: keys stay put when a row is dropped
            for batch in self.source.batches(task):
                items = self._items(batch, task, position, shard.rejected)
                position += batch.batch_size
                shard.samples += len(items)
                shard.classes.update(it.label for it in items if it.label is not None)
                step = _chunk_size(*batch.size)
                # Enough chunks in flight to cover two batches: the pool keeps busy while the next batch is made.
                limit = self.queue or max(4 * self.threads, 2 * -(-self.shards.batch_size // step))
                for c in range(0, len(items), step):
                    pending.append(self.pool.submit(encode_chunk, items[c : c + step], self.spec))
                    while len(pending) >= limit:
                        flush_one()
            while pending:
                flush_one()
            end = tar_end(shard.size)
            f.write(end)
            shard.hasher.update(end)
            shard.size += len(end)
            shard.file = f
            return shard
        except BaseException:
            for fut in pending:
                fut.cancel()
            f.close()
            shard.tmp.unlink(missing_ok=True)
            raise

    def _finish(self, shard: _OpenShard) -> ShardRecord | ShardFailure:
        """fsync, close and rename a fully written shard (runs on the finisher thread)."""
        try:
            assert shard.file is not None
            with shard.file as f:
                f.flush()
                os.fsync(f.fileno())
            os.replace(shard.tmp, shard.final)
            fsync_dir(self.out)
        except Exception as e:  # noqa: BLE001 - reported like any shard failure
            shard.tmp.unlink(missing_ok=True)
            return ShardFailure(shard.index, self._explain(e, shard.index))
        return ShardRecord(
            index=shard.index,
            file=shard.final.name,
            samples=shard.samples,
            classes={str(k): v for k, v in sorted(shard.classes.items())},
            sha256=shard.hasher.hexdigest(),
            bytes=shard.size,
            rejected={k: v for k, v in sorted(shard.rejected.items()) if v},
        )
