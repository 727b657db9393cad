"""Stability math: spread of metrics across seeds or checkpoints, and a summary of a trainer's health log.

A health log is a list of records (one per logged step), each a flat dict of numbers, as
the trainer writes to ``metrics.jsonl``: ``{"step": 100, "loss_d": 0.61, "loss_g": 1.9,
"d_real_acc": 0.7, "d_fake_acc": 0.8, "r_t": 0.65, "collapse/alarm": 1.0}``. Losses get an
oscillation figure, discriminator accuracies a drift, ``r_t`` (the ADA overfitting
heuristic) its range, and alarms a count: numeric keys ending in ``alarm`` that are
non-zero, string ``alarm``/``alarms`` entries, and ``r_t`` above ``rt_target`` in the tail of the
log (early on D tells a poor generator's samples apart easily; overfitting is r_t high late).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

LOSS_KEYS = ("loss_g", "loss_d", "loss")
D_ACC_KEYS = ("d_acc", "d_real_acc", "d_fake_acc", "d_acc_real", "d_acc_fake")


def metric_spread(runs: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Per metric across runs (seeds or checkpoints): mean, std, min, max, coefficient of variation.

    Metrics missing from a run or not finite there are skipped for that run.

    Example:
        >>> metric_spread([{"fid": 1.0}, {"fid": 3.0}])["fid"]["std"]
        1.0
    """
    keys = sorted({k for r in runs for k in r})
    out: dict[str, dict[str, float]] = {}
    for k in keys:
        vals = np.asarray([float(r[k]) for r in runs if k in r and math.isfinite(float(r[k]))])
        if vals.size == 0:
            continue
        mean = float(vals.mean())
        std = float(vals.std())
        out[k] = {
            "mean": mean,
            "std": std,
            "min": float(vals.min()),
            "max": float(vals.max()),
            "cv": std / abs(mean) if mean != 0 else float("inf") if std > 0 else 0.0,
            "n": float(vals.size),
        }
    return out


def oscillation(values: Sequence[float], *, window: int = 10) -> float:
    """How much a curve swings around its own trend: std of (value - moving average) over mean |value|.

    Example:
        >>> oscillation([1.0] * 20)
        0.0
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 3:
        return 0.0
    w = max(1, min(window, v.size))
    trend = np.convolve(v, np.ones(w) / w, mode="same")
    edge = w // 2
    resid = (v - trend)[edge : v.size - edge] if v.size > 2 * edge + 2 else v - v.mean()
    scale = float(np.abs(v).mean())
    return float(resid.std() / scale) if scale > 0 else 0.0


def drift(steps: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` per 1000 steps (a drifting discriminator accuracy shows here).

    Example:
        >>> round(drift([0, 1000, 2000], [0.5, 0.6, 0.7]), 6)
        0.1
    """
    s = np.asarray(steps, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(s) & np.isfinite(v)
    if ok.sum() < 2 or np.ptp(s[ok]) == 0:
        return 0.0
    return float(np.polyfit(s[ok] / 1000.0, v[ok], 1)[0])


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def summarize_health_log(
    records: Sequence[Mapping[str, Any]], *, tail: float = 0.5, rt_target: float = 0.6
) -> dict[str, Any]:
    """Figures that say whether training was healthy, from a trainer's health log.

    Args:
        records: one dict per logged step; numbers per key, ``step`` optional, ``alarm``/``alarms``
            a string or list of strings naming alarms that fired.
        tail: share of the log (the end) over which oscillation and drift are measured.
        rt_target: ``r_t`` above this in the tail counts as an alarm (Karras et al. 2020 use 0.6).

    Returns:
        ``{"steps": n, "oscillation": {key: v}, "d_acc_drift": {key: v}, "r_t": {...},
        "alarms": {name: count}, "last": {key: v}}``.

    Example:
        >>> summarize_health_log([{"step": 0, "loss_d": 1.0}, {"step": 1, "loss_d": 1.0, "alarm": "x"}])["alarms"]
        {'x': 1}
    """
    if not records:
        return {"steps": 0, "oscillation": {}, "d_acc_drift": {}, "r_t": {}, "alarms": {}, "last": {}}
    steps = [_num(r.get("step", i)) for i, r in enumerate(records)]
    start = int(len(records) * (1 - tail))
    numeric: dict[str, list[float]] = {}
    alarms: dict[str, int] = {}
    for i, r in enumerate(records):
        for k, v in r.items():
            if k in ("alarm", "alarms"):
                for a in [v] if isinstance(v, str) else list(v or []):
                    alarms[str(a)] = alarms.get(str(a), 0) + 1
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step":
                numeric.setdefault(k, [])
                if k.endswith("alarm") and v:
                    alarms[k] = alarms.get(k, 0) + 1
                if k == "r_t" and v > rt_target and i >= start:
                    alarms[f"r_t > {rt_target:g}"] = alarms.get(f"r_t > {rt_target:g}", 0) + 1
    series = {k: [_num(r.get(k)) for r in records] for k in numeric}
    osc = {k: oscillation(series[k][start:]) for k in series if k in LOSS_KEYS or k.startswith("loss_")}
    dacc = {k: drift(steps[start:], series[k][start:]) for k in series if k in D_ACC_KEYS}
    rt: dict[str, float] = {}
    if "r_t" in series:
        v = np.asarray(series["r_t"], dtype=np.float64)
        v = v[np.isfinite(v)]
        if v.size:
            rt = {"last": float(v[-1]), "mean": float(v.mean()), "max": float(v.max())}
    last = {k: next((x for x in reversed(vs) if math.isfinite(x)), math.nan) for k, vs in series.items()}
    return {
        "steps": len(records),
        "oscillation": osc,
        "d_acc_drift": dacc,
        "r_t": rt,
        "alarms": alarms,
        "last": last,
    }
