"""Protocol of learned sample generators (cGAN, CVAE, text-to-image, diffusers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from augmentgen.core.batch import Batch
from augmentgen.core.rng import RNG


@runtime_checkable
class SampleGenerator(Protocol):
    """Makes labeled images.

    ``condition`` is a ``[n]`` label tensor, a list of class ids, or a list of prompts.
    ``generate`` returns a Batch with ``image`` float in [0, 1] on the model's device and
    ``label`` set; the same ``rng`` state gives the same images.
    """

    def generate(self, condition: Tensor | list[Any], n: int, rng: RNG) -> Batch: ...

    def save_pretrained(self, directory: str | Path) -> None: ...

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs: Any) -> SampleGenerator: ...
