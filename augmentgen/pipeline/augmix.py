"""AugMix (Hendrycks et al. 2020, https://arxiv.org/abs/1912.02781; torchvision's ``AugMix``).

Each image is blended with ``mixture_width`` augmented copies of itself: every copy goes
through a chain of 1-3 ops (TrivialAugment's fourteen without the identity, or the nine
that leave colour and contrast alone), each at a magnitude bin below ``severity`` with a
random sign, and the copies are mixed with Dirichlet weights, then with the original by a
Beta weight. An op of kind ``pixel`` whose parameters say, per sample, the two weights and
which leaf each chain slot applies, so it is drawn per sample on a batch too (torchvision
draws the chains' ops once for the whole batch tensor), seeded and replayable.

Image only: the chains move pixels (shear, shift, rotation) but boxes, masks and keypoints
stay where they are, as AugMix is a classification augmentation (torchvision's also takes
images only).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from augmentgen.core.batch import Batch, Sample
from augmentgen.core.params import Params
from augmentgen.core.rng import RNG, Array
from augmentgen.ops._draws import expect, uniform_cols
from augmentgen.ops.base import Op
from augmentgen.pipeline.policy_ops import MAX_MAGNITUDE, fixed_op, level

# torchvision's AugMix tables: the nine "partial" ops, then the four that change colour and contrast
AUGMIX_OPS = (
    "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Posterize", "Solarize", "AutoContrast", "Equalize",
    "Brightness", "Color", "Contrast", "Sharpness",
)  # fmt: skip
PARTIAL = 9
BINS = 10  # torchvision's _PARAMETER_MAX: bin m of 10 is m / 9 of an op's largest magnitude
_MAX_DEPTH = 3
_TRANSLATE = 1.0 / 3.0  # AugMix shifts up to a third of the side (RandAugment: 150 / 331)


def gamma_draws(alpha: float, u: np.ndarray) -> np.ndarray:
    """Gamma(``alpha``, 1) variates from uniforms by the inverse CDF (one per uniform, any generator).

    Example:
        >>> gamma_draws(1.0, np.array([0.5])).round(4).tolist()  # Exp(1): -log(1 - u)
        [0.6931]
    """
    u64 = np.clip(np.asarray(u, np.float64), 1e-12, 1.0 - 1e-12)
    if alpha == 1.0:
        out: np.ndarray = -np.log1p(-u64)
        return out
    from scipy.special import gammaincinv  # scikit-image's dependency; imported here, not by every process

    return np.asarray(gammaincinv(alpha, u64), np.float64)


@dataclass(frozen=True)
class AugMixParams(Params):
    original: Array  # [B] weight of the original image (Beta(alpha, alpha))
    weights: Array  # [B, W] weights of the chains (Dirichlet(alpha) times 1 - original)
    leaves: Array  # [B, W, 3] int64: the leaf each chain slot applies, -1 past the chain's depth


@dataclass(kw_only=True)
class AugMix(Op):
    """Blend each image with ``mixture_width`` chains of ops drawn per sample (torchvision ``AugMix``).

    Args:
        severity: magnitude bins used, 1 to 10 (each op's bin is drawn below it).
        mixture_width: number of chains.
        chain_depth: ops per chain, 1 to 3, or -1 for a depth drawn from 1-3 per chain and sample.
        alpha: the Beta / Dirichlet concentration, > 0.
        all_ops: also the ops that change colour and contrast (brightness, colour, contrast, sharpness).
        fill: value of the pixels the geometric ops uncover, in [0, 1].

    Example:
        >>> import numpy as np
        >>> from augmentgen.pipeline import Pipeline
        >>> Pipeline([AugMix()], seed=0)(np.zeros((8, 8, 3), np.uint8)).shape
        (8, 8, 3)
    """

    registry_name: ClassVar[str] = "augmix"
    severity: int = 3
    mixture_width: int = 3
    chain_depth: int = -1
    alpha: float = 1.0
    all_ops: bool = True
    fill: float = 0.0

    def validate(self) -> None:
        checks = [
            ("severity", isinstance(self.severity, int) and 1 <= self.severity <= BINS, f"a whole number in 1..{BINS}"),
            ("mixture_width", isinstance(self.mixture_width, int) and 1 <= self.mixture_width <= 16, "a whole number in 1..16"),
            ("chain_depth", self.chain_depth in (-1, 1, 2, 3), "1, 2, 3 or -1 (drawn from 1-3)"),
            ("alpha", isinstance(self.alpha, (int, float)) and 0 < self.alpha < float("inf"), "a number > 0"),
            ("fill", isinstance(self.fill, (int, float)) and 0.0 <= self.fill <= 1.0, "a number in [0, 1]"),
        ]
        for name, ok, want in checks:
            if not ok or isinstance(getattr(self, name), bool):
                raise ValueError(f"AugMix.{name} must be {want}, got {getattr(self, name)!r}")
        names = AUGMIX_OPS if self.all_ops else AUGMIX_OPS[:PARTIAL]
        # leaf (op, bin, sign) at index (op * severity + bin) * 2 + sign; unsigned ops repeat theirs
        leaves: list[Op] = []
        for name in names:
            for m in range(self.severity):
                v = level(name, m, BINS, shift=_TRANSLATE, bits=4)
                plus = fixed_op(name, v, float(self.fill))
                leaves += [plus, fixed_op(name, -v, float(self.fill)) if name in MAX_MAGNITUDE else plus]
        self.__dict__["_leaves"] = leaves
        self.__dict__["_n_ops"] = len(names)
        self.__dict__["_rows"] = {}  # device -> per op, the params of its 2 * severity leaves as rows

    def _op_rows(self, device: torch.device) -> list[Params]:
        """Per op, one row of params for each of its leaves (bins and signs), on ``device``.

        The leaves of one op differ only in their params, so a chain slot applies each op once,
        to all the rows that drew it, with each row's params picked from these.
        """
        cache: dict[torch.device, list[Params]] = self.__dict__["_rows"]
        if device not in cache:
            per = 2 * self.severity
            dummy = Sample(np.zeros((4, 4, 3), np.uint8))
            scratch = np.random.default_rng(0)  # the leaves' draws are fixed values
            rows = []
            for o in range(int(self.__dict__["_n_ops"])):
                parts = [self.leaf(o * per + k).sample_params(dummy, scratch).to_numpy() for k in range(per)]
                fields = {f: np.concatenate([np.asarray(getattr(q, f)) for q in parts]) for f in parts[0].fields()}
                rows.append(dataclasses.replace(parts[0], **fields).to_torch(device))
            cache[device] = rows
        return cache[device]

    def leaf(self, index: int) -> Op:
        """The op (at its fixed signed magnitude) that leaf ``index`` of the params stands for."""
        return self.__dict__["_leaves"][index]  # type: ignore[no-any-return]

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        w, d = self.mixture_width, _MAX_DEPTH
        k = 2 + w + w + 3 * w * d  # Beta (2 gammas), Dirichlet (w), depths (w), op, bin and sign per slot
        cols, _ = uniform_cols(rng, [(0.0, 1.0)] * k, n)
        u = torch.stack([torch.as_tensor(c) for c in cols], 1) if isinstance(cols[0], Tensor) else np.stack(cols, 1)
        u_np = u.detach().cpu().numpy() if isinstance(u, Tensor) else np.asarray(u)
        g = gamma_draws(float(self.alpha), u_np[:, : 2 + w])
        original = g[:, 0] / (g[:, 0] + g[:, 1])
        weights = g[:, 2:] / g[:, 2:].sum(1, keepdims=True) * (1 - original)[:, None]
        if self.chain_depth > 0:
            depth = np.full((n, w), self.chain_depth)
        else:
            depth = np.minimum(np.floor(u_np[:, 2 + w : 2 + 2 * w] * 3), 2).astype(np.int64) + 1
        slots = u_np[:, 2 + 2 * w :].reshape(n, w, d, 3)
        n_ops = int(self.__dict__["_n_ops"])
        op = np.minimum(np.floor(slots[..., 0] * n_ops), n_ops - 1).astype(np.int64)
        mag = np.minimum(np.floor(slots[..., 1] * self.severity), self.severity - 1).astype(np.int64)
        sign = (slots[..., 2] < 0.5).astype(np.int64)
        leaves = (op * self.severity + mag) * 2 + sign
        leaves[np.arange(d)[None, None, :] >= depth[:, :, None]] = -1
        out = AugMixParams(
            applied=applied,
            original=original.astype(np.float32),
            weights=weights.astype(np.float32),
            leaves=leaves,
        )
        return out.to_torch(u.device) if isinstance(u, Tensor) else out

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        prm = expect(params, AugMixParams, self)
        x = image.to(torch.float32)
        shape = (-1, 1, 1, 1)
        mix = torch.as_tensor(prm.original, device=image.device).to(torch.float32).reshape(shape) * x
        leaves = torch.as_tensor(prm.leaves, device=image.device)
        weights = torch.as_tensor(prm.weights, device=image.device).to(torch.float32)
        op_rows = self._op_rows(image.device)
        per = 2 * self.severity
        for i in range(leaves.shape[1]):
            chain = Batch(image)
            for j in range(leaves.shape[2]):
                ids = leaves[:, i, j]
                ops = torch.where(ids >= 0, ids // per, -1)
                for o in torch.unique(ops[ops >= 0]).tolist():
                    rows = ops == o
                    prm = op_rows[o].select(torch.where(rows, ids - o * per, 0))  # each row's bin and sign
                    chain = self.leaf(o * per).apply(chain, dataclasses.replace(prm, applied=rows))
            mix = mix + weights[:, i].reshape(shape) * chain.image.to(torch.float32)
        if image.dtype == torch.uint8:
            return mix.round().clamp(0, 255).to(torch.uint8)
        return mix.clamp(0, 1).to(image.dtype)

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        prm = expect(params, AugMixParams, self)
        mix = float(np.asarray(prm.original).reshape(-1)[0]) * image.astype(np.float32)
        leaves = np.asarray(prm.leaves).reshape(-1, _MAX_DEPTH)  # [W, 3] of the one row
        weights = np.asarray(prm.weights, np.float32).reshape(-1)
        scratch = np.random.default_rng(0)  # the leaves' draws are fixed values
        for i in range(leaves.shape[0]):
            chain = Sample(image)
            for k in leaves[i]:
                if k >= 0:
                    op = self.leaf(int(k))
                    chain = op.apply_sample(chain, op.sample_params(chain, scratch))
            mix += weights[i] * chain.image.astype(np.float32)
        if image.dtype == np.uint8:
            return np.asarray(np.clip(np.rint(mix), 0, 255).astype(np.uint8).reshape(image.shape))
        return np.asarray(np.clip(mix, 0, 1).astype(image.dtype).reshape(image.shape))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "") -> AugMix:
        """As an op's, with errors named ``where(augmix)`` like the other policies'."""
        return super().from_dict(data, where=f"{where}(augmix)" if where else "augmix")
