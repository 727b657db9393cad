"""A finished shard: its record, and making it durable and visible (fsync, page-cache release, rename).

``commit_shard`` is the last step of every shard: ``ShardWriter`` calls it on the shards it
writes, and the process that hands shards to local pool workers calls it on theirs (they return
them whole under their temporary names: ``ShardWriter.write_uncommitted``), so a worker goes on
to its next shard while the disk takes the last. Nothing is under a shard's final name before
its bytes are on disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from augmentgen.shards.manifest import ShardEntry, fsync_dir


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
    pending: str | None = None  # the temporary file still to commit (write_uncommitted), else None

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


def commit_shard(out: Path, record: ShardRecord) -> ShardRecord:
    """Make a whole shard left under its temporary name durable and visible: fsync, release, rename, fsync the folder.

    ``ShardWriter`` calls it on each shard it finishes; for a shard ``write_uncommitted`` left
    pending, the process that handed the shard to a pool worker calls it (any process on the
    machine can). A record already committed is returned as it is. On an error the temporary
    file is removed and the error raised (a full disk as ``DiskFullError``): nothing half-written
    stays under either name.
    """
    if record.pending is None:
        return record
    tmp, final = out / record.pending, out / record.file
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
            release_cached(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        fsync_dir(out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        err = disk_full(e, out, record.file)
        if err is e:
            raise
        raise err from e
    return dataclasses.replace(record, pending=None)


def disk_full(e: Exception, out: Path, file: str) -> Exception:
    """``e`` as a ``DiskFullError`` when it is one (ENOSPC, EDQUOT), else ``e``."""
    if isinstance(e, OSError) and not isinstance(e, DiskFullError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        err = DiskFullError(
            e.errno,
            f"no space left on the device of {out} while writing {file}; "
            "the shards already done are kept: free space and rerun with --resume",
        )
        err.__cause__ = e
        return err
    return e


def release_cached(fd: int) -> None:
    """Let the kernel drop a finished, fsynced shard's pages from the page cache.

    A shard is written once and read later, if at all, so keeping its pages cached only makes the
    cache grow by every shard, and the pages for that growth are what writing costs most on a VM:
    224 px PNG shards cost 1.2-1.8 ms of CPU a MB to write with the cache growing and 0.19 ms a
    MB when each shard's pages are released after its fsync (benchmarks/shards.md). The data is on
    disk by then; reading it back reads the disk. Advice only: a no-op where ``posix_fadvise`` does
    not exist, and a file system that refuses it does not fail the shard.
    """
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
