"""kill -9 at seeded random moments, then --resume: no duplicate, missing or truncated shard; bytes as if never killed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from augmentgen.shards.config import RunConfig
from augmentgen.shards.distribute import write_shards
from augmentgen.shards.manifest import read_manifest
from augmentgen.shards.reader import load
from augmentgen.shards.verify import verify_shards

from .toy import TESTS_DIR, make_recipe, tar_digests

# 64 px noise at zlib level 9 is slow to encode (about 1 ms a sample), so a run spends
# long enough writing for kills to land in the middle of shards, renames and manifest updates.
LAYOUT = {"count": 12, "size": 60, "batch_size": 16, "png_compression": 9, "options": {"n": 64, "size": 64}}


def _generate(recipe: Path, out: Path, resume: bool, workers: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "augmentgen.cli",
        "generate",
        str(recipe),
        "--out",
        str(out),
        "--threads",
        "1",
    ]
    cmd += ["--workers", str(workers)] + (["--resume"] if resume else [])
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR)}
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def _kill_and_resume(tmp_path: Path, kills: int, seed: int, workers: int) -> None:
    recipe = make_recipe(**LAYOUT)
    ref = tmp_path / "ref"
    seconds = write_shards(recipe, ref, run=RunConfig(threads=1)).seconds
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe.model_dump(mode="json")))
    out = tmp_path / "out"
    rng = random.Random(seed)
    landed = 0
    mid_shard = 0
    per_shard = seconds / 12
    for attempt in range(kills):
        resume = (out / "manifest.json").exists()
        before = len(list(out.glob("*.tar"))) if resume else 0
        # Kill once `more` further shards are whole, plus a random part of a shard's time: the kills
        # spread over the job whatever the machine's speed, and land inside shards, renames and manifest updates.
        more = rng.randrange(0, max(1, 12 - before))
        p = _generate(recipe_file, out, resume=resume, workers=workers)
        deadline = time.monotonic() + 120
        while p.poll() is None and time.monotonic() < deadline:
            if len(list(out.glob("*.tar"))) >= before + more and list(out.glob("*.tar.tmp.*")):
                break
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, per_shard) if attempt else 0.0)  # the first kill is surely mid-shard
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)  # the whole group: pool workers die too
            landed += 1
        p.wait()
        mid_shard += any(".tmp." in f.name for f in out.iterdir())
    assert landed >= 1 and mid_shard >= 1, f"kills landed: {landed}, mid-shard: {mid_shard}"
    final = _generate(recipe_file, out, resume=True, workers=workers)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()
    assert tar_digests(out) == tar_digests(ref)
    assert read_manifest(out) == read_manifest(ref)
    report = verify_shards(out)
    assert report.ok and report.complete and report.samples == 12 * 60, [str(f) for f in report.faults]
    keys = [s["__key__"] for s in load(out)]
    assert len(keys) == len(set(keys)) == 12 * 60
    assert not [p.name for p in out.iterdir() if ".tmp." in p.name]


def test_kill_at_random_points_then_resume(tmp_path: Path) -> None:
    _kill_and_resume(tmp_path, kills=3, seed=1234, workers=1)


@pytest.mark.slow
def test_kill_process_pools_at_random_points_then_resume(tmp_path: Path) -> None:
    _kill_and_resume(tmp_path, kills=4, seed=7, workers=2)
