"""Augmentation policies built from the ops: TrivialAugment (one op per image, magnitude drawn).

``TrivialAugment`` (Müller & Hutter 2021, https://arxiv.org/abs/2103.10158; torchvision's
``TrivialAugmentWide``) applies to each image one op drawn from fourteen (identity included),
at a magnitude drawn uniformly over the op's wide range and a random sign: exactly a
``one_of`` over the ops with symmetric ranges, which is what it is here, so its draws are
per sample, seeded, replayable and batched like every other stage.
"""

from __future__ import annotations

import math
from typing import Any

from augmentgen.ops.color import Brightness, Contrast, Saturation
from augmentgen.ops.geometric import Rotate, Shear, Translate
from augmentgen.ops.levels import AutoContrast, Equalize, Posterize, Sharpness, Solarize
from augmentgen.pipeline.compose import OneOf

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
