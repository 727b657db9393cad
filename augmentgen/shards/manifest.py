"""``OUT/manifest.json``: the resolved recipe and its hash, versions, and per shard its count, classes, sha256, state.

The manifest is the record of what is done. It is only ever replaced whole (written to a
temporary file, fsynced, renamed) under an advisory lock, so concurrent writers (local
processes, torchrun ranks on one file system) merge their shards instead of losing them,
and a kill at any moment leaves the previous or the next version, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MANIFEST = "manifest.json"
LOCK = ".manifest.lock"
FORMAT_VERSION = 1


class ShardEntry(BaseModel):
    """One shard: ``done`` (renamed into place, whole) or ``failed`` (nothing under its name)."""

    model_config = ConfigDict(extra="forbid")

    file: str
    state: Literal["done", "failed"]
    samples: int = 0
    classes: dict[str, int] = Field(default_factory=dict)
    sha256: str = ""
    bytes: int = 0
    rejected: dict[str, int] = Field(default_factory=dict)
    error: str | None = None


class Manifest(BaseModel):
    """What an output folder holds and which recipe made it.

    Example:
        >>> m = Manifest(recipe={}, recipe_sha256="ab", count=2)
        >>> m.done_indices(), m.complete
        ([], False)
    """

    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    recipe: dict[str, Any]
    recipe_sha256: str
    versions: dict[str, Any] = Field(default_factory=dict)
    count: int
    shards: dict[str, ShardEntry] = Field(default_factory=dict)

    def done_indices(self) -> list[int]:
        return sorted(int(k) for k, e in self.shards.items() if e.state == "done")

    def failed(self) -> dict[int, str]:
        return {int(k): e.error or "" for k, e in sorted(self.shards.items()) if e.state == "failed"}

    @property
    def complete(self) -> bool:
        return len(self.done_indices()) == self.count

    @property
    def samples(self) -> int:
        return sum(e.samples for e in self.shards.values() if e.state == "done")

    def to_json(self) -> str:
        d = self.model_dump(mode="json")
        d["shards"] = {k: d["shards"][k] for k in sorted(d["shards"])}
        return json.dumps(d, indent=1, sort_keys=False) + "\n"


def shard_key(index: int) -> str:
    return f"{index:06d}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a fsynced temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(out: str | Path) -> Manifest | None:
    """The manifest of ``out``, or None when there is none; a damaged one is a ValueError naming the file."""
    path = Path(out) / MANIFEST
    if not path.exists():
        return None
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{path}: not a valid augmentgen shard manifest ({where}: {first['msg']})") from None


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold the advisory lock of ``out``'s manifest (POSIX ``flock``, released if the holder dies)."""
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def update_manifest(out: Path, change: Callable[[Manifest | None], Manifest]) -> Manifest:
    """Read, change and atomically replace the manifest of ``out`` under its lock."""
    with locked(out):
        new = change(read_manifest(out))
        write_atomic(out / MANIFEST, new.to_json().encode())
        return new


def recipe_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths where two recipe dicts differ (for errors that say what changed)."""
    out: list[str] = []
    for k in sorted(set(a) | set(b)):
        p = f"{prefix}{k}"
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out.extend(recipe_diff(va, vb, p + "."))
        elif va != vb:
            out.append(f"{p}: {va!r} -> {vb!r}")
    return out


def check_same_recipe(found: Manifest, recipe: dict[str, Any], sha: str, out: Path) -> None:
    """ValueError when ``out`` was written by another recipe (or other weights / data)."""
    if found.recipe_sha256 == sha:
        return
    diff = recipe_diff(found.recipe, recipe) or ["the generator weights or data set content changed"]
    raise ValueError(
        f"{out / MANIFEST} belongs to another recipe (sha256 {found.recipe_sha256[:12]}, this one is {sha[:12]}); "
        f"differences: {'; '.join(diff[:5])}. Use another --out, or the recipe that made it."
    )
