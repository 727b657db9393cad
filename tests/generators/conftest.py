"""Tiny models and the digits set, shared by the generator tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from augmentgen.core import Batch
from augmentgen.data import load_digits
from augmentgen.generators import CGANConfig, ConditionalGAN, ConditionalVAE, CVAEConfig


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits() -> Batch:
    return load_digits("train").to_batch()


def make_tiny_gan(**kw: object) -> ConditionalGAN:
    cfg: dict[str, object] = {"image_size": 8, "g_width": 8, "d_width": 8, "latent_dim": 8, "embed_dim": 8}
    cfg["diffaugment"] = ""
    cfg.update(kw)
    return ConditionalGAN(CGANConfig(**cfg))  # type: ignore[arg-type]


def make_tiny_vae(**kw: object) -> ConditionalVAE:
    cfg: dict[str, object] = {"image_size": 8, "width": 8, "latent_dim": 4, "embed_dim": 4, "hidden": 32}
    cfg["kl_warmup_steps"] = 20
    cfg.update(kw)
    return ConditionalVAE(CVAEConfig(**cfg))  # type: ignore[arg-type]


@pytest.fixture
def tiny_gan() -> Callable[..., ConditionalGAN]:
    """Factory of 8x8 cGANs (no DiffAugment unless asked)."""
    return make_tiny_gan


@pytest.fixture
def tiny_vae() -> Callable[..., ConditionalVAE]:
    """Factory of 8x8 CVAEs."""
    return make_tiny_vae
