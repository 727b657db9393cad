"""Name -> class registries filled at import time by decorators (the only global state)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def did_you_mean(names: Iterable[str], known: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the first of ``names`` with a close match in ``known``, else ``""``.

    Example:
        >>> did_you_mean(["horizontal_flp"], ["horizontal_flip", "vertical_flip"])
        " (did you mean 'horizontal_flip'?)"
        >>> did_you_mean(["zzz"], ["steps"])
        ''
    """
    pool = sorted(known)
    for name in names:
        close = difflib.get_close_matches(str(name), pool, n=1, cutoff=0.6)
        if close:
            return f" (did you mean {close[0]!r}?)"
    return ""


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
            hint = did_you_mean([name], self._items)
            raise ValueError(f"unknown {self.kind} '{name}'{hint}; known: {known}") from None

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
