"""CAS and label agreement: high for a generator that replays real images, at chance for a label-blind one."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from augmentgen.core import Batch
from augmentgen.eval.cas import classification_accuracy_score, generate_dataset, label_agreement
from augmentgen.eval.classifier import ClassifierConfig, train_classifier

SMALL = ClassifierConfig(image_size=8, width=8, hidden=32)
KW = {"config": SMALL, "steps": 150, "batch_size": 64, "lr": 3e-3}


class Replay:
    """Real training images of the asked label (rng picks which): an ideal generator."""

    def __init__(self, data: Batch, shuffle_labels: bool = False) -> None:
        self.data = data
        self.shuffle = shuffle_labels

    def generate(self, condition: Tensor, n: int, rng: torch.Generator, **kw: Any) -> Batch:
        assert self.data.label is not None
        lab = condition.clone()
        if self.shuffle:  # ignores the condition: images of random classes
            lab = torch.randint(0, 10, (n,), generator=rng)
        out = []
        for c in lab.tolist():
            rows = torch.nonzero(self.data.label == c).flatten()
            out.append(rows[int(torch.randint(0, len(rows), (1,), generator=rng))])
        return Batch(self.data.image[torch.stack(out)], condition.clone())


def test_generate_dataset_is_uint8_class_major(digits_train: Batch) -> None:
    data, rate = generate_dataset(Replay(digits_train), 10, 3, seed=0)  # type: ignore[arg-type]
    assert data.image.dtype == torch.uint8 and data.image.shape == (30, 1, 8, 8)
    assert data.label is not None and data.label.tolist() == [c for c in range(10) for _ in range(3)]
    assert rate > 0
    again, _ = generate_dataset(Replay(digits_train), 10, 3, seed=0)  # type: ignore[arg-type]
    assert torch.equal(again.image, data.image)


def test_cas_high_for_real_images_chance_for_label_blind(digits_train: Batch, digits_test: Batch) -> None:
    good = classification_accuracy_score(
        Replay(digits_train),
        digits_test,
        num_classes=10,
        per_class=100,
        classifier_kwargs=KW,  # type: ignore[arg-type]
    )
    bad = classification_accuracy_score(
        Replay(digits_train, shuffle_labels=True),
        digits_test,
        num_classes=10,
        per_class=100,
        classifier_kwargs=KW,  # type: ignore[arg-type]
    )
    assert good.cas > 0.85
    assert bad.cas < 0.3
    assert good.n_train == 1000 and len(good.per_class) == 10


def test_label_agreement(digits_train: Batch, digits_test: Batch) -> None:
    clf = train_classifier(digits_train, **KW).model  # type: ignore[arg-type]
    good = label_agreement(Replay(digits_train), clf, per_class=30)  # type: ignore[arg-type]
    bad = label_agreement(Replay(digits_train, shuffle_labels=True), clf, per_class=30)  # type: ignore[arg-type]
    assert good.agreement > 0.9 and good.coverage == 1.0
    assert bad.agreement < 0.3
    assert sum(map(sum, good.confusion)) == 300
    assert good.per_class[0] == pytest.approx(good.confusion[0][0] / 30)
