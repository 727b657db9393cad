"""The fixed-magnitude ops the policies are made of, in torchvision's units (``policies``, ``augmix``).

``fixed_op(name, v, fill)`` is torchvision's op ``name`` (``ShearX`` ... ``Invert``) at the signed
magnitude ``v``; ``MAX_MAGNITUDE`` the largest magnitude of the ops that have a sign, at a table's last bin.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from augmentgen.ops.base import Op
from augmentgen.ops.color import Brightness, Contrast, Saturation
from augmentgen.ops.geometric import Rotate, Shear, Translate
from augmentgen.ops.levels import AutoContrast, Equalize, Invert, Posterize, Sharpness, Solarize

# The largest magnitude of each op (at the last bin); bin m of n is m / (n - 1) of it.
MAX_MAGNITUDE = {
    "ShearX": 0.3, "ShearY": 0.3, "TranslateX": 150.0 / 331.0, "TranslateY": 150.0 / 331.0, "Rotate": 30.0,
    "Brightness": 0.9, "Color": 0.9, "Contrast": 0.9, "Sharpness": 0.9,
}  # fmt: skip


def fixed_op(name: str, v: float, fill: float) -> Op:
    """Op ``name`` (torchvision's name) at the signed magnitude ``v`` (the op's own units: degrees for rotations, ``tan`` for shears, fractions of the side for shifts, factor - 1, bits, a threshold)."""
    geo: dict[str, Any] = {"border_mode": "constant", "fill": fill}
    if name in ("ShearX", "ShearY"):
        deg = math.degrees(math.atan(v))
        return Shear(shear_x=(deg, deg) if name == "ShearX" else (0.0, 0.0), shear_y=(deg, deg) if name == "ShearY" else (0.0, 0.0), **geo)
    if name in ("TranslateX", "TranslateY"):
        return Translate(translate=((v, v), (0.0, 0.0)) if name == "TranslateX" else ((0.0, 0.0), (v, v)), **geo)
    if name == "Rotate":
        return Rotate(degrees=(v, v), **geo)
    factors: dict[str, Callable[..., Op]] = {
        "Brightness": lambda f: Brightness(brightness=f),
        "Color": lambda f: Saturation(saturation=f),
        "Contrast": lambda f: Contrast(contrast=f),
        "Sharpness": lambda f: Sharpness(factor=f),
    }
    if name in factors:
        return factors[name]((1.0 + v, 1.0 + v))
    if name == "Posterize":
        return Posterize(bits=int(v))
    if name == "Solarize":
        return Solarize(threshold=v)
    return {"AutoContrast": AutoContrast, "Equalize": Equalize, "Invert": Invert}[name]()


def level(name: str, m: float, bins: int, *, shift: float = MAX_MAGNITUDE["TranslateX"], bits: int = 8) -> float:
    """Bin ``m`` (of ``bins``) of op ``name``, unsigned, as torchvision's tables give it.

    ``shift`` is the largest shift (RandAugment and AutoAugment: 150/331 of the side, AugMix: 1/3)
    and ``bits`` posterize's first bin (8, AugMix: 4); posterize loses 4 bits over the bins and
    keeps at least 1 (torchvision's AugMix table reaches 0, a black image, at its last two bins).
    """
    if name in ("TranslateX", "TranslateY"):
        return shift * m / (bins - 1)
    if name in MAX_MAGNITUDE:
        return MAX_MAGNITUDE[name] * m / (bins - 1)
    if name == "Posterize":
        return float(max(1, round(bits - m / ((bins - 1) / 4))))  # round half to even, as torch's round
    if name == "Solarize":
        return 1.0 - m / (bins - 1)
    return 0.0
