"""Gates: parsing recipe forms, applying to results, reporting failures and unknown keys."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from augmentgen.checks.gates import Gate, apply_gates, failed, parse_gates, unknown_gate_keys
from augmentgen.core.check import CheckResult


def _r(key: str, v: float) -> CheckResult:
    return CheckResult(name=key.upper(), value=v, details={"key": key})


def test_parse_list_and_mapping_forms() -> None:
    gates = parse_gates(["label_agreement >= 0.9", "near_copy_fraction<=0.01", "fid < 50"])
    assert gates == [
        Gate("label_agreement", ">=", 0.9),
        Gate("near_copy_fraction", "<=", 0.01),
        Gate("fid", "<", 50.0),
    ]
    assert parse_gates({"recall": ">= 0.5", "kid": "<= 1e-3"}) == [
        Gate("recall", ">=", 0.5),
        Gate("kid", "<=", 0.001),
    ]
    assert parse_gates("fid <= 3") == [Gate("fid", "<=", 3.0)]
    assert parse_gates(None) == []


@pytest.mark.parametrize("bad", ["label_agreement 0.9", ">= 0.9", "x >= y", "fid == 3", ""])
def test_parse_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="gate"):
        parse_gates([bad])


def test_mapping_with_bare_number_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"write the comparison too, e.g. '>= 0.9'"):
        parse_gates({"label_agreement": 0.9})


@given(v=st.floats(allow_nan=False, allow_infinity=False, width=32), t=st.floats(-1e6, 1e6))
def test_ops_are_complementary(v: float, t: float) -> None:
    assert Gate("m", ">=", t).holds(v) != Gate("m", "<", t).holds(v)
    assert Gate("m", "<=", t).holds(v) != Gate("m", ">", t).holds(v)


def test_nan_never_passes() -> None:
    assert not Gate("m", ">=", 0).holds(math.nan)
    assert not Gate("m", "<=", 0).holds(math.nan)


def test_apply_sets_threshold_and_passed_and_all_gates_must_hold() -> None:
    results = [_r("label_agreement", 0.85), _r("fid", 12.0), _r("recall", 0.6)]
    gates = parse_gates(["label_agreement >= 0.9", "fid <= 20", "fid >= 15"])
    out = apply_gates(results, gates)
    assert [r.passed for r in out] == [False, False, True]
    assert out[0].threshold == 0.9 and out[2].threshold is None
    assert out[1].details["gates"] == ["fid <= 20", "fid >= 15"]
    assert [r.details["key"] for r in failed(out)] == ["label_agreement", "fid"]
    assert results[0].passed  # inputs untouched


def test_unknown_gate_keys() -> None:
    gates = parse_gates(["label_agreement >= 0.9", "recal >= 0.5"])
    assert unknown_gate_keys([_r("label_agreement", 1.0)], gates) == ["recal"]


def test_str_roundtrip() -> None:
    g = Gate.parse("near_copy_fraction <= 0.01")
    assert Gate.parse(str(g)) == g
