"""DiffAugment (Zhao et al. 2020, https://arxiv.org/abs/2006.10738) on the project's own torch ops.

The discriminator sees real and generated images through the same random, differentiable
augmentation, in the D step and in the G step, so it cannot memorise a small real set and
the generator still receives gradients through the augmentation. Policies follow the paper:

- ``color``: brightness, saturation, contrast (``ops.color``; brightness is a factor here, as in
  torchvision, where the paper adds an offset).
- ``translation``: integer shifts up to ``1/8`` of the side, zero fill (``ops.geometric.Translate``,
  nearest sampling).
- ``cutout``: one zero square of half the side at a random place (``ops.erasing.Cutout``).

Every op draws per-sample parameters with ``sample_params(batch, rng)`` and applies them with
``apply(batch, params)``; the ops are differentiable w.r.t. the image. A call over a batch that
holds real and fake rows draws one independent set of parameters per row, as the reference
implementation does when it augments ``cat([real, fake])``; ``pair`` applies the same
parameters to row ``i`` of both halves instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from augmentgen.core.batch import Batch
from augmentgen.core.params import Params

POLICIES = ("color", "translation", "cutout")


def _cat_params(a: Params, b: Params) -> Params:
    """Row-wise concatenation of two params of the same op."""
    out: dict[str, Any] = {}
    for k, v in a.fields().items():
        w = b.fields()[k]
        out[k] = torch.cat([torch.as_tensor(v), torch.as_tensor(w).to(torch.as_tensor(v).device)])
    return dataclasses.replace(a, **out)


@dataclass
class DiffAugment:
    """A differentiable augmentation policy for GAN training.

    Args:
        policy: names from ``POLICIES`` in order of application.
        translation_ratio: largest shift as a fraction of the side (paper: 1/8).
        cutout_ratio: side of the cutout square as a fraction of the image side (paper: 1/2).
        brightness: brightness factor range (the paper adds U(-0.5, 0.5) on [-1, 1] data).
        saturation: saturation factor range (paper: [0, 2]).
        contrast: contrast factor range (paper: [0.5, 1.5]).

    Shape:
        ``x [B, C, H, W]`` float -> same shape, differentiable w.r.t. ``x``.

    Example:
        >>> aug = DiffAugment.from_policy("translation,cutout")
        >>> aug(torch.rand(4, 1, 28, 28), torch.Generator().manual_seed(0)).shape
        torch.Size([4, 1, 28, 28])
    """

    policy: tuple[str, ...] = ()
    translation_ratio: float = 0.125
    cutout_ratio: float = 0.5
    brightness: tuple[float, float] = (0.5, 1.5)
    saturation: tuple[float, float] = (0.0, 2.0)
    contrast: tuple[float, float] = (0.5, 1.5)
    _ops: list[Any] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bad = [p for p in self.policy if p not in POLICIES]
        if bad:
            raise ValueError(f"DiffAugment: unknown policy {bad}; choose from {list(POLICIES)}")

    @classmethod
    def from_policy(cls, policy: str, **kwargs: Any) -> DiffAugment:
        """From a comma-separated policy string such as ``"color,translation,cutout"`` ("" = identity)."""
        names = tuple(p.strip() for p in policy.split(",") if p.strip())
        return cls(policy=names, **kwargs)

    @property
    def enabled(self) -> bool:
        return bool(self.policy)

    def ops(self) -> list[Any]:
        """The op instances of the policy, in order (built on first use)."""
        if self._ops is None:
            from augmentgen.ops.color import Brightness, Contrast, Saturation
            from augmentgen.ops.erasing import Cutout
            from augmentgen.ops.geometric import Translate

            ops: list[Any] = []
            for name in self.policy:
                if name == "color":
                    ops += [
                        Brightness(brightness=self.brightness),
                        Saturation(saturation=self.saturation),
                        Contrast(contrast=self.contrast),
                    ]
                elif name == "translation":
                    r = self.translation_ratio
                    ops.append(Translate(translate=(r, r), interpolation="nearest", fill=0.0))
                elif name == "cutout":
                    ops.append(Cutout(num_holes=1, size=(self.cutout_ratio, self.cutout_ratio), fill=0.0))
            self._ops = ops
        return self._ops

    def __call__(self, x: Tensor, rng: torch.Generator) -> Tensor:
        """Augment every row of ``x`` with its own parameters drawn from ``rng``."""
        if not self.policy:
            return x
        batch = Batch(image=x)
        for op in self.ops():
            batch = op.apply(batch, op.sample_params(batch, rng))
        return batch.image

    def pair(self, real: Tensor, fake: Tensor, rng: torch.Generator) -> tuple[Tensor, Tensor]:
        """Augment ``real`` and ``fake`` (same B) with the same parameters for row ``i`` of each."""
        if real.shape != fake.shape:
            raise ValueError(
                f"DiffAugment.pair: real {tuple(real.shape)} and fake {tuple(fake.shape)} differ"
            )
        if not self.policy:
            return real, fake
        b = real.shape[0]
        batch = Batch(image=torch.cat([real, fake]))
        for op in self.ops():
            params = op.sample_params(Batch(image=real), rng)
            batch = op.apply(batch, _cat_params(params, params))
        return batch.image[:b], batch.image[b:]
