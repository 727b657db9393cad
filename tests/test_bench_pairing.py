"""The ops benchmark's paired ratio: round-by-round ratios, median, robust to drift."""

from __future__ import annotations

import math

from augmentgen.bench.ops import _best_rates, _paired_ratio


def test_paired_ratio_is_the_median_of_round_ratios() -> None:
    # the machine gets 2x slower half way: best-of-rounds pairs our slow round with their fast one
    per = {"ours": [100.0, 100.0, 50.0, 50.0, 50.0], "ref": [10.0, 10.0, 5.0, 5.0, 5.0]}
    assert _paired_ratio(per, "ours", "ref") == 10.0
    per = {"ours": [30.0, 10.0, 20.0], "ref": [10.0, 10.0, 10.0]}
    assert _paired_ratio(per, "ours", "ref") == 2.0
    assert math.isnan(_paired_ratio({"ours": [1.0]}, "ours", "ref"))


def test_best_rates_records_every_round() -> None:
    calls = {"a": 0, "b": 0}

    def make(name: str, n: int):  # noqa: ANN202
        def fn() -> int:
            calls[name] += 1
            return n

        return fn

    per: dict[str, list[float]] = {}
    best = _best_rates({"a": make("a", 10), "b": make("b", 5)}, 0.02, rounds=4, per_round=per)
    assert sorted(per) == ["a", "b"] and len(per["a"]) == len(per["b"]) == 4
    assert best["a"] == max(per["a"]) and best["b"] == max(per["b"])
    assert calls["a"] > 4 and calls["b"] > 4  # warm-up plus at least one call per round
