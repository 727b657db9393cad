"""Put generated samples next to real ones: ``Synthesize`` (a pipeline stage) and ``SyntheticDataset``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from augmentgen.core.batch import Batch, Sample
from augmentgen.core.generator import SampleGenerator
from augmentgen.core.params import Params
from augmentgen.core.rng import RNG, Array, bernoulli, child_seed, derive_seed, torch_rng


@dataclass(frozen=True)
class SynthParams(Params):
    """``applied`` marks rows replaced (or duplicated, in append mode); ``seed`` ``[B]`` seeds the generator call."""

    seed: Array


def _fit(images: Tensor, like: Tensor, where: str) -> Tensor:
    """Generated images in the channel count, size and dtype of the real ones."""
    if images.shape[1] != like.shape[1]:
        if images.shape[1] == 1 and like.shape[1] == 3:
            images = images.expand(-1, 3, -1, -1)
        elif images.shape[1] == 3 and like.shape[1] == 1:
            images = (images * torch.tensor([0.299, 0.587, 0.114], device=images.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
        else:
            raise ValueError(f"{where}: generator makes {images.shape[1]}-channel images, the batch has {like.shape[1]}")
    if images.shape[-2:] != like.shape[-2:]:
        images = F.interpolate(images, size=like.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{where}: generator returned NaN or infinite pixels")
    images = images.clamp(0, 1).to(like.device)
    if like.dtype == torch.uint8:
        return (images * 255.0).round().to(torch.uint8)
    return images.to(like.dtype)


class Synthesize:
    """Replace (or append) a per-sample random fraction ``p`` of rows with generated samples of the same label.

    Args:
        generator: any ``SampleGenerator``; it is conditioned on the rows' labels.
        p: per-sample probability of being replaced (or of getting a generated twin appended).
        mode: ``"replace"`` keeps the batch size; ``"append"`` adds the generated rows at the end.

    Rows that come from the generator are marked in ``batch.meta["synthetic"]``.
    """

    kind = "opaque"
    registry_name = "synthesize"

    def __init__(self, generator: SampleGenerator, *, p: float = 0.5, mode: str = "replace") -> None:
        if mode not in ("replace", "append"):
            raise ValueError(f"Synthesize.mode must be 'replace' or 'append', got {mode!r}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Synthesize.p must be in [0, 1], got {p}")
        self.generator, self.p, self.mode = generator, float(p), mode

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return size

    def sample_params(self, batch: Batch | Sample, rng: RNG) -> Params:
        n = batch.batch_size
        seed = child_seed(rng)
        seeds: Array = (
            torch.full((n,), seed, dtype=torch.int64, device=rng.device)
            if isinstance(rng, torch.Generator)
            else np.full(n, seed, dtype=np.int64)
        )
        return SynthParams(applied=bernoulli(rng, self.p, n), seed=seeds)

    def _generate(self, labels: Tensor, seed: int) -> Batch:
        dev = getattr(self.generator, "device", labels.device)
        gen = torch_rng(seed, device=dev)
        out = self.generator.generate(labels.to(dev), int(labels.shape[0]), gen)
        if out.batch_size != labels.shape[0]:
            raise ValueError(f"Synthesize: generator returned {out.batch_size} samples for {labels.shape[0]} labels")
        return out

    def apply(self, batch: Batch, params: Params) -> Batch:
        assert isinstance(params, SynthParams)
        if batch.label is None:
            raise ValueError("Synthesize needs labels on the batch to condition the generator")
        applied = torch.as_tensor(params.applied, device=batch.device, dtype=torch.bool)
        synthetic = list(batch.meta.get("synthetic", [False] * batch.batch_size))
        if not bool(applied.any()):
            return batch if self.mode == "append" else batch.replace(meta={**batch.meta, "synthetic": synthetic})
        seed = int(torch.as_tensor(params.seed)[0])
        labels = batch.label[applied]
        gen = _fit(self._generate(labels, seed).image, batch.image, "Synthesize")
        if self.mode == "replace":
            image = batch.image.clone()
            image[applied] = gen
            rows = applied.nonzero().flatten().tolist()
            for r in rows:
                synthetic[r] = True
            # boxes and masks of a replaced row no longer describe it
            boxes = batch.boxes
            if boxes is not None:
                boxes = type(boxes)(boxes.xyxy, boxes.valid & ~applied.unsqueeze(1), boxes.labels)
            return batch.replace(image=image, boxes=boxes, meta={**batch.meta, "synthetic": synthetic})
        extra = Batch(image=gen, label=labels, meta={"synthetic": [True] * int(labels.shape[0])})
        base = batch.replace(meta={**batch.meta, "synthetic": synthetic})
        if batch.boxes is not None or batch.masks is not None or batch.keypoints is not None:
            base = base.replace(boxes=None, masks=None, keypoints=None)
        return Batch.cat([base, extra])

    def apply_sample(self, sample: Sample, params: Params) -> Sample:
        assert isinstance(params, SynthParams)
        p = params.to_numpy()
        if not bool(np.asarray(p.applied)[0]):
            return sample
        if self.mode == "append":
            raise ValueError("Synthesize(mode='append') needs a Batch; per-sample calls can only replace")
        if sample.label is None:
            raise ValueError("Synthesize needs the sample's label to condition the generator")
        like = Sample(sample.image).to_batch().image
        gen = _fit(self._generate(torch.tensor([sample.label]), int(np.asarray(p.seed)[0])).image.cpu(), like, "Synthesize")
        img = gen[0].permute(1, 2, 0).contiguous().numpy()
        return sample.replace(image=img, boxes=None, box_valid=None, box_labels=None, masks=None,
                              meta={**(sample.meta or {}), "synthetic": True})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.registry_name, "p": self.p, "mode": self.mode,
                "generator": getattr(self.generator, "registry_name", type(self.generator).__name__)}


class SyntheticDataset(Dataset[tuple[Tensor, int]]):
    """``n`` generated samples with balanced labels; item ``i`` is generated from ``(seed, i)`` alone.

    Returns ``(image CHW float tensor in [0, 1], label)``; generation runs where the item is
    asked for (DataLoader workers included) and is independent of the worker count.
    """

    def __init__(self, generator: SampleGenerator, n: int, num_classes: int, *, seed: int = 0) -> None:
        if n < 0 or num_classes <= 0:
            raise ValueError(f"SyntheticDataset: n={n} and num_classes={num_classes} must be positive")
        self.generator, self.n, self.num_classes, self.seed = generator, n, num_classes, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        if not 0 <= i < self.n:
            raise IndexError(f"SyntheticDataset index {i} out of range [0, {self.n})")
        label = i % self.num_classes
        dev = getattr(self.generator, "device", torch.device("cpu"))
        rng = torch_rng(derive_seed(self.seed, "synthetic", i), device=dev)
        with torch.no_grad():
            out = self.generator.generate(torch.tensor([label], device=dev), 1, rng)
        return out.image[0].detach().cpu().clamp(0, 1), label
