"""``eval.forked``: jobs in forked processes give what they give in-process, report a dead child, and die with a killed caller."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from augmentgen.eval.forked import fork_workers, run_forked


def test_fork_workers_bounds() -> None:
    assert fork_workers(4, 3) == 3 and fork_workers(2, 8) == 2 and fork_workers(None, 1) == 1
    assert fork_workers(None, 100) >= 1
    with pytest.raises(ValueError, match="ensemble workers must be >= 1"):
        fork_workers(0, 4, "ensemble workers")


def test_results_match_in_process_and_name_their_task() -> None:
    base = 10  # the job closes over the caller's state: a forked child sees it without pickling
    job = lambda a, b: (os.getpid(), a * b + base)  # noqa: E731
    inline = dict(run_forked(job, [(1, 2), (3, 4), (5, 6)], workers=1))
    forked = dict(run_forked(job, [(1, 2), (3, 4), (5, 6)], workers=2))
    assert {t: r[1] for t, r in forked.items()} == {t: r[1] for t, r in inline.items()} == {
        (1, 2): 12, (3, 4): 22, (5, 6): 40
    }
    assert {r[0] for r in inline.values()} == {os.getpid()}
    assert os.getpid() not in {r[0] for r in forked.values()}  # really elsewhere


def test_a_dead_child_is_named() -> None:
    with pytest.raises(RuntimeError, match=r"the process running member \(7,\) died"):
        list(run_forked(lambda k: os._exit(1), [(7,)], workers=2, what="member"))
    with pytest.raises(ZeroDivisionError):
        list(run_forked(lambda k: 1 / k, [(0,), (1,)], workers=2))


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state  # a zombie no one reaps (PID 1 of a container) is dead too


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_children_die_with_a_killed_caller(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, time
        from augmentgen.eval.forked import run_forked
        def job(k):
            tmp = os.path.join({str(tmp_path)!r}, f"tmp{{k}}")
            with open(tmp, "w") as f:
                f.write(str(os.getpid()))
            os.replace(tmp, os.path.join({str(tmp_path)!r}, f"child{{k}}"))  # whole, or not there
            time.sleep(60)
        list(run_forked(job, [(0,), (1,)], workers=2))
        """
    )
    caller = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("child*"))) < 2:
            assert time.monotonic() < deadline and caller.poll() is None, "children did not start"
            time.sleep(0.05)
        pids = [int(p.read_text()) for p in tmp_path.glob("child*")]
        assert not any(_gone(p) for p in pids)
        caller.send_signal(signal.SIGKILL)
        caller.wait()
        deadline = time.monotonic() + 10
        while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(_gone(p) for p in pids), "a child outlived its killed caller"
    finally:
        if caller.poll() is None:
            caller.kill()
