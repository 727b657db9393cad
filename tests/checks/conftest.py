"""Shared fixtures for checks tests: small Fashion-MNIST samples, one thread, a tiny reference classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from augmentgen.data import ArrayDataset, load_fashion_mnist, subset_per_class


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def fm_train() -> ArrayDataset:
    return load_fashion_mnist("train")


@pytest.fixture(scope="session")
def fm_test() -> ArrayDataset:
    return load_fashion_mnist("test")


@pytest.fixture(scope="session")
def real_small(fm_train: ArrayDataset) -> ArrayDataset:
    """40 per class from the training split (the 'real' / training side)."""
    return subset_per_class(fm_train, 40, seed=0)


@pytest.fixture(scope="session")
def heldout_small(fm_test: ArrayDataset) -> ArrayDataset:
    """30 per class from the test split (never seen by anything: a perfect 'generator')."""
    return subset_per_class(fm_test, 30, seed=1)


@pytest.fixture(scope="session")
def tiny_classifier(fm_train: ArrayDataset) -> nn.Module:
    """A small ReferenceClassifier trained through the eval API on 3000 real images (a few seconds)."""
    from augmentgen.eval.classifier import ClassifierConfig, train_classifier

    torch.set_num_threads(1)
    data = fm_train.to_batch(np.arange(3000))
    run = train_classifier(
        data, config=ClassifierConfig(width=8, hidden=32), steps=120, batch_size=64, seed=0
    )
    return run.model.eval()
