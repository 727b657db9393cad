"""Per-sample parameters of a transform call: a dataclass of arrays with a leading B dimension."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from augmentgen.core.rng import Array

P = TypeVar("P", bound="Params")


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}

@dataclass(frozen=True)
class Params:
    """Base of every op's params. Subclasses add their own per-sample fields.

    Args:
        applied: ``[B]`` bool, whether the op acts on each sample (drawn from ``p``).

    Every field is a ``[B, ...]`` tensor or numpy array, so params can be indexed,
    moved between backends, serialized per sample and replayed.
    """

    applied: Array

    def fields(self) -> dict[str, Array]:
        names = _FIELD_NAMES.get(type(self))
        if names is None:  # dataclasses.fields costs ~4 us a call; the per-sample path asks per op
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in dataclasses.fields(self))
        return {k: getattr(self, k) for k in names}

    def to_torch(self: P, device: torch.device | str = "cpu") -> P:
        conv = {
            k: (torch.as_tensor(v).to(device) if isinstance(v, np.ndarray) else v.to(device))
            for k, v in self.fields().items()
        }
        return dataclasses.replace(self, **conv)

    def to_numpy(self: P) -> P:
        for v in self.__dict__.values():
            if not isinstance(v, np.ndarray):
                break
        else:
            return self  # already numpy: the per-sample path calls this once per op and sample
        conv = {
            k: (v.detach().cpu().numpy() if isinstance(v, Tensor) else np.asarray(v))
            for k, v in self.fields().items()
        }
        return dataclasses.replace(self, **conv)

    def select(self: P, idx: Any) -> P:
        """Rows ``idx`` of every field."""
        return dataclasses.replace(self, **{k: v[idx] for k, v in self.fields().items()})

    def rows(self: P, n: int) -> list[P]:
        """``[self.select(slice(i, i + 1)) for i in range(n)]``, without ``dataclasses.replace`` per row."""
        return self.pick(range(n))

    def pick(self: P, indices: Iterable[int]) -> list[P]:
        """Row ``i`` as a one-row Params for each ``i`` of ``indices``.

        Params are plain frozen dataclasses of arrays (no ``__post_init__``), so a row is a new
        instance whose fields are one-row slices (the batched per-sample path splits every
        batch into rows, or picks the rows an op acts on).
        """
        fields = self.fields()
        cls = type(self)
        if not hasattr(self, "__dict__"):  # a slotted subclass: take the general path
            return [self.select(slice(i, i + 1)) for i in indices]
        out: list[P] = []
        for i in indices:
            row = object.__new__(cls)
            row.__dict__.update({k: v[i : i + 1] for k, v in fields.items()})
            out.append(row)
        return out

    def expand(self: P, n: int) -> P:
        """Row 0 repeated ``n`` times (``same_on_batch``)."""
        out: dict[str, Array] = {}
        for k, v in self.fields().items():
            if isinstance(v, Tensor):
                out[k] = v[:1].expand(n, *v.shape[1:]).clone()
            else:
                out[k] = np.repeat(np.asarray(v)[:1], n, axis=0)
        return dataclasses.replace(self, **out)

    def per_sample(self) -> list[dict[str, Any]]:
        """One JSON-able dict per sample (provenance)."""
        np_self = self.to_numpy()
        fields = np_self.fields()
        n = len(np.asarray(fields["applied"]))
        rows: list[dict[str, Any]] = []
        for i in range(n):
            rows.append({k: np.asarray(v)[i].tolist() for k, v in fields.items()})
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Fields as nested lists plus the class name (for replay from JSON)."""
        np_self = self.to_numpy()
        return {"type": type(self).__name__, **{k: np.asarray(v).tolist() for k, v in np_self.fields().items()}}


def params_from_dict(cls: type[P], data: dict[str, Any]) -> P:
    """Inverse of ``Params.to_dict`` for a known class (numpy arrays)."""
    names = {f.name for f in dataclasses.fields(cls)}
    extra = set(data) - names - {"type"}
    if extra:
        raise ValueError(f"{cls.__name__}: unknown params fields {sorted(extra)}")
    return cls(**{k: np.asarray(data[k]) for k in names})
