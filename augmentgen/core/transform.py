"""The protocols every stage of a pipeline follows."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from augmentgen.core.batch import Batch, Sample
from augmentgen.core.params import Params
from augmentgen.core.rng import RNG


@runtime_checkable
class Transform(Protocol):
    """Draw random parameters, then apply them; ``apply(x, params)`` is replay.

    ``sample_params`` draws from numpy ``rng`` for a ``Sample`` (numpy params) and from a
    ``torch.Generator`` for a ``Batch`` (tensor params on the generator's device).
    """

    p: float

    def sample_params(self, batch: Batch | Sample, rng: RNG) -> Params: ...

    def apply(self, batch: Batch, params: Params) -> Batch: ...

    def apply_sample(self, sample: Sample, params: Params) -> Sample: ...

    def to_dict(self) -> dict[str, Any]: ...
