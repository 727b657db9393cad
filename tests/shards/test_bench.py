"""The shard benchmark runs end to end at a tiny size (figures themselves are not judged here)."""

from __future__ import annotations

import pytest

from augmentgen.bench.shard_peers import photo_dataset
from augmentgen.bench.shards import _steady, run_shards_benchmark


def test_benchmark_reports_every_contender() -> None:
    res = run_shards_benchmark(sizes=(32,), formats=("png",), samples={32: 40}, repeats=1, memory=False)
    r = res["results"]["32px-png"]
    for key in (
        "baseline",
        "encode_1t",
        "encode_pool",
        "encode_processes",
        "ceiling",
        "raw_tar_tarfile",
        "raw_tar_shardwriter",
        "raw_tar_augmentgen",
        "augmentgen",
        "augmentgen_one_process",
        "augmentgen_steady",
    ):
        assert r[key] > 0, key
    assert r["ceiling"] == r["encode_1t"] * res["cores"]
    assert len(r["per_repeat"]) == 1 and r["median_fraction_of_ceiling"] == r["per_repeat"][0]["of_ceiling"]
    assert r["fraction_of_ceiling_steady"] == r["augmentgen_steady"] / r["ceiling"] and r["job_start_s"] >= 0
    # CPU per sample counts the forked workers too: the writer cannot cost less than its encoding
    assert r["augmentgen_cpu_us"] > 0.5 * r["encode_1t_cpu_us"]
    assert 0.0 < r["interleaved_cpu_share_encoding"] < 1.5


def test_photo_dataset_is_seeded_and_varied() -> None:
    a, b = photo_dataset(16, 10), photo_dataset(16, 10)
    assert a.images.shape == (10, 16, 16, 3) and (a.images == b.images).all()
    assert len({x.tobytes() for x in a.images}) == 10


def test_steady_rate_cancels_what_a_job_costs_once() -> None:
    # 0.5 s to start, then 200 samples/s: jobs of 100 and 400 samples take 1.0 and 2.5 s
    rate, start = _steady((100, 1.0, 0.0), (400, 2.5, 0.0))
    assert rate == pytest.approx(200.0) and start == pytest.approx(0.5)
    # noise that makes the long job no slower than the short one: its own rate, no start-up claimed
    assert _steady((100, 1.0, 0.0), (400, 0.9, 0.0)) == (400 / 0.9, 0.0)
