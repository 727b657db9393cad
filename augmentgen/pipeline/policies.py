r"""Augmentation policies built from the ops: TrivialAugment, RandAugment, AutoAugment (and AugMix).

Each is a composite of the library's own ops and composites, so its draws are per sample
(also on a batch: torchvision's v2 policies draw one op for a whole batch tensor), seeded,
replayable and recorded in the trace like every other stage.

- ``TrivialAugment`` (Müller & Hutter 2021, https://arxiv.org/abs/2103.10158; torchvision's
  ``TrivialAugmentWide``): one op of fourteen (identity included) per image, at a magnitude
  drawn uniformly over the op's wide range and a random sign: a ``one_of`` over the ops with
  symmetric ranges.
- ``RandAugment`` (Cubuk et al. 2020, https://arxiv.org/abs/1909.13719; torchvision's
  ``RandAugment``): ``num_ops`` ops in a row, each drawn from the same fourteen (with
  replacement), at one fixed magnitude with a random sign: ``num_ops`` such ``one_of``\ s.
- ``AutoAugment`` (Cubuk et al. 2019, https://arxiv.org/abs/1805.09501; torchvision's
  ``AutoAugment``): one of 25 learned sub-policies per image (ImageNet, CIFAR-10 or SVHN), each
  two ops applied with their own probability and magnitude.
- ``AugMix`` (``pipeline.augmix``): an op, not a composite, as it blends several chains.

Magnitudes follow torchvision's tables (``policy_ops``): shear up to 0.3 (as ``atan`` in degrees),
rotation 30 degrees, shifts 150/331 of the side, brightness / colour / contrast / sharpness
factors 1 +- 0.9, posterize 8 to 4 bits, solarize thresholds 1 to 0. Where this differs from
torchvision: geometric ops are bilinear (theirs nearest), shear is about the centre (theirs
about the top-left corner, which shifts the sheared image too) and shifts are fractions of the
side (theirs whole pixels, rounded toward zero).
"""

from __future__ import annotations

import math
from typing import Any

from augmentgen.core.registry import did_you_mean
from augmentgen.core.rng import RNG, Array
from augmentgen.ops.base import Op
from augmentgen.ops.color import Brightness, Contrast, Saturation
from augmentgen.ops.geometric import Rotate, Shear, Translate
from augmentgen.ops.levels import AutoContrast, Equalize, Posterize, Sharpness, Solarize
from augmentgen.pipeline.augmix import AugMix
from augmentgen.pipeline.compose import (
    Composite,
    OneOf,
    Pipeline,
    RandomApply,
    Stage,
    _sample_children,
    _Shape,
)
from augmentgen.pipeline.plan import Step
from augmentgen.pipeline.policy_ops import MAX_MAGNITUDE, fixed_op, level

WIDE_SHEAR_DEG = math.degrees(math.atan(0.99))  # shear factor 0.99 as an angle: 44.7 degrees
WIDE_FACTOR = 0.99  # brightness, colour, contrast, sharpness: 1 +- 0.99
WIDE_ROTATE = 135.0
WIDE_TRANSLATE = 32 / 224  # 32 px at ImageNet's 224 px, as a fraction of the side


class TrivialAugment(OneOf):
    """One op per image from TrivialAugmentWide's fourteen, with a uniform magnitude and sign.

    Args:
        p: probability that an image gets one of the thirteen non-identity ops is ``p * 13 / 14``
            (the identity is the fourteenth choice).
        fill: value of the pixels the geometric ops uncover, in [0, 1] (torchvision: 0).
        translate: largest shift, a fraction of the side (TrivialAugmentWide: 32 px at 224).

    Example:
        >>> import numpy as np
        >>> from augmentgen.pipeline import Pipeline
        >>> Pipeline([TrivialAugment()], seed=0)(np.zeros((8, 8, 3), np.uint8)).shape
        (8, 8, 3)
    """

    registry_name = "trivial_augment"

    def __init__(self, *, p: float = 1.0, fill: float = 0.0, translate: float = WIDE_TRANSLATE) -> None:
        if not 0.0 <= fill <= 1.0:
            raise ValueError(f"trivial_augment.fill must be in [0, 1], got {fill}")
        if not 0.0 <= translate <= 1.0:
            raise ValueError(f"trivial_augment.translate must be in [0, 1], got {translate}")
        geo: dict[str, Any] = {"border_mode": "constant", "fill": fill}
        s, f = WIDE_SHEAR_DEG, WIDE_FACTOR
        ops = [
            Shear(shear_x=(-s, s), shear_y=(0.0, 0.0), **geo),
            Shear(shear_x=(0.0, 0.0), shear_y=(-s, s), **geo),
            Translate(translate=(translate, 0.0), **geo),
            Translate(translate=(0.0, translate), **geo),
            Rotate(degrees=(-WIDE_ROTATE, WIDE_ROTATE), **geo),
            Brightness(brightness=(1 - f, 1 + f)),
            Saturation(saturation=(1 - f, 1 + f)),
            Contrast(contrast=(1 - f, 1 + f)),
            Sharpness(factor=(1 - f, 1 + f)),
            Posterize(bits=(2, 8)),
            Solarize(threshold=(0.0, 1.0)),
            AutoContrast(),
            Equalize(),
        ]
        super().__init__(ops, p=p * len(ops) / (len(ops) + 1))
        self.p_policy, self.fill, self.translate = float(p), float(fill), float(translate)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.registry_name, "p": self.p_policy, "fill": self.fill, "translate": self.translate}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> TrivialAugment:
        extra = sorted(set(data) - {"name", "p", "fill", "translate"})
        if extra:
            raise ValueError(f"{where}(trivial_augment): unknown key(s) {extra}; allowed: ['fill', 'p', 'translate']")
        try:
            return cls(**{k: float(v) for k, v in data.items() if k != "name"})
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}(trivial_augment): {e}") from e


# ---- RandAugment and AutoAugment: torchvision's magnitude tables --------------------------------
# RandAugment's thirteen ops besides the identity (its fourteenth choice, see ``_slot``).
RAND_OPS = (
    "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness",
    "Posterize", "Solarize", "AutoContrast", "Equalize",
)  # fmt: skip


def _signed(name: str, m: float, bins: int, fill: float) -> tuple[list[Op], list[float]]:
    """The leaves of op ``name`` at bin ``m``: ``+v`` and ``-v`` (half the weight each) where it has a sign."""
    v = level(name, m, bins)
    if name in MAX_MAGNITUDE:
        return [fixed_op(name, v, fill), fixed_op(name, -v, fill)], [0.5, 0.5]
    return [fixed_op(name, v, fill)], [1.0]


def _number(where: str, key: str, value: Any, low: float, high: float, whole: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{where}.{key} must be a number in [{low}, {high}], got {value!r}")
    if whole and value != int(value):
        raise ValueError(f"{where}.{key} must be a whole number, got {value!r}")
    return float(value)


def _policy_from_dict(cls: Any, data: dict[str, Any], where: str, keys: set[str]) -> Any:
    name = cls.registry_name
    extra = sorted(set(data) - keys - {"name"})
    if extra:
        raise ValueError(f"{where}({name}): unknown key(s) {extra}{did_you_mean(extra, keys)}; allowed: {sorted(keys)}")
    try:
        return cls(**{k: v for k, v in data.items() if k != "name"})
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}({name}): {e}") from e


class RandAugment(Composite):
    """``num_ops`` ops in a row per image, each one of fourteen at one magnitude with a random sign.

    Args:
        num_ops: ops per image (torchvision: 2); each is drawn anew, with replacement.
        magnitude: the magnitude bin, 0 to ``num_magnitude_bins - 1`` (torchvision: 9 of 31);
            a fraction between bins interpolates.
        num_magnitude_bins: how many bins span each op's range (torchvision: 31).
        p: probability that each of the ``num_ops`` draws applies an op at all (1: torchvision;
            timm's ``rand-m9`` applies each with 0.5); the identity is among the fourteen choices.
        fill: value of the pixels the geometric ops uncover, in [0, 1].

    Example:
        >>> import numpy as np
        >>> Pipeline([RandAugment(num_ops=2, magnitude=9)], seed=0)(np.zeros((8, 8, 3), np.uint8)).shape
        (8, 8, 3)
    """

    registry_name = "rand_augment"

    def __init__(
        self, *, num_ops: int = 2, magnitude: float = 9, num_magnitude_bins: int = 31, p: float = 1.0, fill: float = 0.0
    ) -> None:
        where = "rand_augment"
        self.num_ops = int(_number(where, "num_ops", num_ops, 0, 16, whole=True))
        self.num_magnitude_bins = int(_number(where, "num_magnitude_bins", num_magnitude_bins, 2, 1024, whole=True))
        self.magnitude = _number(where, "magnitude", magnitude, 0, self.num_magnitude_bins - 1)
        self.p = _number(where, "p", p, 0.0, 1.0)
        self.fill = _number(where, "fill", fill, 0.0, 1.0)
        self.transforms: list[Stage] = [self._slot() for _ in range(self.num_ops)]

    def _slot(self) -> OneOf:
        leaves: list[Op] = []
        weights: list[float] = []
        for name in RAND_OPS:
            ops, w = _signed(name, self.magnitude, self.num_magnitude_bins, self.fill)
            leaves += ops
            weights += w
        return OneOf(leaves, weights=weights, p=self.p * len(RAND_OPS) / (len(RAND_OPS) + 1))

    def sample_steps(self, shape: _Shape, rng: RNG, path: str, mask: Array | None) -> tuple[list[Step], _Shape]:
        return _sample_children(self.transforms, shape, rng, path, mask)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.registry_name, "num_ops": self.num_ops, "magnitude": self.magnitude,
            "num_magnitude_bins": self.num_magnitude_bins, "p": self.p, "fill": self.fill,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> RandAugment:
        keys = {"num_ops", "magnitude", "num_magnitude_bins", "p", "fill"}
        return _policy_from_dict(cls, data, where, keys)  # type: ignore[no-any-return]


# torchvision's AutoAugment policies: 25 sub-policies of two (op, probability, magnitude bin of 10)
_Sub = tuple[tuple[str, float, int | None], tuple[str, float, int | None]]
AUTO_POLICIES: dict[str, tuple[_Sub, ...]] = {
    "imagenet": (
        (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)), (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)), (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)), (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, None)), (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)), (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
        (("Rotate", 0.8, 8), ("Color", 0.4, 0)), (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
        (("Equalize", 0.0, None), ("Equalize", 0.8, None)), (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)), (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)), (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, None)), (("Color", 0.4, 0), ("Equalize", 0.6, None)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)), (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)), (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    ),
    "cifar10": (
        (("Invert", 0.1, None), ("Contrast", 0.2, 6)), (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
        (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)), (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)), (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
        (("Color", 0.4, 3), ("Brightness", 0.6, 7)), (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
        (("Equalize", 0.6, None), ("Equalize", 0.5, None)), (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
        (("Color", 0.7, 7), ("TranslateX", 0.5, 8)), (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
        (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)), (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
        (("Solarize", 0.5, 2), ("Invert", 0.0, None)), (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.2, None), ("Equalize", 0.6, None)), (("Color", 0.9, 9), ("Equalize", 0.6, None)),
        (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)), (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
        (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)), (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)), (("Equalize", 0.8, None), ("Invert", 0.1, None)),
        (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
    ),
    "svhn": (
        (("ShearX", 0.9, 4), ("Invert", 0.2, None)), (("ShearY", 0.9, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.6, None), ("Solarize", 0.6, 6)), (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)), (("ShearX", 0.9, 4), ("AutoContrast", 0.8, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.4, None)), (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
        (("Invert", 0.9, None), ("AutoContrast", 0.8, None)), (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)), (("ShearY", 0.8, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.9, None), ("TranslateY", 0.6, 6)), (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)), (("Invert", 0.8, None), ("TranslateY", 0.0, 2)),
        (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)), (("Invert", 0.6, None), ("Rotate", 0.8, 4)),
        (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)), (("ShearX", 0.1, 6), ("Invert", 0.6, None)),
        (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)), (("ShearY", 0.8, 4), ("Invert", 0.8, None)),
        (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)), (("ShearY", 0.8, 5), ("AutoContrast", 0.7, None)),
        (("ShearX", 0.7, 2), ("Invert", 0.1, None)),
    ),
}  # fmt: skip


class AutoAugment(OneOf):
    """One of a learned policy's 25 sub-policies per image: two ops, each with its probability and magnitude.

    Args:
        policy: ``imagenet`` | ``cifar10`` | ``svhn`` (torchvision's ``AutoAugmentPolicy``).
        fill: value of the pixels the geometric ops uncover, in [0, 1].

    Example:
        >>> import numpy as np
        >>> Pipeline([AutoAugment(policy="cifar10")], seed=0)(np.zeros((8, 8, 3), np.uint8)).shape
        (8, 8, 3)
    """

    registry_name = "auto_augment"

    def __init__(self, *, policy: str = "imagenet", fill: float = 0.0) -> None:
        if policy not in AUTO_POLICIES:
            raise ValueError(f"auto_augment.policy must be one of {sorted(AUTO_POLICIES)}, got {policy!r}")
        self.policy = policy
        self.fill = _number("auto_augment", "fill", fill, 0.0, 1.0)
        subs = []
        for sub in AUTO_POLICIES[policy]:
            steps: list[Stage] = []
            for name, prob, m in sub:
                ops, w = _signed(name, 0 if m is None else m, 10, self.fill)
                steps.append(RandomApply([ops[0] if len(ops) == 1 else OneOf(ops, weights=w)], p=prob))
            subs.append(Pipeline(steps))
        super().__init__(subs)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.registry_name, "policy": self.policy, "fill": self.fill}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> AutoAugment:
        return _policy_from_dict(cls, data, where, {"policy", "fill"})  # type: ignore[no-any-return]


POLICIES: dict[str, Any] = {
    TrivialAugment.registry_name: TrivialAugment,
    RandAugment.registry_name: RandAugment,
    AutoAugment.registry_name: AutoAugment,
    AugMix.registry_name: AugMix,
}
