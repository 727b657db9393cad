"""Run a recipe's shards: plan (resume, overwrite guard), hand indices to workers, record them in the manifest.

Shard ``i`` is a pure function of the recipe, the seed and ``i``, so any split of the
indices gives the same bytes: this process, a pool of local processes (``workers > 1``),
Ray tasks (``distributor="ray"``), or torchrun ranks (``RANK``/``WORLD_SIZE`` take
``indices[rank::world_size]``). A shard that raises is retried ``run.retries`` times, then
recorded as ``failed``; nothing half-written is ever left under its name.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing as mp
import signal
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

import torch

from augmentgen.core.system import usable_cores
from augmentgen.shards.build import build_source
from augmentgen.shards.commit import DiskFullError, ShardRecord, commit_shard
from augmentgen.shards.config import GenerateRecipe, RunConfig
from augmentgen.shards.manifest import Manifest, ShardEntry, shard_key, update_manifest
from augmentgen.shards.plan import plan_run, rank_and_world, remove_orphans
from augmentgen.shards.sources import ShardSource
from augmentgen.shards.writer import ShardWriter

logger = logging.getLogger(__name__)

# The manifest is rewritten at most this often: a kill loses at most this much bookkeeping (never a
# shard: one renamed but not yet listed is written again, identically, by --resume).
FLUSH_SECONDS = 0.5


class ProgressHook(Protocol):
    """What a caller (the CLI's progress bar) hears while shards are written."""

    def start(self, todo: int, done: int) -> None: ...

    def shard_done(self, record: ShardRecord) -> None: ...

    def shard_failed(self, index: int, error: str) -> None: ...


@dataclass
class GenerateResult:
    """What one call of ``write_shards`` did (for a torchrun rank: its own shards)."""

    out: Path
    written: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    samples: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


class _Recorder:
    """Collects finished shards and merges them into the manifest at most every ``FLUSH_SECONDS``."""

    def __init__(self, out: Path, hook: ProgressHook | None, result: GenerateResult) -> None:
        self.out, self.hook, self.result = out, hook, result
        self.entries: dict[str, ShardEntry] = {}
        self.last = time.monotonic()

    def done(self, record: ShardRecord) -> None:
        self.entries[shard_key(record.index)] = record.entry()
        self.result.written.append(record.index)
        self.result.samples += record.samples
        self.result.rejected = dict(Counter(self.result.rejected) + Counter(record.rejected))
        if self.hook is not None:
            self.hook.shard_done(record)
        self.maybe_flush()

    def failed(self, index: int, file: str, error: str) -> None:
        logger.error("shard %d failed for good: %s", index, error)
        self.entries[shard_key(index)] = ShardEntry(file=file, state="failed", error=error)
        self.result.failed[index] = error
        if self.hook is not None:
            self.hook.shard_failed(index, error)
        self.maybe_flush()

    def maybe_flush(self) -> None:
        if time.monotonic() - self.last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self.entries:
            return
        entries, self.entries = self.entries, {}

        def merge(found: Manifest | None) -> Manifest:
            if found is None:
                raise ValueError(f"{self.out}: the manifest disappeared while shards were being written")
            return found.model_copy(update={"shards": {**found.shards, **entries}})

        update_manifest(self.out, merge)
        self.last = time.monotonic()


def _error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


# ---- runners ------------------------------------------------------------------------------------

# Per-process memo of the writer built from a recipe: worker processes and Ray workers build the
# source (data set, generator weights) once and reuse it for every shard they are handed.
_WORKER_WRITERS: dict[tuple[str, str], ShardWriter] = {}


def _worker_writer(recipe_json: str, out: str, threads: int, queue: int) -> ShardWriter:
    key = (recipe_json, out)
    if key not in _WORKER_WRITERS:
        recipe = GenerateRecipe.model_validate_json(recipe_json)
        _WORKER_WRITERS[key] = ShardWriter(
            build_source(recipe), recipe.shards, out, threads=threads, queue=queue
        )
    return _WORKER_WRITERS[key]


# The writer a forked pool's processes inherit (set in the parent just before the pool forks them).
_FORK_WRITER: ShardWriter | None = None


def _settle_gc() -> None:
    """A pool process's first act: move every object it already holds out of the garbage collector's reach.

    torch alone brings about 200k container objects; each full collection walks them all, and
    at 32 px those collections took 5-10% of a writer's CPU. Frozen, they are never walked
    again (and a forked process does not copy the parent's pages by touching them), which is
    what the ``gc.freeze`` documentation advises for forked workers. Only the pool's own
    processes do this: the caller's process keeps its collector as it was.
    """
    gc.freeze()
    # Ctrl-C reaches every process of the terminal's group: the caller handles it, the worker
    # finishes or drops the shard it holds as the pool shuts down, and prints no traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _write_forked(index: int, torch_threads: int) -> ShardRecord:
    """Shard ``index`` in a forked worker, left for the caller to commit (``commit_shard``), as spawned ones do.

    fsync is the one wait in a worker (ext4 commits its journal: 2-4 ms a shard, 9.5% of the wall
    time of 224 px JPEG shards of 100 samples): the caller, idle but for bookkeeping, takes it
    while the worker writes its next shard.
    """
    if _FORK_WRITER is None:
        raise RuntimeError("_write_forked runs only in a process forked by _run_pool")
    torch.set_num_threads(torch_threads)
    return _FORK_WRITER.write_uncommitted(index)


def fork_safe(recipe: GenerateRecipe, source: ShardSource) -> bool:
    """Whether worker processes may be forked from this one: the source runs on the CPU and CUDA is untouched.

    A forked process inherits the built source (no reload, no pickling), but a process that
    has touched CUDA cannot be forked safely, so a source on a GPU gets spawned workers (or,
    by default, this process and its encode threads).
    """
    if "fork" not in mp.get_all_start_methods() or torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        return False
    devices = [getattr(recipe.source, "device", "cpu")]
    inner: Any = source
    for _ in range(4):  # wrappers (a filtering source) hold the real one as .source
        if hasattr(inner, "device"):
            devices.append(inner.device)
        inner = getattr(inner, "source", None)
        if inner is None:
            break
    return all(torch.device(d).type == "cpu" for d in devices)


def _write_in_worker(
    recipe_json: str, out: str, index: int, threads: int, queue: int, torch_threads: int, commit: bool = True
) -> ShardRecord:
    """Shard ``index`` in a spawned process or a Ray worker; ``commit`` False leaves it to the caller
    (a local pool: the caller sees the same disk), True for Ray (its worker may be on another machine)."""
    torch.set_num_threads(torch_threads)
    writer = _worker_writer(recipe_json, out, threads, queue)
    return writer.write(index) if commit else writer.write_uncommitted(index)


def _run_here(writer: ShardWriter, todo: list[int], retries: int, rec: _Recorder) -> None:
    attempts: Counter[int] = Counter()
    while todo:
        again: list[int] = []
        with contextlib.closing(writer.write_many(todo)) as results:
            for res in results:
                if isinstance(res, ShardRecord):
                    rec.done(res)
                    continue
                if isinstance(res.error, DiskFullError):
                    raise res.error
                attempts[res.index] += 1
                logger.warning(
                    "shard %d attempt %d of %d failed: %s",
                    res.index,
                    attempts[res.index],
                    retries + 1,
                    res.text,
                )
                if attempts[res.index] > retries:
                    rec.failed(res.index, writer.shards.file_name(res.index), res.text)
                else:
                    again.append(res.index)
        todo = again


def _run_pool(
    recipe: GenerateRecipe,
    out: Path,
    todo: list[int],
    run: RunConfig,
    threads: int,
    rec: _Recorder,
    workers: int,
    fork_from: ShardSource | None = None,
) -> None:
    """Shards on ``workers`` local processes: forked from this one (inheriting ``fork_from``) or spawned.

    Spawned workers rebuild the source from the recipe (seconds: imports, weights); forked
    ones start in milliseconds with the source already built, which is what makes a pool
    pay off for small jobs. Forking is only used when ``fork_safe`` says so. A worker's shard
    comes back whole under its temporary name; this process's committer threads fsync and rename
    it (``commit_shard``) before it is recorded, and a failed commit is retried like a failed shard.
    """
    global _FORK_WRITER
    recipe_json = recipe.model_dump_json()
    torch_threads = max(1, usable_cores() // workers)
    queue: deque[tuple[int, int]] = deque((i, 0) for i in todo)
    if fork_from is not None:
        _FORK_WRITER = ShardWriter(fork_from, recipe.shards, out, threads=threads, queue=run.queue)
    ctx = get_context("fork" if fork_from is not None else "spawn")

    def submit(i: int) -> Future[ShardRecord]:
        if fork_from is not None:
            return pool.submit(_write_forked, i, torch_threads)
        return pool.submit(_write_in_worker, recipe_json, str(out), i, threads, run.queue, torch_threads, False)

    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_settle_gc)
    committer = ThreadPoolExecutor(2, thread_name_prefix="augmentgen-commit")
    inflight: dict[Future[ShardRecord], tuple[int, int]] = {}  # shards in the workers
    committing: dict[Future[ShardRecord], tuple[int, int]] = {}  # shards being fsynced and renamed here
    try:
        while queue or inflight or committing:
            while queue and len(inflight) < 2 * workers:
                i, attempt = queue.popleft()
                inflight[submit(i)] = (i, attempt)
            finished, _ = wait([*inflight, *committing], return_when=FIRST_COMPLETED)
            broken = False
            for fut in finished:
                i, attempt = inflight.pop(fut) if fut in inflight else committing.pop(fut)
                try:
                    record = fut.result()
                    if record.pending is not None:  # written whole by a forked worker: commit it here
                        committing[committer.submit(commit_shard, out, record)] = (i, attempt)
                    else:
                        rec.done(record)
                except DiskFullError:
                    raise
                except Exception as e:  # noqa: BLE001 - retried, then recorded
                    broken = broken or isinstance(e, BrokenProcessPool)
                    logger.warning("shard %d attempt %d failed: %s", i, attempt + 1, _error_text(e))
                    if attempt < run.retries:
                        queue.append((i, attempt + 1))
                    else:
                        rec.failed(i, recipe.shards.file_name(i), _error_text(e))
            if broken:  # a worker died: every shard in flight failed with it; start a new pool
                for i, attempt in inflight.values():
                    if attempt < run.retries:
                        queue.append((i, attempt + 1))
                    else:
                        rec.failed(i, recipe.shards.file_name(i), "worker process died")
                inflight.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_settle_gc)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        committer.shutdown(wait=True)  # a shard renamed but not recorded is written again by --resume
        _FORK_WRITER = None


def _run_ray(
    recipe: GenerateRecipe, out: Path, todo: list[int], run: RunConfig, threads: int, rec: _Recorder
) -> None:
    try:
        import ray
    except ImportError as e:
        raise ValueError("distributor 'ray' needs Ray: pip install 'augmentgen[ray]'") from e
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False)
    recipe_json = recipe.model_dump_json()
    # max_retries re-runs a task whose worker process died; exceptions are retried below.
    remote = ray.remote(_write_in_worker).options(num_cpus=1, max_retries=run.retries)
    queue: deque[tuple[int, int]] = deque((i, 0) for i in todo)
    inflight: dict[Any, tuple[int, int]] = {}
    # workers=1 (the default) means "as many tasks as the cluster has CPUs"
    cpus = float(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
    limit = run.workers if run.workers > 1 else max(1, int(cpus))
    try:
        while queue or inflight:
            while queue and len(inflight) < limit:
                i, attempt = queue.popleft()
                inflight[remote.remote(recipe_json, str(out), i, threads, run.queue, 1)] = (i, attempt)
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                i, attempt = inflight.pop(ref)
                try:
                    rec.done(ray.get(ref))
                except ray.exceptions.RayError as e:
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, DiskFullError):
                        raise cause from e
                    logger.warning("shard %d attempt %d failed on Ray: %s", i, attempt + 1, e)
                    if attempt < run.retries:
                        queue.append((i, attempt + 1))
                    else:
                        rec.failed(i, recipe.shards.file_name(i), _error_text(cause or e))
    finally:
        for ref in inflight:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def write_shards(
    recipe: GenerateRecipe,
    out: str | Path,
    *,
    resume: bool = False,
    run: RunConfig | None = None,
    hook: ProgressHook | None = None,
    source: ShardSource | None = None,
) -> GenerateResult:
    """Write (or, with ``resume``, finish) every shard of ``recipe`` into ``out``.

    Args:
        recipe: the shard layout, source and pipeline.
        out: the output folder (created if missing).
        resume: skip shards the manifest lists as done; without it, an output that already
            holds any shard of this job is an error (nothing is overwritten).
        run: workers / distributor / threads / retries; defaults to ``recipe.run``.
        hook: progress callbacks.
        source: an already built source (this process only); default builds it from the recipe.

    Example:
        >>> r = load_recipe("recipes/shards-fashion-mnist.yaml")  # doctest: +SKIP
        >>> write_shards(r, "shards/fmnist").written[:3]  # doctest: +SKIP
        [0, 1, 2]
    """
    t0 = time.perf_counter()
    run = run or recipe.run
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rank, world = rank_and_world(run.distributor)
    if world > 1 and run.distributor == "local":
        logger.info("RANK/WORLD_SIZE set: writing the shards of rank %d of %d", rank, world)
    indices = list(range(recipe.shards.count))[rank::world]
    src = source if source is not None else build_source(recipe)
    todo, done = plan_run(recipe, out, src, indices, resume)
    result = GenerateResult(out=out, skipped=done)
    if hook is not None:
        hook.start(len(todo), len(done))
    forkable = run.distributor != "ray" and fork_safe(recipe, src)
    # workers 0: one forked process per core when the source runs on the CPU, else this process
    # (and always this process for a torchrun rank: the ranks already share the machine's cores)
    workers = run.workers or (usable_cores() if forkable and run.distributor == "local" else 1)
    workers = min(workers, len(todo)) if run.distributor != "ray" else run.workers
    # A Ray task holds one CPU of the cluster, so it encodes on one thread unless told otherwise.
    threads = run.threads or (1 if run.distributor == "ray" else max(1, usable_cores() // max(1, workers)))
    rec = _Recorder(out, hook, result)
    try:
        if not todo:
            pass
        elif run.distributor == "ray":
            _run_ray(recipe, out, todo, run, threads, rec)
        elif workers > 1:
            _run_pool(recipe, out, todo, run, threads, rec, workers, src if forkable else None)
        else:
            with ShardWriter(src, recipe.shards, out, threads=threads, queue=run.queue) as writer:
                _run_here(writer, todo, run.retries, rec)
    finally:
        rec.flush()
        if todo and workers > 1 and run.distributor != "ray":
            remove_orphans(out, recipe.shards.name, todo)
        result.written.sort()  # a pool finishes shards out of order
        result.seconds = time.perf_counter() - t0
    return result
