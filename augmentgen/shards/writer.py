"""Write shards: source batches -> checked uint8 -> encoded members -> tar -> fsync and atomic rename.

Each whole shard is made durable and visible by ``commit_shard`` (``augmentgen.shards.commit``),
here or, for ``write_uncommitted``, in the process that handed the shard to a pool worker.

With one thread (``threads=1``, what each of the forked workers of a CPU source uses) a
shard is written inline: draw a batch, encode it, append it, and at the end fsync and rename.
With more, three stages run at once. The caller's thread draws batches from the source (on its
device), quantizes and checks them, and hands chunks of samples to a thread pool, which
encodes them (OpenCV releases the GIL) into finished tar bytes. A sink thread takes the
chunks in order, appends them to ``{name}-{i:06d}.tar.tmp.{pid}`` with a running sha256,
and when a shard is whole fsyncs it and renames it into place, while the pool already
encodes the next shard. At most ``queue`` chunks are in flight, so memory stays flat
however many shards a writer makes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import queue
import threading
from collections import Counter
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np
import torch

from augmentgen.core.batch import Batch
from augmentgen.shards.commit import DiskFullError, ShardRecord, commit_shard, disk_full
from augmentgen.shards.config import ShardsConfig
from augmentgen.shards.encoders import EncodeSpec, encode_jpeg_torch, to_uint8
from augmentgen.shards.members import Rows, boxes_rows, chunk_size, encode_rows
from augmentgen.shards.sources import ShardSource, ShardTask, jsonable
from augmentgen.shards.tario import tar_end

logger = logging.getLogger(__name__)

TMP_MARK = ".tmp."


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
    error: Exception | None = None


@dataclass(frozen=True)
class _Failed:
    """Queued by the producer when a shard's source or items raised."""

    error: Exception


_END = object()  # queued after a shard's last chunk


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

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None

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

    def _rows(self, batch: Batch, task: ShardTask, offset: int, rejected: Counter[str]) -> Rows:
        """The batch's writable rows (NaN or out-of-range ones counted in ``rejected`` and dropped), keyed by position."""
        n = batch.batch_size
        gpu_jpeg = self.spec.format == "jpg" and self.shards.jpeg_encoder == "torchvision"
        images, finite, ok = to_uint8(batch.image)
        keep = np.flatnonzero(ok).tolist()
        if len(keep) < n:
            rejected["nan"] += int((~finite).sum())
            rejected["range"] += int((finite & ~ok).sum())
            logger.warning(
                "shard %d: rejected %d of %d generated rows (NaN/inf or outside [0, 1])",
                task.index,
                n - len(keep),
                n,
            )
        row_images: list[np.ndarray | bytes] = [images[r] for r in keep]
        if gpu_jpeg and keep:
            img = batch.image  # quantized again where it lives, so a CUDA batch is encoded on the GPU
            q = (
                img
                if img.dtype == torch.uint8
                else (torch.nan_to_num(img.float()).clamp(0, 1) * 255).round().to(torch.uint8)
            )
            row_images = list(encode_jpeg_torch(q[torch.tensor(keep, device=q.device)], self.shards.quality))
        labels = None if batch.label is None else [int(x) for x in batch.label.detach().cpu().tolist()]
        prov = batch.meta.get("provenance")
        prov_rows: list[Any] = prov if isinstance(prov, list) else []
        # Other per-sample meta lists (filter scores a wrapping source added, prompts) join the provenance.
        extra = [
            (k, v)
            for k, v in batch.meta.items()
            if k != "provenance" and isinstance(v, (list, tuple)) and len(v) == n
        ]
        metas: list[dict[str, Any]] = [
            {**(prov_rows[r] if r < len(prov_rows) else {}), "shard": task.index, "index": offset + r}
            for r in keep
        ]
        for meta, r in zip(metas, keep):
            for name, values in extra:
                if name not in meta:
                    meta[name] = jsonable(values[r])
            if labels is not None:
                meta["label"] = labels[r]
        boxes = boxes_rows(batch)
        masks = None if batch.masks is None else batch.masks.detach().cpu().to(torch.uint8).numpy()
        return Rows(
            keys=[b"%06d-%06d" % (task.index, offset + r) for r in keep],
            images=row_images,
            labels=None if labels is None else [labels[r] for r in keep],
            metas=metas,
            boxes=None if boxes is None else [boxes[r] for r in keep],
            masks=None if masks is None else masks[keep],
        )

    def write(self, index: int) -> ShardRecord:
        """Write shard ``index`` under a temporary name, then rename it into place; returns its record."""
        with contextlib.closing(self.write_many([index])) as results:
            res = next(results)
        if isinstance(res, ShardFailure):
            raise res.error
        return res

    def write_uncommitted(self, index: int) -> ShardRecord:
        """Write shard ``index`` whole under its temporary name and close it, leaving its fsync and rename to the caller.

        The record's ``pending`` names the temporary file; ``commit_shard`` makes it durable and
        renames it into place. A pool worker that returns such a record goes on to its next shard
        while its caller waits for the disk. With more than one encode thread the shard is
        committed here as ``write`` does (``pending`` is then None).
        """
        if self.threads > 1:
            return self.write(index)
        res = self._write_one_inline(index, commit=False)
        if isinstance(res, ShardFailure):
            raise res.error
        return res

    def write_many(self, indices: Iterable[int]) -> Generator[ShardRecord | ShardFailure, None, None]:
        """Write shards in order, the next one's encoding overlapping the last one's tail, fsync and rename.

        Yields, in order, a ``ShardRecord`` per shard renamed into place or a ``ShardFailure``
        (its temporary file removed, nothing under its name); a failure does not stop the
        others, except a full disk, after which no new shard is started.
        """
        if self.threads == 1:
            yield from self._write_inline(indices)
            return
        work: queue.Queue[tuple[_OpenShard, Any] | None] = queue.Queue(maxsize=self._limit())
        results: queue.Queue[ShardRecord | ShardFailure] = queue.Queue()
        stop = threading.Event()
        sink = threading.Thread(
            target=self._sink, args=(work, results, stop), name="augmentgen-sink", daemon=True
        )
        sink.start()
        owed = 0  # shards handed to the sink whose result has not been yielded
        try:
            for i in indices:
                if stop.is_set():
                    break
                self._produce(i, work, stop)
                owed += 1
                while owed and not results.empty():
                    owed -= 1
                    yield results.get()
            while owed:
                owed -= 1
                yield self._next_result(results, sink)
        finally:
            work.put(None)  # the sink finishes what it holds, removes any unfinished temporary file, and ends
            sink.join()

    def _write_inline(self, indices: Iterable[int]) -> Generator[ShardRecord | ShardFailure, None, None]:
        """One thread does it all: draw a batch, encode it, append it, and at the end fsync and rename.

        With one encode thread the pipeline's hand-offs cost more than they overlap: three threads
        passing the GIL back and forth spend about as much CPU as small images take to encode. One
        process per core, each writing inline, keeps every core on the work instead.
        """
        for index in indices:
            res = self._write_one_inline(index)
            yield res
            if isinstance(res, ShardFailure) and isinstance(res.error, DiskFullError):
                return

    def _open(self, index: int) -> _OpenShard:
        final = self.out / self.shards.file_name(index)
        return _OpenShard(index, final, final.with_name(final.name + f"{TMP_MARK}{os.getpid()}"))

    def _shard_rows(self, shard: _OpenShard) -> Iterator[Rows]:
        """The writable rows of each of the shard's batches, counted into ``shard`` as they are drawn."""
        task = self.task(shard.index)
        position = 0  # rows seen so far, rejected ones included: keys stay put when a row is dropped
        for batch in self.source.batches(task):
            # rows a filtering source dropped before the writer saw them ({reason or reason:class: n})
            shard.rejected.update(batch.meta.get("filter_rejected") or {})
            rows = self._rows(batch, task, position, shard.rejected)
            position += batch.batch_size
            shard.samples += len(rows)
            shard.classes.update(rows.labels or ())
            yield rows

    def _write_one_inline(self, index: int, commit: bool = True) -> ShardRecord | ShardFailure:
        shard = self._open(index)
        try:
            for rows in self._shard_rows(shard):
                data = encode_rows(rows, self.spec)
                if shard.file is None:
                    shard.file = open(shard.tmp, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in _finish
                shard.file.write(data)
                shard.hasher.update(data)
                shard.size += len(data)
        except Exception as e:  # noqa: BLE001 - reported by _finish like any shard failure
            shard.error = self._explain(e, index)
        except BaseException:  # interrupted: nothing half-written stays behind
            self._discard(shard)
            raise
        return self._finish(shard, commit=commit)

    def _limit(self) -> int:
        step = chunk_size(64, 64)  # a guess before the first batch; the queue bound only needs the order
        return self.queue or max(4 * self.threads, 2 * -(-self.shards.batch_size // step))

    @staticmethod
    def _next_result(
        results: queue.Queue[ShardRecord | ShardFailure], sink: threading.Thread
    ) -> ShardRecord | ShardFailure:
        while True:
            try:
                return results.get(timeout=0.5)
            except queue.Empty:
                if not sink.is_alive():
                    raise RuntimeError("the shard sink thread died; see the log above") from None

    def _produce(
        self, index: int, work: queue.Queue[tuple[_OpenShard, Any] | None], stop: threading.Event
    ) -> None:
        """Draw shard ``index``'s batches and queue its encode chunks, then its end (or its failure)."""
        shard = self._open(index)
        try:
            for rows in self._shard_rows(shard):
                image = rows.images[0] if len(rows) else None
                step = chunk_size(*image.shape[:2]) if isinstance(image, np.ndarray) else 64
                for c in range(0, len(rows), step):
                    work.put((shard, self.pool.submit(encode_rows, rows.slice(c, c + step), self.spec)))
                if stop.is_set():
                    raise DiskFullError(errno.ENOSPC, "stopped: the disk is full")
        except Exception as e:  # noqa: BLE001 - the sink reports it in order; the caller retries or records it
            work.put((shard, _Failed(self._explain(e, index))))
            return
        work.put((shard, _END))

    def _sink(
        self,
        work: queue.Queue[tuple[_OpenShard, Any] | None],
        results: queue.Queue[ShardRecord | ShardFailure],
        stop: threading.Event,
    ) -> None:
        """Append chunks in order; at a shard's end, fsync and rename it (or remove it when it failed)."""
        current: _OpenShard | None = None
        while True:
            item = work.get()
            if item is None:
                if current is not None:  # the producer was interrupted mid-shard
                    self._discard(current)
                return
            shard, what = item
            current = shard
            if what is _END or isinstance(what, _Failed):
                if isinstance(what, _Failed) and shard.error is None:
                    shard.error = what.error
                res = self._finish(shard)
                if isinstance(res, ShardFailure) and isinstance(res.error, DiskFullError):
                    stop.set()
                results.put(res)
                current = None
                continue
            try:
                data = what.result()
                if shard.error is None:
                    if shard.file is None:
                        shard.file = open(shard.tmp, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in _finish
                    shard.file.write(data)
                    shard.hasher.update(data)
                    shard.size += len(data)
            except Exception as e:  # noqa: BLE001 - the shard fails; its end reports it
                if shard.error is None:
                    shard.error = self._explain(e, shard.index)
                    if isinstance(shard.error, DiskFullError):
                        stop.set()

    def _discard(self, shard: _OpenShard) -> None:
        if shard.file is not None:
            shard.file.close()
        shard.tmp.unlink(missing_ok=True)

    def _explain(self, e: Exception, index: int) -> Exception:
        return disk_full(e, self.out, self.shards.file_name(index))

    def _finish(self, shard: _OpenShard, commit: bool = True) -> ShardRecord | ShardFailure:
        """Write the end marker and close a whole shard, then (``commit``) fsync and rename it; remove a failed one."""
        try:
            if shard.error is not None:
                raise shard.error
            if shard.file is None:  # every row was rejected: still a valid, empty shard
                shard.file = open(shard.tmp, "wb")  # noqa: SIM115 - closed below
            end = tar_end(shard.size)
            with shard.file as f:
                f.write(end)
                shard.hasher.update(end)
                shard.size += len(end)
            record = ShardRecord(
                index=shard.index,
                file=shard.final.name,
                samples=shard.samples,
                classes={str(k): v for k, v in sorted(shard.classes.items())},
                sha256=shard.hasher.hexdigest(),
                bytes=shard.size,
                rejected={k: v for k, v in sorted(shard.rejected.items()) if v},
                pending=shard.tmp.name,
            )
            return commit_shard(self.out, record) if commit else record
        except Exception as e:  # noqa: BLE001 - reported like any shard failure
            self._discard(shard)
            return ShardFailure(shard.index, self._explain(e, shard.index))
