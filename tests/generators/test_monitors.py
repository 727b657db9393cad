"""Monitors: the collapse alarm fires on a collapsed generator and not on real data; divergence; r_t."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from augmentgen.core import Batch
from augmentgen.generators import CollapseMonitor, ConditionalGAN, Trainer, TrainingStopped
from augmentgen.generators.config import TrainSpec
from augmentgen.generators.monitors import (
    DivergenceMonitor,
    OverfitMonitor,
    TrainingDiverged,
    label_coverage,
    within_class_diversity,
)


def nearest_mean_classifier(data: Batch) -> Callable[[Tensor], Tensor]:
    """Logits = minus the distance to each class's mean image (about 90% right on digits)."""
    assert data.label is not None
    x = data.image.flatten(1)
    means = torch.stack([x[data.label == c].mean(0) for c in range(10)])

    def classify(images: Tensor) -> Tensor:
        return -torch.cdist(images.flatten(1).float(), means)

    return classify


class ReplayGenerator:
    """Returns real images of the asked labels: the healthy extreme."""

    num_classes = 10

    def __init__(self, data: Batch) -> None:
        self.data = data

    def generate(self, condition: Tensor, n: int, rng: Any) -> Batch:
        assert self.data.label is not None
        idx = []
        for i, c in enumerate(condition.tolist()):
            rows = torch.nonzero(self.data.label == c).flatten()
            idx.append(int(rows[(7 * i) % len(rows)]))
        return self.data.index(torch.tensor(idx))


def collapse(gan: ConditionalGAN) -> ConditionalGAN:
    """Make the generator ignore z and y: every sample is the same image."""
    with torch.no_grad():
        for net in (gan.g, gan.g_ema):
            net.out.weight.zero_()
            net.out.bias.fill_(0.3)
    return gan


def test_collapse_alarm_fires_on_collapsed_generator(
    digits: Batch, tiny_gan: Callable[..., ConditionalGAN], caplog: pytest.LogCaptureFixture
) -> None:
    mon = CollapseMonitor(
        10, classify=nearest_mean_classifier(digits), reference=digits, every=1, per_class=8
    )
    with caplog.at_level(logging.WARNING):
        out = mon(collapse(tiny_gan()), 1, {})
    assert out["collapse/alarm"] == 1.0
    assert out["collapse/label_coverage"] == pytest.approx(0.1)
    assert out["collapse/diversity"] == pytest.approx(0.0, abs=1e-6)
    assert "mode-collapse alarm at step 1" in caplog.text


def test_collapse_alarm_quiet_on_real_images(digits: Batch) -> None:
    mon = CollapseMonitor(
        10, classify=nearest_mean_classifier(digits), reference=digits, every=1, per_class=8
    )
    out = mon(ReplayGenerator(digits), 1, {})
    assert out["collapse/alarm"] == 0.0
    assert out["collapse/label_coverage"] == 1.0
    assert out["collapse/label_agreement"] > 0.8
    assert 0.7 < out["collapse/diversity_ratio"] < 1.3


def test_collapse_stops_training_when_asked(
    tmp_path: Path, digits: Batch, tiny_gan: Callable[..., ConditionalGAN]
) -> None:
    mon = CollapseMonitor(10, classify=nearest_mean_classifier(digits), every=2, per_class=4, stop=True)

    def keep_collapsed(trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        collapse(trainer.model)

    spec = TrainSpec(steps=10, batch_size=16, log_every=1, sample_every=0, checkpoint_every=0)
    # the callback runs after the monitors, so step 1 collapses G and step 2's check sees it
    t = Trainer(tiny_gan(), digits, spec, tmp_path, monitors=[mon], callbacks=[keep_collapsed])
    with pytest.raises(TrainingStopped, match="mode-collapse alarm at step 2") as e:
        t.fit()
    assert e.value.reason == "collapsed"


def test_within_class_diversity_golden() -> None:
    x = torch.tensor([0.0, 1.0, 0.0, 3.0]).reshape(4, 1, 1, 1)
    y = torch.tensor([0, 0, 1, 1])
    assert within_class_diversity(x, y).tolist() == [1.0, 3.0]
    assert label_coverage(torch.tensor([1, 1, 4]), 10) == pytest.approx(0.2)


def test_divergence_monitor() -> None:
    mon = DivergenceMonitor(max_abs_loss=100.0)
    assert mon(None, 1, {"loss": 5.0, "d_real": 1e9}) == {}
    with pytest.raises(TrainingDiverged, match="'loss_g' is nan"):
        mon(None, 2, {"loss_g": float("nan")})
    with pytest.raises(TrainingDiverged, match="exceeds max_abs_loss"):
        mon(None, 3, {"loss": -500.0})
    with pytest.raises(TrainingDiverged, match="'grad_norm/d' is inf"):
        mon(None, 4, {"grad_norm/d": float("inf")})


def test_overfit_monitor_rt(caplog: pytest.LogCaptureFixture) -> None:
    mon = OverfitMonitor(window=4, target=0.6)
    outs = [mon(None, s, {"d_real_sign": v}) for s, v in enumerate([1.0, 1.0, 0.5, 0.9], 1)]
    assert outs[:3] == [{}, {}, {}]
    assert outs[3]["r_t"] == pytest.approx(0.85)
    assert "overfitting" in caplog.text
    assert mon(None, 5, {"loss": 1.0}) == {}


def test_overfit_monitor_judges_from_start_and_warns_once_per_rise(caplog: pytest.LogCaptureFixture) -> None:
    mon = OverfitMonitor(window=1, target=0.6, start=3)
    rts = [0.9, 0.95, 0.7, 0.8, 0.4, 0.65, 0.3]  # steps 1..7
    with caplog.at_level(logging.WARNING):
        outs = [mon(None, s, {"d_real_sign": v}) for s, v in enumerate(rts, 1)]
    assert [o["r_t"] for o in outs] == pytest.approx(rts)  # logged from the first step
    warned = [r.getMessage().split(":")[0] for r in caplog.records if "overfitting" in r.getMessage()]
    assert warned == ["step 3", "step 6"]  # not before start; once per rise above the target


def test_collapse_monitor_logs_but_does_not_alarm_before_start(
    digits: Batch, tiny_gan: Callable[..., ConditionalGAN], caplog: pytest.LogCaptureFixture
) -> None:
    mon = CollapseMonitor(
        10, classify=nearest_mean_classifier(digits), reference=digits, every=1, per_class=8, start=5
    )
    gan = collapse(tiny_gan())
    with caplog.at_level(logging.WARNING):
        early = mon(gan, 4, {})
        assert "collapse/alarm" not in early and early["collapse/label_coverage"] == pytest.approx(0.1)
        assert "mode-collapse" not in caplog.text
        assert mon(gan, 5, {})["collapse/alarm"] == 1.0
    assert "mode-collapse alarm at step 5" in caplog.text


def test_collapse_monitor_alarms_before_start_when_coverage_was_reached_and_lost(
    digits: Batch, tiny_gan: Callable[..., ConditionalGAN], caplog: pytest.LogCaptureFixture
) -> None:
    mon = CollapseMonitor(
        10, classify=nearest_mean_classifier(digits), reference=digits, every=1, per_class=8, start=100
    )
    with caplog.at_level(logging.WARNING):
        healthy = mon(ReplayGenerator(digits), 1, {})
        lost = mon(collapse(tiny_gan()), 2, {})
    assert "collapse/alarm" not in healthy
    assert lost["collapse/alarm"] == 1.0
    assert "mode-collapse alarm at step 2: label coverage 0.10 < 0.7, down from above it" in caplog.text


def test_trainer_judges_r_t_from_warn_after(tmp_path: Path, digits: Batch, tiny_gan: Callable[..., ConditionalGAN]) -> None:
    spec = TrainSpec(steps=3000, batch_size=16, monitor={"warn_after": 0.25})
    overfit = [m for m in Trainer(tiny_gan(), digits, spec, tmp_path).monitors if isinstance(m, OverfitMonitor)]
    assert [m.start for m in overfit] == [750]
