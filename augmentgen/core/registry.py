"""Name -> class registries filled at import time by decorators (the only global state)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Registry:
    """A named registry: ``@reg.register("rotate")`` then ``reg.get("rotate")``.

    Example:
        >>> r = Registry("demo")
        >>> @r.register("thing")
        ... class Thing: ...
        >>> r.get("thing") is Thing
        True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            obj.registry_name = name  # type: ignore[attr-defined]
            return obj

        return deco

    def get(self, name: str) -> Any:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise ValueError(f"unknown {self.kind} '{name}'; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def items(self) -> list[tuple[str, Any]]:
        return sorted(self._items.items())


OPS = Registry("op")
GENERATORS = Registry("generator")
CHECKS = Registry("check")
FEATURES = Registry("feature extractor")


def register(name: str) -> Callable[[T], T]:
    """Register an op class under ``name`` (snake_case)."""
    return OPS.register(name)
