"""Protocol of checks: accumulate with ``update``, compute once with ``compute``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from augmentgen.core.batch import Batch


@dataclass(frozen=True)
class CheckResult:
    """One measured figure and its gate.

    Args:
        name: metric name as shown to users, e.g. ``"FID (EffNet-Lite0)"``.
        value: the figure.
        threshold: the gate bound, or None when the check only reports.
        passed: whether the gate holds (True when there is no gate).
        details: anything else worth keeping (per-class values, std, pairs).
    """

    name: str
    value: float
    threshold: float | None = None
    passed: bool = True
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Check(Protocol):
    name: str

    def update(self, batch: Batch) -> None: ...

    def compute(self) -> CheckResult: ...
