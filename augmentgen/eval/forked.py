"""Independent jobs (classifiers of the evaluation, members of an ensemble) on every core, in forked processes.

A forked child inherits what the caller built (data, generators, the job's closure): nothing is
pickled but the task's arguments and what the job returns. Children never touch the caller's
progress display (the caller reports each result), so its lock, held at the fork, cannot stall
them; their log records go to stderr through ``logging``, whose locks are made afresh in a
forked child. Each one dies with the caller (``PR_SET_PDEATHSIG`` on Linux), so a killed run
leaves no orphan still training or writing checkpoints.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import torch

from augmentgen.core.system import usable_cores

R = TypeVar("R")
Task = tuple[Any, ...]

_JOB: Callable[..., Any] | None = None  # set for the pool's lifetime; forked children inherit it
_IN_CHILD = False  # True in a child of run_forked: it runs its jobs in itself, never forks again
_PR_SET_PDEATHSIG = 1


def fork_workers(workers: int | None, tasks: int, where: str = "workers") -> int:
    """Processes for ``tasks`` jobs: ``workers``, or the usable cores at torch's threads per process.

    1 (this process) where the OS cannot fork, once CUDA is in use (a forked child cannot use it),
    and in a child of ``run_forked`` (an ensemble trained beside another generator): the cores
    are taken already.

    Example:
        >>> fork_workers(3, 2), fork_workers(1, 8)
        (2, 1)
    """
    if workers is not None and workers < 1:
        raise ValueError(f"{where} must be >= 1 or None, got {workers}")
    n = workers if workers is not None else max(1, usable_cores() // max(1, torch.get_num_threads()))
    if _IN_CHILD or "fork" not in mp.get_all_start_methods() or torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        return 1
    return max(1, min(n, tasks))


def _child_init() -> None:
    global _IN_CHILD
    _IN_CHILD = True
    # Ctrl-C reaches every process of the terminal's group: the caller handles it (it stops the
    # pool and the children die with it, below); a child would only print a traceback of its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the child may outlive a killed caller
        pass


def _call(*args: Any) -> Any:
    assert _JOB is not None, "run_forked's job runs only in the processes it forked"
    return _JOB(*args)


def run_forked(
    job: Callable[..., R], tasks: Sequence[Task], workers: int, what: str = "job"
) -> Iterator[tuple[Task, R]]:
    """``(task, job(*task))`` for every task: in this process in order when ``workers`` <= 1,
    else in ``workers`` forked processes, in the order they finish.

    A job's exception reaches the caller as it was raised; a child that dies (killed, out of
    memory) is a RuntimeError naming ``what`` and the task.

    Example:
        >>> sorted(r for _, r in run_forked(lambda a, b: a * b, [(2, 3), (4, 5)], workers=2))
        [6, 20]
    """
    global _JOB
    if workers <= 1:
        for task in tasks:
            yield task, job(*task)
        return
    _JOB = job
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_child_init)
    try:
        futures = {pool.submit(_call, *task): task for task in tasks}
        for fut in as_completed(futures):
            task = futures[fut]
            try:
                res = fut.result()
            except BrokenProcessPool as e:
                raise RuntimeError(
                    f"the process running {what} {task} died ({e}); out of memory? one worker runs it in this process"
                ) from e
            yield task, res
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        pool.shutdown()
    finally:
        _JOB = None
