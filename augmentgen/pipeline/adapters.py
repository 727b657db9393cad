"""Run an albumentations ``Compose`` or a torchvision v2 transform as one pipeline stage.

Both get a per-sample seed drawn by the pipeline, so they replay and stay independent of
DataLoader workers like native ops. They are opaque to fusion and loop over samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from augmentgen.core.batch import Batch, Sample
from augmentgen.core.params import Params
from augmentgen.core.rng import RNG, Array, bernoulli, randint


@dataclass(frozen=True)
class SeedParams(Params):
    """``seed``: ``[B]`` int64 seed handed to the wrapped transform per sample."""

    seed: Array


def _to_uint8_hwc(t: torch.Tensor) -> np.ndarray:
    arr = t.detach().cpu()
    if arr.is_floating_point():
        arr = (arr.clamp(0, 1) * 255.0).round().to(torch.uint8)
    return np.ascontiguousarray(arr.permute(1, 2, 0).numpy())


class _SeededStage:
    kind = "opaque"
    registry_name = "adapter"

    def __init__(self, p: float = 1.0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}.p must be in [0, 1], got {p}")
        self.p = p

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return size

    def sample_params(self, batch: Batch | Sample, rng: RNG) -> Params:
        n = batch.batch_size
        return SeedParams(applied=bernoulli(rng, self.p, n), seed=randint(rng, 0, 2**31 - 1, n))

    def _run(self, image: np.ndarray, seed: int) -> np.ndarray:
        raise NotImplementedError

    def apply_sample(self, sample: Sample, params: Params) -> Sample:
        assert isinstance(params, SeedParams)
        p = params.to_numpy()
        if not bool(np.asarray(p.applied)[0]):
            return sample
        return sample.replace(image=self._run(sample.image, int(np.asarray(p.seed)[0])))

    def apply(self, batch: Batch, params: Params) -> Batch:
        assert isinstance(params, SeedParams)
        p = params.to_numpy()
        rows = []
        for i in range(batch.batch_size):
            img = batch.image[i]
            if not bool(np.asarray(p.applied)[i]):
                rows.append(img)
                continue
            out = self._run(_to_uint8_hwc(img), int(np.asarray(p.seed)[i]))
            t = torch.from_numpy(np.ascontiguousarray(out.reshape(out.shape[0], out.shape[1], -1))).permute(2, 0, 1)
            rows.append(t.to(img.device, img.dtype) / 255.0 if img.is_floating_point() else t.to(img.device))
        if [tuple(r.shape) for r in rows] != [tuple(rows[0].shape)] * len(rows):
            raise ValueError(f"{type(self).__name__}: the wrapped transform changed image shapes within a batch")
        return batch.replace(image=torch.stack(rows))

    def to_dict(self) -> dict[str, Any]:
        raise ValueError(f"{type(self).__name__} wraps a foreign object and cannot be serialized to a recipe")


class AlbumentationsStage(_SeededStage):
    """An albumentations ``Compose`` (image-only targets) as a stage; reseeded per sample.

    Example:
        >>> import albumentations as A  # doctest: +SKIP
        >>> Pipeline([AlbumentationsStage(A.Compose([A.HorizontalFlip()]))])  # doctest: +SKIP
    """

    registry_name = "albumentations"

    def __init__(self, compose: Any, p: float = 1.0) -> None:
        super().__init__(p)
        self.compose = compose

    def _run(self, image: np.ndarray, seed: int) -> np.ndarray:
        self.compose.set_random_seed(seed)  # the Compose's own generators, not global state
        out = self.compose(image=image)["image"]
        return np.asarray(out)


class TorchvisionStage(_SeededStage):
    """A torchvision v2 transform as a stage.

    torchvision v2 draws from the global torch RNG, so each call runs inside
    ``torch.random.fork_rng`` seeded with the sample's seed: the caller's global state is
    restored afterwards and the result depends only on the sample's seed.
    """

    registry_name = "torchvision"

    def __init__(self, transform: Any, p: float = 1.0) -> None:
        super().__init__(p)
        self.transform = transform

    def _run(self, image: np.ndarray, seed: int) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        with torch.random.fork_rng(devices=[]):
            torch.random.manual_seed(seed)
            out = self.transform(t)
        return np.ascontiguousarray(torch.as_tensor(out).permute(1, 2, 0).numpy())
