"""How useful generated images are: Classification Accuracy Score and label agreement.

- CAS (Ravuri & Vinyals 2019, https://arxiv.org/abs/1905.10887): train the reference
  classifier on generated images only, with the same recipe as on real data, and report its
  accuracy on the real test set.
- Label agreement: the classifier trained on real data, applied to generated images, agrees
  with the labels they were generated for.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from augmentgen.core.batch import Batch
from augmentgen.core.generator import SampleGenerator
from augmentgen.core.rng import torch_rng
from augmentgen.eval.classifier import ReferenceClassifier, train_classifier

logger = logging.getLogger(__name__)


def _generate(
    generator: SampleGenerator, labels: Tensor, rng: torch.Generator, temperature: float | None
) -> Batch:
    kw: dict[str, Any] = {} if temperature is None else {"temperature": temperature}
    return generator.generate(labels, int(labels.numel()), rng, **kw)


def generate_dataset(
    generator: SampleGenerator,
    num_classes: int,
    per_class: int,
    *,
    seed: int = 0,
    temperature: float | None = None,
    chunk: int = 2000,
) -> tuple[Batch, float]:
    """``per_class`` generated images of every class as a uint8 CPU Batch, and the images/s it ran at.

    Images are quantised to uint8 as they would be when stored; labels are class-major.
    """
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    rng = torch_rng(seed, "generate-dataset")
    parts: list[Tensor] = []
    t0 = time.perf_counter()
    for i in range(0, labels.numel(), chunk):
        b = _generate(generator, labels[i : i + chunk], rng, temperature)
        parts.append((b.image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu())
    rate = labels.numel() / max(1e-9, time.perf_counter() - t0)
    return Batch(image=torch.cat(parts), label=labels), rate


@dataclass(frozen=True)
class Agreement:
    """Label agreement of generated images with a real-data classifier."""

    agreement: float
    per_class: list[float]
    coverage: float
    confusion: list[list[int]] = field(repr=False)


def label_agreement(
    generator: SampleGenerator,
    classifier: ReferenceClassifier,
    *,
    per_class: int = 1000,
    seed: int = 0,
    temperature: float | None = None,
) -> Agreement:
    """Share of generated images the real-data classifier assigns to their conditioning label.

    Example:
        >>> label_agreement(gan, clf, per_class=100).agreement  # doctest: +SKIP
        0.93
    """
    c = classifier.num_classes
    data, _ = generate_dataset(generator, c, per_class, seed=seed, temperature=temperature)
    assert data.label is not None
    pred = classifier.predict_logits(data.image).argmax(1).cpu()
    conf = torch.zeros(c, c, dtype=torch.int64)
    conf.index_put_((data.label, pred), torch.ones_like(pred), accumulate=True)
    per = (conf.diag().float() / conf.sum(1).clamp(min=1).float()).tolist()
    return Agreement(
        agreement=float((pred == data.label).float().mean()),
        per_class=per,
        coverage=float(torch.unique(pred).numel()) / c,
        confusion=conf.tolist(),
    )


@dataclass(frozen=True)
class CASResult:
    """Classification Accuracy Score and what went into it."""

    cas: float
    per_class: list[float]
    n_train: int
    generate_images_per_s: float
    train_seconds: float
    train_cpu_seconds: float


def classification_accuracy_score(
    generator: SampleGenerator,
    test: Batch,
    *,
    num_classes: int,
    per_class: int = 6000,
    seed: int = 0,
    temperature: float | None = None,
    classifier_kwargs: dict[str, Any] | None = None,
) -> CASResult:
    """Train the reference classifier on ``per_class`` generated images per class; its accuracy on ``test``.

    Args:
        generator: any label-conditioned ``SampleGenerator``.
        test: the real, labeled test set.
        num_classes: classes to generate.
        per_class: generated training images per class.
        seed: seeds generation and classifier training.
        temperature: latent temperature passed to ``generate`` when given.
        classifier_kwargs: passed to ``train_classifier`` (steps, batch_size, lr, config, ...);
            use the same as for the real-data classifier so the two accuracies compare.

    Example:
        >>> classification_accuracy_score(gan, test, num_classes=10, per_class=6000).cas  # doctest: +SKIP
    """
    if test.label is None:
        raise ValueError("classification_accuracy_score: the test batch needs labels")
    data, rate = generate_dataset(generator, num_classes, per_class, seed=seed, temperature=temperature)
    run = train_classifier(data, seed=seed, **(classifier_kwargs or {}))
    pred = run.model.predict_logits(test.image).argmax(1).cpu()
    lab = test.label.cpu()
    per = [
        float((pred[lab == k] == k).float().mean()) if bool((lab == k).any()) else 0.0
        for k in range(num_classes)
    ]
    cas = float((pred == lab).float().mean())
    logger.info(
        "CAS %.4f from %d generated images (%.0f s classifier training)", cas, data.batch_size, run.seconds
    )
    return CASResult(cas, per, data.batch_size, rate, run.seconds, run.cpu_seconds)
