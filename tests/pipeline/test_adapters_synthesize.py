from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from augmentgen.core.batch import Batch
from augmentgen.core.rng import torch_rng
from augmentgen.pipeline import AlbumentationsStage, Pipeline, Synthesize, SyntheticDataset, TorchvisionStage


def test_albumentations_stage_is_seeded_per_sample(photo32: np.ndarray) -> None:
    A = pytest.importorskip("albumentations")
    pipe = Pipeline([AlbumentationsStage(A.Compose([A.Affine(rotate=(-40, 40), p=1.0)]))], seed=0)
    a, b, c = pipe(photo32, index=1), pipe(photo32, index=1), pipe(photo32, index=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    out = pipe(Batch(torch.from_numpy(photo32).permute(2, 0, 1).unsqueeze(0).float() / 255), rng=torch_rng(0))
    assert out.image.shape == (1, 3, 32, 32) and out.image.dtype == torch.float32


def test_torchvision_stage_is_seeded_and_restores_global_rng(photo32: np.ndarray) -> None:
    from torchvision.transforms import v2

    pipe = Pipeline([TorchvisionStage(v2.RandomRotation(40))], seed=0)
    state = torch.random.get_rng_state()
    a, b, c = pipe(photo32, index=1), pipe(photo32, index=1), pipe(photo32, index=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


class ConstGenerator:
    """Makes images whose every pixel is label/10: easy to recognize, conditioned for real."""

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, condition: Any, n: int, rng: torch.Generator) -> Batch:
        self.calls += 1
        labels = torch.as_tensor(condition).reshape(n)
        noise = torch.rand(n, 1, 1, 1, generator=rng) * 0.01
        img = (labels.float() / 10).view(n, 1, 1, 1).expand(n, 1, 8, 8) + noise
        return Batch(img, label=labels)

    def save_pretrained(self, directory: str | Path) -> None:  # pragma: no cover - protocol only
        raise NotImplementedError

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs: Any) -> ConstGenerator:  # pragma: no cover
        raise NotImplementedError


def test_synthesize_replaces_a_fraction_with_same_label_samples_reproducibly() -> None:
    real = torch.ones(200, 3, 16, 16)
    labels = torch.arange(200) % 10
    pipe = Pipeline([Synthesize(ConstGenerator(), p=0.3)])
    out = pipe(Batch(real, label=labels), rng=torch_rng(0))
    syn = torch.tensor(out.meta["synthetic"])
    assert 30 < int(syn.sum()) < 90
    assert torch.equal(out.label, labels)
    assert torch.equal(out.image[~syn], real[~syn])
    gen_vals = out.image[syn][:, 0, 0, 0]
    assert torch.allclose(gen_vals, labels[syn].float() / 10, atol=0.011)
    assert out.image.shape == real.shape  # 1-channel 8x8 generator output fitted to 3x16x16
    again = pipe(Batch(real, label=labels), rng=torch_rng(0))
    assert torch.equal(again.image, out.image)


def test_synthesize_append_and_per_sample_and_errors() -> None:
    real = torch.ones(10, 1, 8, 8)
    labels = torch.arange(10)
    out = Pipeline([Synthesize(ConstGenerator(), p=1.0, mode="append")])(Batch(real, label=labels), rng=torch_rng(0))
    assert out.batch_size == 20 and torch.equal(out.label, torch.cat([labels, labels]))
    assert out.meta["synthetic"] == [False] * 10 + [True] * 10
    s = Pipeline([Synthesize(ConstGenerator(), p=1.0)], seed=0)({"image": np.full((8, 8, 1), 255, np.uint8), "label": 7}, index=0)
    assert abs(int(s["image"][0, 0, 0]) - 178) <= 3
    with pytest.raises(ValueError, match="labels"):
        Pipeline([Synthesize(ConstGenerator(), p=1.0)])(Batch(real), rng=torch_rng(0))


def test_synthetic_dataset_is_balanced_and_item_reproducible() -> None:
    ds = SyntheticDataset(ConstGenerator(), n=30, num_classes=10, seed=1)
    labels = [ds[i][1] for i in range(30)]
    assert np.bincount(labels).tolist() == [3] * 10
    assert torch.equal(ds[4][0], ds[4][0]) and not torch.equal(ds[4][0], ds[14][0])
