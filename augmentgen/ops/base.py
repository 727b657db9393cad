"""The base class of classical ops: hyperparameters as dataclass fields, three kinds of apply.

An op is one of three kinds, and its kind decides what it implements:

- ``"geometric"``: ``matrix(params, size) -> [B, 3, 3]`` mapping input to output pixel
  coordinates (continuous convention, see ``core.batch``) and ``output_size(size)``. One
  shared warp applies it to images, masks, boxes and keypoints; the pipeline multiplies
  the matrices of consecutive geometric ops and warps once.
- ``"color"``: ``color_matrix(params, mean) -> [B, 3, 4]``, an affine map of RGB values in
  [0, 1] given the per-sample mean RGB of the op's input. Consecutive color ops fuse into
  one pass (the mean is propagated through the chain exactly).
- ``"pixel"``: ``apply_image(image, params)`` (torch, batched) and
  ``apply_image_np(image, params)`` (numpy/OpenCV, one HWC sample). Targets untouched.

Rows whose ``applied`` is False come out bit-identical to their input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import Tensor

from augmentgen.core.batch import Batch, Sample
from augmentgen.core.params import Params
from augmentgen.core.registry import OPS, did_you_mean
from augmentgen.core.rng import RNG, Array, bernoulli
from augmentgen.ops.functional import color as fcolor
from augmentgen.ops.functional import warp as fwarp

OpT = TypeVar("OpT", bound="Op")

BORDER_MODES = ("constant", "reflect", "replicate")
INTERPOLATIONS = ("bilinear", "nearest")


def _check_prob(name: str, p: float) -> None:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name}.p must be in [0, 1], got {p}")


@dataclass(kw_only=True)
class Op:
    """Base of all classical ops.

    Args:
        p: per-sample probability that the op acts.
        same_on_batch: draw one set of parameters and use it for every row.
    """

    kind: ClassVar[str] = "pixel"
    registry_name: ClassVar[str] = ""
    # Geometric ops whose source region never leaves the image (flips, resize, in-image
    # crops) do not care about the border mode, so they fuse with neighbours of any mode.
    border_free: ClassVar[bool] = False

    p: float = 1.0
    same_on_batch: bool = False

    def __post_init__(self) -> None:
        _check_prob(type(self).__name__, self.p)
        if self.kind == "geometric":
            mode = getattr(self, "border_mode", "constant")
            interp = getattr(self, "interpolation", "bilinear")
            if mode not in BORDER_MODES:
                raise ValueError(f"{type(self).__name__}.border_mode must be one of {BORDER_MODES}, got {mode!r}")
            if interp not in INTERPOLATIONS:
                raise ValueError(
                    f"{type(self).__name__}.interpolation must be one of {INTERPOLATIONS}, got {interp!r}"
                )
        self.validate()

    # ---- to override -------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError naming the bad hyperparameter (called at construction)."""

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        """Draw ``n`` rows of parameters for images of ``size`` (H, W)."""
        return Params(applied=applied)

    def matrix(self, params: Params, size: tuple[int, int]) -> Array:
        raise NotImplementedError(f"{type(self).__name__} is not geometric")

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return size

    def color_matrix(self, params: Params, mean: Array) -> Array:
        raise NotImplementedError(f"{type(self).__name__} is not a color-affine op")

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no batched image kernel")

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} has no per-sample image kernel")

    # ---- shared ------------------------------------------------------------------------
    def sample_params(self, batch: Batch | Sample, rng: RNG) -> Params:
        n = batch.batch_size
        m = 1 if self.same_on_batch else n
        applied = bernoulli(rng, self.p, m)
        params = self.draw(m, batch.size, rng, applied)
        return params.expand(n) if m != n else params

    def warp_spec(self) -> fwarp.WarpSpec:
        key = (
            getattr(self, "interpolation", "bilinear"),
            getattr(self, "border_mode", "constant"),
            float(getattr(self, "fill", 0.0)),
            float(getattr(self, "min_box_size", 1.0)),
            float(getattr(self, "min_visibility", 0.0)),
            float(getattr(self, "min_area", 0.0)),
        )
        cached = self.__dict__.get("_spec")
        if cached is None or cached[0] != key:  # hyperparameters may be edited after construction
            cached = (key, fwarp.WarpSpec(*key))
            self.__dict__["_spec"] = cached
        spec: fwarp.WarpSpec = cached[1]
        return spec

    def full_matrix(self, params: Params, size: tuple[int, int]) -> Array:
        """``matrix`` with non-applied rows replaced by a plain resize to the output size."""
        m = self.matrix(params, size)
        applied = params.applied
        if isinstance(applied, np.ndarray) and applied.all():
            return m  # the common per-sample case: nothing to blend
        out = self.output_size(size)
        base = fwarp.resize_matrix(size, out, like=m, n=int(m.shape[0]))
        if isinstance(m, Tensor):
            a = torch.as_tensor(applied, device=m.device).reshape(-1, 1, 1)
            return torch.where(a, m, torch.as_tensor(base).to(m.dtype))
        return np.where(np.asarray(applied).reshape(-1, 1, 1), m, base).astype(np.float64)

    def apply(self, batch: Batch, params: Params) -> Batch:
        if self.kind == "geometric":
            mat = self.full_matrix(params.to_torch(batch.device), batch.size)
            return fwarp.warp_batch(batch, torch.as_tensor(mat), self.output_size(batch.size), self.warp_spec())
        params = params.to_torch(batch.device)
        applied = torch.as_tensor(params.applied, device=batch.device)
        rows = int(applied.sum())  # one host sync on an accelerator, as the check for no row was
        if rows == 0:
            return batch
        if rows * 2 <= applied.numel():  # a few rows (a one_of's choice): the op on those rows alone
            idx = applied.nonzero().squeeze(1)
            part = self._apply_rows(batch.image.index_select(0, idx), params.select(idx))
            return batch.replace(image=batch.image.index_copy(0, idx, part.to(batch.image.dtype)))
        out = self._apply_rows(batch.image, params)
        out = torch.where(applied.reshape(-1, 1, 1, 1), out, batch.image)
        return batch.replace(image=out)

    def _apply_rows(self, image: Tensor, params: Params) -> Tensor:
        """A colour or pixel op on every row of ``image`` (torch params, one row each)."""
        if self.kind == "color":
            return fcolor.color_affine(image, torch.as_tensor(self.color_matrix(params, fcolor.mean_rgb(image))))
        return self.apply_image(image, params)

    def apply_images_np(self, images: list[np.ndarray], params: Params) -> list[np.ndarray]:
        """Row ``i`` of ``params`` applied to ``images[i]`` (pixel ops, per-sample backend).

        Rows the op did not draw (``applied`` false) come back as they are. The batched
        per-sample path (``pipeline.many``) calls this; ops with a cheap per-row loop override it.
        """
        p = params.to_numpy()
        acting = np.flatnonzero(np.asarray(p.applied, dtype=bool)).tolist()
        out = list(images)
        for i, row in zip(acting, p.pick(acting), strict=True):  # one-row params only where the op acts
            out[i] = self.apply_image_np(images[i], row)
        return out

    def apply_sample(self, sample: Sample, params: Params) -> Sample:
        if self.kind == "geometric":
            mat = np.asarray(self.full_matrix(params.to_numpy(), sample.size), np.float64)[0]
            return fwarp.warp_sample(sample, mat, self.output_size(sample.size), self.warp_spec())
        if not bool(np.asarray(params.applied)[0]):
            return sample
        if self.kind == "color":
            params = params.to_numpy()
            mean = fcolor.mean_rgb_np(sample.image)
            mat = np.asarray(self.color_matrix(params, mean[None]), np.float32)[0]
            return sample.replace(image=fcolor.color_affine_np(sample.image, mat))
        return sample.replace(image=self.apply_image_np(sample.image, params.to_numpy()))

    # ---- serialization -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": type(self).registry_name}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            d[f.name] = _listed(v)
        return d

    @classmethod
    def from_dict(cls: type[OpT], data: dict[str, Any], where: str = "") -> OpT:
        """Build from ``to_dict`` output; unknown keys are an error naming ``where``."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        body = {k: v for k, v in data.items() if k != "name"}
        unknown = sorted(set(body) - set(names))
        if unknown:
            raise ValueError(
                f"{where or cls.registry_name}: unknown key(s) {unknown} for op '{cls.registry_name}'"
                f"{did_you_mean(unknown, names)}; allowed: {sorted(names)}"
            )
        kwargs: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in body.items()}
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where or cls.registry_name}: {e}") from e


def _listed(v: Any) -> Any:
    """Tuples (nested ones too) as lists, for YAML and JSON."""
    return [_listed(x) for x in v] if isinstance(v, tuple) else v


def op_from_dict(data: dict[str, Any], where: str = "op") -> Op:
    """Look up ``data['name']`` in the op registry and build it."""
    if not isinstance(data, dict) or "name" not in data:
        raise ValueError(f"{where}: an op must be a mapping with a 'name' key, got {data!r}")
    try:
        cls = OPS.get(str(data["name"]))
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    return cls.from_dict(data, where=f"{where}({data['name']})")  # type: ignore[no-any-return]
