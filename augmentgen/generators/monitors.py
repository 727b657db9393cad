"""Health monitors that watch a generator while it trains, and the pure functions behind them.

A monitor is called after every step with the step's metrics; it returns extra metrics to log
and raises ``TrainingStopped`` (or ``TrainingDiverged``) to end the run with a clear message.

- ``DivergenceMonitor``: NaN/inf anywhere, or a loss beyond ``max_abs_loss``.
- ``OverfitMonitor``: the ADA heuristic ``r_t = E[sign(D(x_real))]`` (Karras et al. 2020,
  https://arxiv.org/abs/2006.06676); near 1 means D separates every real image: overfitting.
- ``CollapseMonitor``: a fixed latent batch, judged by a classifier: label coverage (share of
  classes predicted at least once), label agreement, and within-class pixel diversity relative
  to real images of the same classes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor

from augmentgen.core.batch import Batch
from augmentgen.core.rng import torch_rng

logger = logging.getLogger(__name__)


class TrainingStopped(RuntimeError):
    """A monitor ended the run; ``step`` is where, the message says why."""

    def __init__(self, message: str, step: int, reason: str = "stopped") -> None:
        super().__init__(message)
        self.step = step
        self.reason = reason


class TrainingDiverged(TrainingStopped):
    """Losses became NaN/inf or blew past the limit; the last good checkpoint is kept."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message, step, "diverged")


class Monitor(Protocol):
    def __call__(self, model: Any, step: int, metrics: dict[str, float]) -> dict[str, float]: ...


# ---- pure functions -----------------------------------------------------------------------------


def label_coverage(pred: Tensor, num_classes: int) -> float:
    """Share of the ``num_classes`` classes that appear at least once in ``pred`` ``[N]``."""
    return float(torch.unique(pred).numel()) / float(num_classes)


def within_class_diversity(images: Tensor, labels: Tensor) -> Tensor:
    """Mean pairwise L2 distance between images of the same label, per label present.

    Shape:
        images ``[N, C, H, W]``, labels ``[N]`` -> ``[K]`` for the K distinct labels with >= 2 images.

    Example:
        >>> within_class_diversity(torch.zeros(4, 1, 2, 2), torch.tensor([0, 0, 1, 1])).tolist()
        [0.0, 0.0]
    """
    flat = images.reshape(images.shape[0], -1).to(torch.float32)
    out = []
    for c in torch.unique(labels):
        x = flat[labels == c]
        n = x.shape[0]
        if n < 2:
            continue
        d = torch.cdist(x, x)  # [n, n], zero diagonal
        out.append(d.sum() / (n * (n - 1)))
    return torch.stack(out) if out else torch.zeros(0)


# ---- monitors -----------------------------------------------------------------------------------


class DivergenceMonitor:
    """Stop when any metric is NaN/inf, or any ``loss*`` metric exceeds ``max_abs_loss`` in magnitude."""

    def __init__(self, max_abs_loss: float = 1e4) -> None:
        self.max_abs_loss = max_abs_loss

    def __call__(self, model: Any, step: int, metrics: dict[str, float]) -> dict[str, float]:
        for k, v in metrics.items():
            if not math.isfinite(v):
                raise TrainingDiverged(f"training diverged at step {step}: metric '{k}' is {v}", step)
            if k.startswith("loss") and abs(v) > self.max_abs_loss:
                raise TrainingDiverged(
                    f"training diverged at step {step}: '{k}' = {v:.4g} exceeds max_abs_loss={self.max_abs_loss:g}",
                    step,
                )
        return {}


class OverfitMonitor:
    """The ADA overfitting heuristic r_t over the last ``window`` steps (needs a ``d_real_sign`` metric).

    r_t is logged every window. From step ``start`` on, r_t rising above ``target`` is warned of
    once, and again only after it has fallen back below: before ``start`` the generator's samples
    are poor and D tells real images apart from them easily, which is not overfitting.
    """

    def __init__(self, window: int = 100, target: float = 0.6, start: int = 0) -> None:
        self.window = window
        self.target = target
        self.start = start
        self._acc: list[float] = []
        self._above = False

    def __call__(self, model: Any, step: int, metrics: dict[str, float]) -> dict[str, float]:
        if "d_real_sign" not in metrics:
            return {}
        self._acc.append(metrics["d_real_sign"])
        if len(self._acc) < self.window:
            return {}
        rt = sum(self._acc) / len(self._acc)
        self._acc.clear()
        if step < self.start:
            return {"r_t": rt}
        if rt > self.target and not self._above:
            logger.warning(
                "step %d: r_t = %.3f > %.2f, the discriminator is overfitting the real data",
                step,
                rt,
                self.target,
            )
        self._above = rt > self.target
        return {"r_t": rt}


class CollapseMonitor:
    """Every ``every`` steps, judge a fixed latent batch of ``per_class`` samples per class.

    Args:
        num_classes: classes to generate.
        classify: images ``[N, C, H, W]`` in [0, 1] -> logits ``[N, num_classes]``; None skips coverage.
        reference: real images with labels, for the diversity baseline; None skips diversity.
        per_class: fixed samples per class.
        every: steps between checks (0 disables).
        min_coverage: alarm when fewer than this share of classes is predicted.
        min_diversity_ratio: alarm when generated within-class diversity / real diversity is below this.
        stop: raise ``TrainingStopped`` on an alarm instead of only logging it.
        seed: seed of the fixed latent batch.
        start: the first step at which low coverage or diversity is an alarm. Before it a
            generator that has not learned the classes yet is not called collapsed; one that
            had reached ``min_coverage`` (or ``min_diversity_ratio``) and fell below it is.

    Example:
        >>> mon = CollapseMonitor(10, classify=clf, reference=real_batch, every=500)  # doctest: +SKIP
    """

    def __init__(
        self,
        num_classes: int,
        *,
        classify: Callable[[Tensor], Tensor] | None = None,
        reference: Batch | None = None,
        per_class: int = 20,
        every: int = 500,
        min_coverage: float = 0.7,
        min_diversity_ratio: float = 0.2,
        stop: bool = False,
        seed: int = 0,
        start: int = 0,
    ) -> None:
        self.num_classes = num_classes
        self.classify = classify
        self.per_class = per_class
        self.every = every
        self.min_coverage = min_coverage
        self.min_diversity_ratio = min_diversity_ratio
        self.stop = stop
        self.seed = seed
        self.start = start
        self._reached: set[str] = set()  # figures that have been at or above their minimum
        self.real_diversity: float | None = None
        if reference is not None:
            if reference.label is None:
                raise ValueError("CollapseMonitor: reference batch needs labels")
            self.real_diversity = float(
                within_class_diversity(reference.as_float().image, reference.label).mean()
            )

    def measure(self, generator: Any) -> dict[str, float]:
        """Coverage, agreement and diversity figures of ``generator`` on the fixed latent batch."""
        labels = torch.arange(self.num_classes).repeat_interleave(self.per_class)
        batch = generator.generate(labels, len(labels), torch_rng(self.seed, "collapse-monitor"))
        images = batch.image.detach().float().cpu()
        out: dict[str, float] = {}
        div = float(within_class_diversity(images, labels).mean())
        out["collapse/diversity"] = div
        if self.real_diversity is not None and self.real_diversity > 0:
            out["collapse/diversity_ratio"] = div / self.real_diversity
        if self.classify is not None:
            with torch.no_grad():
                pred = self.classify(images).argmax(1).cpu()
            out["collapse/label_coverage"] = label_coverage(pred, self.num_classes)
            out["collapse/label_agreement"] = float((pred == labels).float().mean())
        return out

    def __call__(self, model: Any, step: int, metrics: dict[str, float]) -> dict[str, float]:
        if self.every <= 0 or step % self.every != 0:
            return {}
        out = self.measure(model)
        reasons = []
        judged = step >= self.start
        for key, least, text in (
            ("collapse/label_coverage", self.min_coverage, "label coverage {v:.2f} < {least}"),
            ("collapse/diversity_ratio", self.min_diversity_ratio, "within-class diversity {v:.3f} x real < {least}"),
        ):
            v = out.get(key)
            if v is None:
                continue
            if v < least and (judged or key in self._reached):
                reasons.append(text.format(v=v, least=least) + ("" if judged else ", down from above it"))
            if v >= least:
                self._reached.add(key)
        if not judged and not reasons:
            return out
        out["collapse/alarm"] = float(bool(reasons))
        if reasons:
            msg = f"mode-collapse alarm at step {step}: " + "; ".join(reasons)
            logger.warning(msg)
            if self.stop:
                raise TrainingStopped(msg, step, "collapsed")
        return out
