"""Shared fixtures for eval tests: digits and one thread."""

from __future__ import annotations

import pytest
import torch

from augmentgen.core import Batch
from augmentgen.data import load_digits


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_train() -> Batch:
    return load_digits("train").to_batch()


@pytest.fixture(scope="session")
def digits_test() -> Batch:
    return load_digits("test").to_batch()
