"""Quality gates: recipe thresholds per metric (``label_agreement >= 0.9``) applied to check results.

A gate names a metric key (the snake_case ``details["key"]`` of a ``CheckResult``, see
``checks.base.METRICS``), a comparison and a bound. Recipes write them as a list of
strings or as a mapping ``{label_agreement: ">= 0.9"}``.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from augmentgen.core.check import CheckResult

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_GATE_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(>=|<=|>|<)\s*([-+0-9.eE]+|inf|-inf)\s*$")
_BOUND_RE = re.compile(r"^\s*(>=|<=|>|<)\s*([-+0-9.eE]+|inf|-inf)\s*$")


@dataclass(frozen=True)
class Gate:
    """One threshold on one metric.

    Args:
        key: metric key, e.g. ``"near_copy_fraction"``.
        op: one of ``>=``, ``<=``, ``>``, ``<``.
        threshold: the bound.

    Example:
        >>> Gate.parse("label_agreement >= 0.9").holds(0.93)
        True
    """

    key: str
    op: str
    threshold: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(
                f"gate on '{self.key}': comparison must be one of {sorted(_OPS)}, got {self.op!r}"
            )

    @staticmethod
    def parse(text: str, key: str | None = None) -> Gate:
        """``"key op value"``, or ``"op value"`` when ``key`` is given (the mapping form)."""
        if key is not None:
            m = _BOUND_RE.match(str(text))
            if not m:
                raise ValueError(f"gate on '{key}': expected e.g. '>= 0.9', got {text!r}")
            return Gate(key, m.group(1), float(m.group(2)))
        m = _GATE_RE.match(str(text))
        if not m:
            raise ValueError(
                f"gate: expected 'metric >= value' (e.g. 'label_agreement >= 0.9'), got {text!r}"
            )
        return Gate(m.group(1), m.group(2), float(m.group(3)))

    def holds(self, value: float) -> bool:
        """Whether ``value`` passes (NaN never does)."""
        return not math.isnan(value) and _OPS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.key} {self.op} {self.threshold:g}"


def parse_gates(spec: Sequence[str] | Mapping[str, str | float] | None) -> list[Gate]:
    """Gates from a recipe: a list of ``"key op value"`` strings or a ``{key: "op value"}`` mapping.

    A bare number in the mapping form is rejected: it does not say which side passes.

    Example:
        >>> [str(g) for g in parse_gates({"fid": "<= 30", "recall": ">= 0.5"})]
        ['fid <= 30', 'recall >= 0.5']
    """
    if spec is None:
        return []
    if isinstance(spec, Mapping):
        out = []
        for k, v in spec.items():
            if isinstance(v, (int, float)):
                raise ValueError(f"gate on '{k}': write the comparison too, e.g. '>= {v}' or '<= {v}'")
            out.append(Gate.parse(str(v), key=str(k)))
        return out
    if isinstance(spec, str):
        return [Gate.parse(spec)]
    return [Gate.parse(s) for s in spec]


def result_key(result: CheckResult) -> str:
    """The metric key of a result (``details["key"]``, else its name)."""
    return str(result.details.get("key", result.name))


def apply_gates(results: Iterable[CheckResult], gates: Sequence[Gate]) -> list[CheckResult]:
    """Results with ``threshold`` and ``passed`` set from the gates on their keys (several gates: all must hold).

    Example:
        >>> r = CheckResult("Label agreement", 0.8, details={"key": "label_agreement"})
        >>> apply_gates([r], parse_gates(["label_agreement >= 0.9"]))[0].passed
        False
    """
    out = []
    for r in results:
        mine = [g for g in gates if g.key == result_key(r)]
        if not mine:
            out.append(r)
            continue
        passed = all(g.holds(float(r.value)) for g in mine)
        details = {**r.details, "gates": [str(g) for g in mine]}
        out.append(dataclasses.replace(r, threshold=mine[0].threshold, passed=passed, details=details))
    return out


def unknown_gate_keys(results: Iterable[CheckResult], gates: Sequence[Gate]) -> list[str]:
    """Keys of gates that match no result (a typo, or a check that did not run)."""
    keys = {result_key(r) for r in results}
    return sorted({g.key for g in gates} - keys)


def failed(results: Iterable[CheckResult]) -> list[CheckResult]:
    """The results whose gate failed."""
    return [r for r in results if not r.passed]
