"""Scale-out and bookkeeping: the same bytes from 1 process, a process pool, torchrun ranks or Ray; resume, retries, guards."""

from __future__ import annotations

import errno
import gc
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import augmentgen.shards.distribute as distribute
import augmentgen.shards.writer as writer_module
from augmentgen.core.batch import Batch
from augmentgen.core.system import usable_cores
from augmentgen.shards.build import build_source
from augmentgen.shards.commit import DiskFullError
from augmentgen.shards.config import RunConfig
from augmentgen.shards.distribute import write_shards
from augmentgen.shards.manifest import read_manifest
from augmentgen.shards.sources import ShardTask
from augmentgen.shards.tario import iter_tar
from augmentgen.shards.verify import verify_shards

from .toy import TESTS_DIR, make_recipe, tar_digests

ONE = RunConfig(workers=1, threads=1)  # this process, inline


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 4 toy shards written by this process, one shard after another."""
    out = tmp_path_factory.mktemp("reference")
    res = write_shards(make_recipe(), out, run=ONE)
    assert res.written == [0, 1, 2, 3] and res.samples == 80
    return out


def test_manifest_lists_every_shard_and_the_recipe(reference: Path) -> None:
    m = read_manifest(reference)
    assert m is not None and m.complete and m.count == 4 and m.samples == 80
    assert m.recipe == make_recipe().output_dict()
    assert m.versions["source"]["kind"] == "dataset" and len(m.versions["source"]["sha256"]) == 64
    assert {e.file: e.sha256 for e in m.shards.values()} == tar_digests(reference)
    assert verify_shards(reference).ok


def test_resume_writes_only_what_is_missing(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_shards(make_recipe(), out, run=ONE)
    (out / "toy-000002.tar").unlink()
    (out / "toy-000001.tar.tmp.99999").write_bytes(b"half a shard")
    (out / ".manifest.json.tmp.999999999").write_bytes(b"{half a manifest")  # its writer is gone
    res = write_shards(make_recipe(), out, resume=True, run=ONE)
    assert res.written == [2] and res.skipped == [0, 1, 3]
    assert tar_digests(out) == tar_digests(reference)
    assert not [p.name for p in out.iterdir() if ".tmp." in p.name] and verify_shards(out).ok


def test_without_resume_nothing_is_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_shards(make_recipe(count=2), out, run=ONE)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    with pytest.raises(ValueError, match=r"already holds 2 shard\(s\).*pass --resume"):
        write_shards(make_recipe(count=2), out, run=ONE)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")} == before


def test_a_manifest_of_another_recipe_is_refused_even_with_resume(tmp_path: Path) -> None:
    write_shards(make_recipe(count=2), tmp_path, run=ONE)
    with pytest.raises(ValueError, match=r"belongs to another recipe.*shards\.size: 20 -> 21"):
        write_shards(make_recipe(count=2, size=21), tmp_path, resume=True, run=ONE)
    with pytest.raises(ValueError, match="not a valid augmentgen shard manifest"):
        (tmp_path / "manifest.json").write_text('{"count": "many"}')
        write_shards(make_recipe(count=2), tmp_path, resume=True, run=ONE)


class _Flaky:
    """Wraps a source: shard 1 fails once, shard 2 always fails."""

    def __init__(self) -> None:
        self.inner = build_source(make_recipe())
        self.failed_once = False

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def batches(self, task: ShardTask) -> Iterator[Batch]:
        if task.index == 1 and not self.failed_once:
            self.failed_once = True
            raise RuntimeError("transient")
        if task.index == 2:
            raise RuntimeError("broken for good")
        yield from self.inner.batches(task)


def test_failures_are_retried_then_recorded(reference: Path, tmp_path: Path) -> None:
    res = write_shards(make_recipe(), tmp_path, run=RunConfig(workers=1, threads=1, retries=1), source=_Flaky())
    assert sorted(res.written) == [0, 1, 3] and list(res.failed) == [2]
    assert "broken for good" in res.failed[2]
    m = read_manifest(tmp_path)
    assert m is not None and m.failed() == {2: "RuntimeError: broken for good"} and not m.complete
    assert not (tmp_path / "toy-000002.tar").exists()
    assert {k: v for k, v in tar_digests(tmp_path).items()} == {
        k: v for k, v in tar_digests(reference).items() if k != "toy-000002.tar"
    }
    faults = [str(f) for f in verify_shards(tmp_path).faults]
    assert faults == ["toy-000002.tar: failed when written: RuntimeError: broken for good"]
    res = write_shards(make_recipe(), tmp_path, resume=True, run=ONE)
    assert res.written == [2] and tar_digests(tmp_path) == tar_digests(reference)


def test_a_full_disk_stops_cleanly_and_keeps_finished_shards(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = open

    class _FullDisk(io.BufferedWriter):
        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    def fake_open(path: Any, mode: str = "r", *a: Any, **kw: Any) -> Any:
        f = real_open(path, mode, *a, **kw)
        if "toy-000002.tar.tmp" in str(path):
            f.close()
            return _FullDisk(real_open(os.devnull, "wb", buffering=0))
        return f

    monkeypatch.setattr(writer_module, "open", fake_open, raising=False)
    with pytest.raises(
        DiskFullError, match=r"no space left .* toy-000002\.tar; the shards already done are kept"
    ):
        write_shards(make_recipe(), tmp_path, run=ONE)
    m = read_manifest(tmp_path)
    assert m is not None and m.done_indices() == [0, 1]
    assert sorted(p.name for p in tmp_path.glob("toy-*")) == ["toy-000000.tar", "toy-000001.tar"]
    monkeypatch.undo()
    write_shards(make_recipe(), tmp_path, resume=True, run=ONE)
    assert tar_digests(tmp_path) == tar_digests(reference)


@pytest.mark.parametrize(
    "how",
    ["auto: forked, one per core", "two forked", "two spawned", "this process, two encode threads"],
)
def test_local_process_pool_gives_the_same_bytes(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    run = {
        "auto: forked, one per core": RunConfig(),
        "two forked": RunConfig(workers=2, threads=1),
        "two spawned": RunConfig(workers=2, threads=1),
        "this process, two encode threads": RunConfig(workers=1, threads=2),
    }[how]
    if how == "two spawned":  # what a source on a GPU gets: workers that rebuild it from the recipe
        monkeypatch.setattr(distribute, "fork_safe", lambda recipe, source: False)
    res = write_shards(make_recipe(), tmp_path, run=run)
    assert res.written == [0, 1, 2, 3]
    assert tar_digests(tmp_path) == tar_digests(reference)
    assert read_manifest(tmp_path) == read_manifest(reference)


class _DiesOnce:
    """Wraps a source: the process writing shard 1 dies the first time (a marker file remembers), shard 2 always raises."""

    def __init__(self, marker: Path) -> None:
        self.inner, self.marker = build_source(make_recipe()), marker

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def batches(self, task: ShardTask) -> Iterator[Batch]:
        if task.index == 2:
            raise RuntimeError("broken for good")
        for j, batch in enumerate(self.inner.batches(task)):
            if task.index == 1 and j == 1 and not self.marker.exists():
                self.marker.touch()
                os._exit(3)  # mid-shard, one batch already in its temporary file
            yield batch


def test_a_forked_worker_that_dies_or_raises_is_retried_and_leaves_nothing(
    reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    res = write_shards(
        make_recipe(), out, run=RunConfig(workers=2, threads=1, retries=2), source=_DiesOnce(tmp_path / "died")
    )
    assert (tmp_path / "died").exists(), "the worker never died: the test tested nothing"
    assert res.written == [0, 1, 3] and list(res.failed) == [2]
    assert {k: v for k, v in tar_digests(out).items()} == {
        k: v for k, v in tar_digests(reference).items() if k != "toy-000002.tar"
    }
    assert not [p.name for p in out.iterdir() if ".tmp." in p.name]  # the dead worker's file is gone
    m = read_manifest(out)
    assert m is not None and m.done_indices() == [0, 1, 3] and list(m.failed()) == [2]


def _fd_name(fd: int) -> str:
    return Path(os.readlink(f"/proc/self/fd/{fd}")).name


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="names open files through /proc")
@pytest.mark.parametrize("spawned", [False, True], ids=["forked", "spawned"])
def test_pool_workers_leave_the_fsync_and_rename_to_the_caller(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spawned: bool
) -> None:
    if spawned:  # what a source on a GPU gets: workers that rebuild it from the recipe
        monkeypatch.setattr(distribute, "fork_safe", lambda recipe, source: False)
    events: list[tuple[str, str]] = []
    fsync, replace, me = os.fsync, os.replace, os.getpid()

    def record_fsync(fd: int) -> None:
        if os.getpid() == me:  # the workers' copies of this list are theirs alone
            events.append(("fsync", _fd_name(fd)))
        fsync(fd)

    def record_replace(a: Any, b: Any) -> None:
        if os.getpid() == me:
            events.append(("replace", f"{Path(a).name} -> {Path(b).name}"))
        replace(a, b)

    monkeypatch.setattr(os, "fsync", record_fsync)
    monkeypatch.setattr(os, "replace", record_replace)
    out = tmp_path / "out"
    res = write_shards(make_recipe(), out, run=RunConfig(workers=2, threads=1))
    assert res.written == [0, 1, 2, 3] and tar_digests(out) == tar_digests(reference)
    workers = set()
    for i in range(4):
        final = f"toy-{i:06d}.tar"
        synced = [k for k, (what, n) in enumerate(events) if what == "fsync" and n.startswith(final + ".tmp.")]
        renamed = [k for k, (what, n) in enumerate(events) if what == "replace" and n.endswith(" -> " + final)]
        # here, once each, the data first: a worker wrote the shard, this process made it durable and visible
        assert len(synced) == 1 and len(renamed) == 1 and synced[0] < renamed[0], events
        workers.add(int(events[synced[0]][1].rsplit(".", 1)[1]))
    assert me not in workers


def test_a_commit_that_fails_is_retried_and_leaves_nothing(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsync, me, failed = os.fsync, os.getpid(), []

    def fails_once(fd: int) -> None:
        if os.getpid() == me and _fd_name(fd).startswith("toy-000001.tar.tmp.") and not failed:
            failed.append(_fd_name(fd))
            raise OSError(errno.EIO, "Input/output error")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", fails_once)
    out = tmp_path / "out"
    res = write_shards(make_recipe(), out, run=RunConfig(workers=2, threads=1, retries=1))
    assert failed, "no commit failed: the test tested nothing"
    assert res.written == [0, 1, 2, 3] and not res.failed
    assert tar_digests(out) == tar_digests(reference)
    assert not [p.name for p in out.iterdir() if ".tmp." in p.name]


def test_default_workers_fork_a_pool_only_for_the_local_distributor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pools: list[int] = []
    real = distribute._run_pool

    def spy(*args: Any) -> None:
        pools.append(args[6])  # workers
        real(*args)

    monkeypatch.setattr(distribute, "_run_pool", spy)
    cores = usable_cores()
    write_shards(make_recipe(), tmp_path / "local")
    assert pools == ([min(cores, 4)] if cores > 1 else [])
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    res = write_shards(make_recipe(), tmp_path / "rank0", run=RunConfig(distributor="torchrun"))
    assert res.written == [0, 2] and len(pools) == (1 if cores > 1 else 0)  # the rank wrote alone


class _ReportsGc:
    """Wraps a source: every row's provenance says how many objects its process's collector has frozen."""

    def __init__(self) -> None:
        self.inner = build_source(make_recipe())

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def batches(self, task: ShardTask) -> Iterator[Batch]:
        for batch in self.inner.batches(task):
            frozen = [gc.get_freeze_count()] * batch.batch_size
            yield batch.replace(meta={**batch.meta, "gc_frozen": frozen})


def _frozen_counts(out: Path) -> set[int]:
    return {
        json.loads(data)["gc_frozen"]
        for tar in sorted(out.glob("*.tar"))
        for name, data in iter_tar(io.BytesIO(tar.read_bytes()))
        if name.endswith(".json")
    }


def test_pool_processes_freeze_what_they_inherit_and_the_caller_keeps_its_collector(tmp_path: Path) -> None:
    # a full collection in a worker would walk torch's ~200k objects again and again (5-10% of the CPU at 32 px)
    before = gc.get_freeze_count()
    write_shards(make_recipe(), tmp_path / "forked", run=RunConfig(workers=2, threads=1), source=_ReportsGc())
    assert min(_frozen_counts(tmp_path / "forked")) > 10_000
    write_shards(make_recipe(), tmp_path / "here", run=ONE, source=_ReportsGc())
    assert _frozen_counts(tmp_path / "here") == {before}
    assert gc.get_freeze_count() == before


class _OnDevice:
    def __init__(self, device: str, inner: Any = None) -> None:
        self.device, self.source = torch.device(device), inner


def test_workers_are_forked_only_from_a_process_whose_source_is_on_the_cpu() -> None:
    cpu = make_recipe()
    assert distribute.fork_safe(cpu, build_source(cpu))
    assert not distribute.fork_safe(cpu, _OnDevice("meta"))
    assert not distribute.fork_safe(cpu, _OnDevice("cpu", inner=_OnDevice("cuda")))  # a wrapped source
    on_gpu = cpu.model_copy(update={"source": cpu.source.model_copy(update={"device": "cuda"})})
    assert not distribute.fork_safe(on_gpu, _OnDevice("cpu"))


def test_world_size_in_the_environment_picks_this_ranks_shards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    res = write_shards(make_recipe(), tmp_path, run=ONE)
    assert res.written == [1, 3]
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match=r"RANK=2 must lie in \[0, WORLD_SIZE=2\)"):
        write_shards(make_recipe(), tmp_path, resume=True, run=ONE)
    monkeypatch.delenv("RANK")
    with pytest.raises(ValueError, match="needs the RANK and WORLD_SIZE"):
        write_shards(make_recipe(), tmp_path, resume=True, run=RunConfig(distributor="torchrun"))


def _cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR), **extra}
    env.pop("COLUMNS", None)
    return env


def test_torchrun_ranks_in_separate_processes_give_the_same_bytes(reference: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(make_recipe().model_dump(mode="json")))
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "augmentgen.cli",
        "generate",
        str(recipe),
        "--out",
        str(out),
        "--distributor",
        "torchrun",
    ]
    procs = [
        subprocess.Popen(
            cmd,
            env=_cli_env(RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for r in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert tar_digests(out) == tar_digests(reference)
    m = read_manifest(out)
    assert m is not None and m.complete and m == read_manifest(reference)


@pytest.mark.slow
def test_ray_tasks_give_the_same_bytes(reference: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(TESTS_DIR)}})
    try:
        res = write_shards(make_recipe(), tmp_path, run=RunConfig(distributor="ray", workers=2, threads=1))
    finally:
        ray.shutdown()
    assert sorted(res.written) == [0, 1, 2, 3]
    assert tar_digests(tmp_path) == tar_digests(reference)
    assert read_manifest(tmp_path) == read_manifest(reference)
