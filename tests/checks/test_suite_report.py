"""run_checks end to end, metrics.json and a self-contained report.html."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from augmentgen.checks.report import read_training_log, verdict, write_outputs
from augmentgen.checks.suite import ALL_CHECKS, CheckConfig, auto_feature_size, run_checks
from augmentgen.data import ArrayDataset


def _planted(heldout: ArrayDataset, real: ArrayDataset) -> ArrayDataset:
    imgs, labs = heldout.images.copy(), heldout.labels.copy()
    imgs[:5], labs[:5] = real.images[:5], real.labels[:5]  # near-copies of training images
    imgs[5:8], labs[5:8] = imgs[8], labs[8]  # duplicates
    return ArrayDataset(imgs, labs, heldout.classes, "heldout+planted")


@pytest.fixture(scope="module")
def run(real_small, heldout_small, tiny_classifier):
    cfg = CheckConfig(
        features="classifier",
        kid_subset_size=200,
        kid_subsets=10,
        modes_per_class=4,
        gates=["near_copy_fraction <= 0.01", "recall >= 0.3", "label_agreement >= 0.99"],
    )
    return run_checks(_planted(heldout_small, real_small), real_small, config=cfg, classifier=tiny_classifier)


def test_run_measures_everything_and_gates(run) -> None:
    keys = [r.details["key"] for r in run.results]
    for key in (
        "fid",
        "kid",
        "precision",
        "recall",
        "density",
        "coverage",
        "vendi",
        "vendi_ratio",
        "class_spread_ratio",
        "mode_coverage",
        "near_copy_fraction",
        "duplicate_fraction",
        "exact_duplicate_fraction",
        "label_agreement",
        "label_agreement_min",
        "label_agreement_ratio",
        "inception_score",
    ):
        assert key in keys
    assert run.get("near_copy_fraction").value == pytest.approx(5 / 300)
    assert run.get("exact_duplicate_fraction").value == pytest.approx(3 / 300)
    failed = {r.details["key"] for r in run.failed}
    assert failed == {"near_copy_fraction", "label_agreement"}
    assert not run.passed
    assert run.space == "classifier"
    assert all(v >= 0 for v in run.timings.values())


def test_metrics_json_and_report(run, tmp_path: Path) -> None:
    log = [
        {"step": s, "loss_d": 1 + 0.1 * (-1) ** s, "loss_g": 2.0, "d_real_acc": 0.6, "r_t": 0.5}
        for s in range(1, 30)
    ]
    paths = write_outputs(run, tmp_path, training_log=log, title="test report")
    m = json.loads(paths["metrics"].read_text())
    assert m["passed"] is False
    assert sorted(m["failed_gates"]) == ["label_agreement >= 0.99", "near_copy_fraction <= 0.01"]
    assert m["metrics"]["recall"]["passed"] is True and m["metrics"]["recall"]["threshold"] == 0.3
    assert m["metrics"]["fid"]["better"] == "lower"
    assert m["training"]["steps"] == 29
    html = paths["report"].read_text()
    assert "FAIL: 2 of 3 gates fail." in html
    assert "Near-copy fraction (pixels)" in html and "FID (classifier)" in html
    # self-contained: every image is embedded, nothing is fetched
    srcs = re.findall(r'src="([^"]+)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in html and "https://" not in html
    for name in (
        "per_class.png",
        "confusion.png",
        "memorization_ratios.png",
        "memorization_pairs.png",
        "training_curves.png",
        "samples_class0.png",
        "duplicates_0.png",
    ):
        png = paths["plots"] / name
        assert png.read_bytes()[:4] == b"\x89PNG", name


def test_verdict_states() -> None:
    from augmentgen.checks.suite import CheckRun
    from augmentgen.core.check import CheckResult

    ds = ArrayDataset(np.zeros((2, 4, 4, 1), np.uint8), np.array([0, 1]), ["a", "b"])
    ok = CheckRun(
        [CheckResult("x", 1.0, 0.5, True, {"key": "recall", "gates": ["recall >= 0.5"]})], {}, ds, ds, ds, "s"
    )
    assert verdict(ok)[0] == "pass"
    none = CheckRun([CheckResult("x", 1.0, details={"key": "recall"})], {}, ds, ds, ds, "s")
    assert verdict(none)[0] == "info"
    unknown = CheckRun([], {}, ds, ds, ds, "s", unknown_gates=["recal"])
    kind, head, lines = verdict(unknown)
    assert kind == "fail" and not unknown.passed and any("recal" in line for line in lines)


def test_config_rejects_unknown_keys_and_checks() -> None:
    with pytest.raises(ValueError, match="extra"):
        CheckConfig.model_validate({"featurs": "pixels"})
    with pytest.raises(ValueError, match="unknown check"):
        CheckConfig(checks=["fid", "fidd"])
    with pytest.raises(ValueError, match="gate"):
        CheckConfig(gates=["fid =< 3"])
    with pytest.raises(ValueError, match=r"unknown metric 'label_agreemnt' \(did you mean 'label_agreement'\?\)"):
        CheckConfig(gates={"label_agreemnt": ">= 0.5"})
    with pytest.raises(ValueError, match=r"unknown metric 'zz'; known: class_spread_ratio, "):
        CheckConfig(gates=["zz <= 1"])
    assert set(CheckConfig().checks) == set(ALL_CHECKS)


def test_subset_of_checks_and_no_classifier(real_small, heldout_small) -> None:
    cfg = CheckConfig(
        features="pixels", checks=["fid", "labels", "duplicates"], gates=["label_agreement >= 0.5"]
    )
    run = run_checks(heldout_small, real_small, config=cfg)
    assert [r.details["key"] for r in run.results] == [
        "fid",
        "duplicate_fraction",
        "exact_duplicate_fraction",
    ]
    assert run.unknown_gates == ["label_agreement"] and not run.passed


def test_mismatched_inputs_raise(real_small) -> None:
    rgb = ArrayDataset(np.zeros((4, 28, 28, 3), np.uint8), np.arange(4) % 10, real_small.classes)
    with pytest.raises(ValueError, match="generated images are"):
        run_checks(rgb, real_small, config=CheckConfig(features="pixels"))
    five = ArrayDataset(np.zeros((4, 28, 28, 1), np.uint8), np.arange(4) % 5, ["a"] * 5)
    with pytest.raises(ValueError, match="classes"):
        run_checks(five, real_small)
    with pytest.raises(ValueError, match="no reference classifier"):
        run_checks(real_small, real_small, config=CheckConfig(features="classifier"))


def test_auto_feature_size() -> None:
    assert [auto_feature_size(s) for s in (8, 28, 32, 48, 112, 224, 512)] == [64, 64, 64, 96, 224, 224, 224]


def test_read_training_log_forms(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"step": 1, "loss": 2.0}\n\n{"step": 2, "loss": 1.5}\n')
    (tmp_path / "b.json").write_text('[{"step": 1}]')
    (tmp_path / "c.jsonl").write_text("not json")
    assert len(read_training_log(tmp_path / "a.jsonl")) == 2
    assert read_training_log(tmp_path / "b.json") == [{"step": 1}]
    with pytest.raises(ValueError, match="c.jsonl"):
        read_training_log(tmp_path / "c.jsonl")


def test_label_agreement_ratio_is_one_for_real_images(real_small, tiny_classifier) -> None:
    cfg = CheckConfig(features="pixels", checks=["labels"])
    run = run_checks(real_small, real_small, config=cfg, classifier=tiny_classifier)
    ratio = run.get("label_agreement_ratio")
    assert ratio is not None and ratio.value == pytest.approx(1.0)
    assert ratio.details["real_agreement"] == pytest.approx(run.get("label_agreement").value)
