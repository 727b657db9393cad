"""What happens to boxes after a warp: clip to the canvas, then drop the ones too small or too hidden.

Boxes are always clipped to the output canvas. A box is dropped (its ``valid`` flag goes
False) when, after clipping, it is narrower or lower than ``min_size`` pixels, smaller than
``min_area`` square pixels, or keeps less than ``min_visibility`` of its warped area inside
the canvas. Dropped boxes keep their slot and label, so ``labels`` and instance masks stay
aligned with the box rows (albumentations' ``BboxParams`` drops rows instead, and makes
callers re-align their label lists).

A ``Pipeline(box_policy=...)`` applies one policy to every warp of the call (fused or not);
without it each geometric op's own defaults apply (``min_size`` 1 px, nothing else).

Example:
    >>> BoxPolicy(min_visibility=0.3).to_dict()
    {'min_visibility': 0.3, 'min_area': 0.0, 'min_size': 1.0}
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from augmentgen.ops.functional.warp import WarpSpec


@dataclass(frozen=True)
class BoxPolicy:
    """Which warped boxes stay valid.

    Args:
        min_visibility: fraction in [0, 1] of the warped box area that must lie inside the canvas.
        min_area: square pixels a clipped box must keep (0 disables).
        min_size: pixels of width and height a clipped box must keep.

    Example:
        >>> BoxPolicy.from_dict({"min_area": 16}).min_area
        16.0
    """

    min_visibility: float = 0.0
    min_area: float = 0.0
    min_size: float = 1.0

    def __post_init__(self) -> None:
        for name in ("min_visibility", "min_area", "min_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ValueError(f"BoxPolicy.{name} must be a finite number >= 0, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.min_visibility > 1:
            raise ValueError(f"BoxPolicy.min_visibility must be in [0, 1], got {self.min_visibility}")

    def spec(self, base: WarpSpec) -> WarpSpec:
        """``base`` (interpolation, border) with this policy's box thresholds."""
        return dataclasses.replace(
            base, min_box_size=self.min_size, min_visibility=self.min_visibility, min_area=self.min_area
        )

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(data: Any, where: str = "box_policy") -> BoxPolicy:
        """From a mapping (``to_dict`` output); unknown keys or bad values raise naming ``where``."""
        if isinstance(data, BoxPolicy):
            return data
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a mapping of min_visibility/min_area/min_size, got {data!r}")
        allowed = {f.name for f in dataclasses.fields(BoxPolicy)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        try:
            return BoxPolicy(**data)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
