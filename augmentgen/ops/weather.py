"""Weather ops: fog, rain, snow and lens droplets, per-sample parameters, two backends.

Photometric ("pixel") ops: boxes, masks and keypoints pass through untouched. Each draws
its parameters per sample from ``rng``; random textures (drop positions, fog patches) are a
pure function of those parameters (see ``ops.functional.weather``), so replay is exact and
the batched torch path and the per-sample OpenCV path agree within a few uint8 levels.
Ranges are ``(low, high)`` pairs or one fixed number; every documented "0" gives the exact
identity. docs/weather.md shows each op on photos.

Example:
    >>> import numpy as np
    >>> from augmentgen.core import Sample
    >>> op = Rain()
    >>> s = Sample(np.full((36, 64, 3), 90, np.uint8))
    >>> op.apply_sample(s, op.sample_params(s, np.random.default_rng(0))).image.shape
    (36, 64, 3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from augmentgen.core.params import Params
from augmentgen.core.registry import register
from augmentgen.core.rng import RNG, Array
from augmentgen.ops._draws import Range, as_range, expect, offsets, scalar, uniform_cols
from augmentgen.ops.base import Op
from augmentgen.ops.functional import precipitation as fp
from augmentgen.ops.functional import weather as fw


def _f32(a: Array) -> Array:
    return a.to(torch.float32) if isinstance(a, Tensor) else np.asarray(a, np.float32)


def cached_ranges(op: Op, lim: dict[str, tuple[float, float]]) -> list[tuple[float, float]]:
    """``as_range`` of every field in ``lim``, cached on the op until a field changes (per-sample hot path)."""
    key = tuple(tuple(v) if isinstance(v, list) else v for v in (getattr(op, k) for k in lim))
    cached = op.__dict__.get("_ranges_cache")
    if cached is None or cached[0] != key:
        name = type(op).__name__
        cached = (key, [as_range(name, k, getattr(op, k), *lim[k]) for k in lim])
        op.__dict__["_ranges_cache"] = cached
    out: list[tuple[float, float]] = cached[1]
    return out


def rand(rng: RNG, n: int, k: int) -> Any:
    """``[n, k]`` uniforms in [0, 1) from ``rng`` (float32 on torch, float64 on numpy)."""
    if isinstance(rng, np.random.Generator):
        return rng.random((n, k))
    return torch.rand((n, k), generator=rng, device=rng.device)


def odd(v: Array) -> Array:
    """``2 floor(v / 2) + 1``: an odd kernel size from a size in pixels (int64)."""
    if isinstance(v, Tensor):
        return (2 * torch.floor(v.to(torch.float64) / 2) + 1).to(torch.int64)
    return (2 * np.floor(np.asarray(v, np.float64) / 2) + 1).astype(np.int64)


def rounded(v: Array) -> Array:
    """int64 ``round(v)`` on either backend."""
    if isinstance(v, Tensor):
        return torch.round(v.to(torch.float64)).to(torch.int64)
    return np.rint(np.asarray(v, np.float64)).astype(np.int64)


def slope_of(angle_deg: Array) -> Array:
    """float32 ``tan(angle)``, computed once at draw time so both backends use the same value."""
    if isinstance(angle_deg, Tensor):
        return torch.tan(angle_deg.to(torch.float64) * (math.pi / 180.0)).to(torch.float32)
    return np.tan(np.asarray(angle_deg, np.float64) * (math.pi / 180.0)).astype(np.float32)


@dataclass(frozen=True)
class FogParams(Params):
    density: Array
    gradient: Array
    airlight: Array
    freq: Array  # [B, K, 2] cycles per image height (y, x)
    phase: Array  # [B, K] radians


@register("fog")
@dataclass(kw_only=True)
class Fog(Op):
    """Depth-free haze: ``x (1 - t) + A t`` with a patchy opacity map ``t`` per sample.

    ``t = density * (1 - gradient * y / H) * (1 + texture * n / 2)``, ``n`` a smooth random field
    (six cosines of 0.3-1.5 cycles per image height), so fog is thicker in patches and, with a
    gradient, towards the top (the far end of a road scene).

    Args:
        density: ``(low, high)`` opacity in [0, 1]; 0 is the identity. Default (0.3, 0.7).
        gradient: ``(low, high)`` in [0, 1], how much thinner the fog gets towards the bottom.
        airlight: ``(low, high)`` grey level of the fog in [0, 1]. Default (0.75, 0.95).
        texture: strength of the patches in [0, 2]; 0 gives uniform haze.
    """

    density: Range = (0.3, 0.7)
    gradient: Range = (0.0, 0.6)
    airlight: Range = (0.75, 0.95)
    texture: float = 0.4

    def validate(self) -> None:
        for name in ("density", "gradient", "airlight"):
            as_range("Fog", name, getattr(self, name), low=0.0, high=1.0)
        if not 0.0 <= float(self.texture) <= 2.0:
            raise ValueError(f"Fog.texture must be in [0, 2], got {self.texture!r}")

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        ranges = [as_range("Fog", k, getattr(self, k)) for k in ("density", "gradient", "airlight")]
        (d, g, a), _ = uniform_cols(rng, ranges, n)
        u = rand(rng, n, 3 * fw.FOG_WAVES)
        ph: Any
        mag, ang, ph = 0.3 + 1.2 * u[:, 0::3], u[:, 1::3] * (2 * math.pi), u[:, 2::3] * (2 * math.pi)
        if isinstance(u, Tensor):
            freq: Array = torch.stack([mag * torch.sin(ang), mag * torch.cos(ang)], -1)
        else:
            freq = np.stack([mag * np.sin(ang), mag * np.cos(ang)], -1).astype(np.float32)
            ph = ph.astype(np.float32)
        return FogParams(applied=applied, density=d, gradient=g, airlight=a, freq=freq, phase=ph)

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        p = expect(params, FogParams, self)
        t = torch.as_tensor
        return fw.fog(
            image, t(p.density), t(p.gradient), t(p.airlight), float(self.texture), t(p.freq), t(p.phase)
        )

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        p = expect(params, FogParams, self)
        return fw.fog_np(
            image,
            scalar(p.density),
            scalar(p.gradient),
            scalar(p.airlight),
            float(self.texture),
            np.asarray(p.freq),
            np.asarray(p.phase),
        )


@dataclass(frozen=True)
class PrecipitationParams(Params):
    count: Array  # drops per sample (int64)
    length: Array  # streak length in pixels (int64)
    slope: Array  # tan(angle from vertical), float32
    dilate: Array  # odd flake size in pixels (int64; 1 for rain)
    ksize: Array  # odd box-blur size (int64), applied twice
    gain: Array  # brings a blurred drop back to its peak
    brightness: Array
    keep: Array  # factor on the scene
    add: Array  # constant added (snow whitening)
    offset: Array  # into the uniform bank (int64)


def _precip_apply(image: Tensor, p: PrecipitationParams) -> Tensor:
    t = torch.as_tensor
    h, w = image.shape[-2:]
    layer = fp.streak_layer(t(p.offset), t(p.count), t(p.length), t(p.slope), (h, w), image.device)
    soft = fp.soften(fw.dilate(layer, t(p.dilate)), t(p.ksize))
    levels = 255.0 * t(p.gain).to(torch.float32) * t(p.brightness).to(torch.float32)
    return fp.precipitation(image, soft, t(p.keep), t(p.add), levels, t(p.ksize))


def _precip_apply_np(image: np.ndarray, p: PrecipitationParams) -> np.ndarray:
    count = int(scalar(p.count))
    keep, add = scalar(p.keep), scalar(p.add)
    if count == 0 and keep == 1.0 and add == 0.0:
        return image
    import cv2

    layer = fp.streak_layer_np(
        int(scalar(p.offset)), count, int(scalar(p.length)), scalar(p.slope), image.shape[:2]
    )
    k = int(scalar(p.dilate))
    if k > 1:
        layer = np.asarray(
            cv2.dilate(layer, np.ones((k, k), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
        )
    levels = float(np.float32(255.0) * np.float32(scalar(p.gain)) * np.float32(scalar(p.brightness)))
    return fp.precipitation_np(image, layer, int(scalar(p.ksize)), keep, add, levels)


@register("rain")
@dataclass(kw_only=True)
class Rain(Op):
    """Rain streaks: slanted 1-pixel streaks at per-sample density, length, angle and blur, added
    over a darkened scene (``(1 - darken) x + brightness * streaks``).

    Args:
        density: ``(low, high)`` drops per pixel in [0, 0.05] (0.001 = one per 1000 pixels); 0 draws none.
        length: ``(low, high)`` streak length as a fraction of the image height, in [0, 1].
        angle: ``(low, high)`` degrees from vertical in [-60, 60] (positive leans right going down).
        blur: ``(low, high)`` box-blur size in pixels in [0, 31] (rounded down to odd, applied twice;
            < 2 is sharp); a blurred streak is scaled by ``sqrt(size)``, so it is wider and fainter.
        brightness: ``(low, high)`` streak brightness in [0, 1].
        darken: ``(low, high)`` scene darkening in [0, 1]. ``density=0, darken=0`` is the identity.
    """

    density: Range = (0.001, 0.004)
    length: Range = (0.04, 0.1)
    angle: Range = (-20.0, 20.0)
    blur: Range = (0.0, 3.5)
    brightness: Range = (0.25, 0.55)
    darken: Range = (0.1, 0.3)

    def _ranges(self) -> list[tuple[float, float]]:
        lim = {
            "density": (0.0, 0.05),
            "length": (0.0, 1.0),
            "angle": (-60.0, 60.0),
            "blur": (0.0, 31.0),
            "brightness": (0.0, 1.0),
            "darken": (0.0, 1.0),
        }
        return cached_ranges(self, lim)

    def validate(self) -> None:
        self._ranges()

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        (dens, ln, ang, bl, br, dk, off), u = uniform_cols(rng, [*self._ranges(), (0.0, 1.0)], n)
        h, w = size
        one = dk * 0 + 1
        return PrecipitationParams(
            applied=applied,
            count=rounded(dens * (h * w)),
            length=rounded(ln * h),
            slope=slope_of(ang),
            dilate=odd(one),
            ksize=odd(bl),
            gain=_f32(odd(bl)) ** 0.5,
            brightness=br,
            keep=one - dk,
            add=dk * 0,
            offset=offsets(u[:, -1], fp.UBANK_SIZE),
        )

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        return _precip_apply(image, expect(params, PrecipitationParams, self))

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        return _precip_apply_np(image, expect(params, PrecipitationParams, self))


@register("snow")
@dataclass(kw_only=True)
class Snow(Op):
    """Snowfall: flakes (short soft dots of per-sample size, slightly falling) over a scene
    whitened towards a bright grey (``(1 - whiten) x + 0.9 whiten + brightness * flakes``).

    Args:
        density: ``(low, high)`` flakes per pixel in [0, 0.05]; 0 draws none.
        size: ``(low, high)`` flake size in pixels in [0, 15] (rounded down to odd).
        length: ``(low, high)`` fall streak as a fraction of the height in [0, 0.2].
        angle: ``(low, high)`` degrees from vertical in [-60, 60].
        blur: ``(low, high)`` extra box-blur size in pixels in [0, 16]; the blur is ``size + blur``
            rounded down to odd, and the flake is scaled back to its peak brightness.
        brightness: ``(low, high)`` flake brightness in [0, 1].
        whiten: ``(low, high)`` in [0, 1]. ``density=0, whiten=0`` is the identity.
    """

    density: Range = (0.002, 0.006)
    size: Range = (1.0, 4.0)
    length: Range = (0.0, 0.01)
    angle: Range = (-15.0, 15.0)
    blur: Range = (1.0, 3.0)
    brightness: Range = (0.5, 0.9)
    whiten: Range = (0.1, 0.35)

    def _ranges(self) -> list[tuple[float, float]]:
        lim = {
            "density": (0.0, 0.05),
            "size": (0.0, 15.0),
            "length": (0.0, 0.2),
            "angle": (-60.0, 60.0),
            "blur": (0.0, 16.0),
            "brightness": (0.0, 1.0),
            "whiten": (0.0, 1.0),
        }
        return cached_ranges(self, lim)

    def validate(self) -> None:
        self._ranges()

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        (dens, sz, ln, ang, bl, br, wh, off), u = uniform_cols(rng, [*self._ranges(), (0.0, 1.0)], n)
        h, w = size
        length = rounded(ln * h)
        length = torch.clamp(length, min=1) if isinstance(length, Tensor) else np.maximum(length, 1)
        dil, ks = odd(sz), odd(sz + bl)  # the blur grows with the flake, so big flakes are round
        # two k-box blurs spread a flake of side s to a peak of about (s / k)^2: scale it back
        ratio: Any = (ks / dil) ** 2
        gain = ratio.clip(1, 16) if isinstance(ratio, np.ndarray) else ratio.clamp(1, 16)
        gain = _f32(gain)
        return PrecipitationParams(
            applied=applied,
            count=rounded(dens * (h * w)),
            length=length,
            slope=slope_of(ang),
            dilate=dil,
            ksize=ks,
            gain=gain,
            brightness=br,
            keep=1 - wh,
            add=0.9 * wh,
            offset=offsets(u[:, -1], fp.UBANK_SIZE),
        )

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        return _precip_apply(image, expect(params, PrecipitationParams, self))

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        return _precip_apply_np(image, expect(params, PrecipitationParams, self))


@dataclass(frozen=True)
class DropletParams(Params):
    centers: Array  # [B, K, 2] x, y fractions
    radii: Array  # [B, K] fractions of min(H, W)
    on: Array  # [B, K] 1.0 for the drops a sample has
    ksize: Array  # [B] odd box size of the out-of-focus blur


@register("lens_droplets")
@dataclass(kw_only=True)
class LensDroplets(Op):
    """Water drops on the lens: soft discs that show a blurred, slightly brighter view, with a dark rim.

    Args:
        count: ``(low, high)`` number of drops, ints in [0, 64]; 0 is the identity.
        radius: ``(low, high)`` drop radius as a fraction of ``min(H, W)`` in [0, 0.5].
        blur: ``(low, high)`` out-of-focus blur as a fraction of ``min(H, W)`` in [0, 0.2].
    """

    count: Range = (3.0, 10.0)
    radius: Range = (0.03, 0.1)
    blur: Range = (0.02, 0.05)

    def validate(self) -> None:
        lo, hi = as_range("LensDroplets", "count", self.count, 0.0, 64.0)
        if lo != int(lo) or hi != int(hi):
            raise ValueError(f"LensDroplets.count must be whole numbers, got {self.count!r}")
        as_range("LensDroplets", "radius", self.radius, 0.0, 0.5)
        as_range("LensDroplets", "blur", self.blur, 0.0, 0.2)

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        c_lo, c_hi = as_range("LensDroplets", "count", self.count)
        r_lo, r_hi = as_range("LensDroplets", "radius", self.radius)
        cnt: Any
        (cnt, bl), _ = uniform_cols(rng, [(c_lo, c_hi + 1.0), as_range("LensDroplets", "blur", self.blur)], n)
        k = max(1, int(c_hi))
        u = rand(rng, n, 3 * k)
        radii: Any = r_lo + (r_hi - r_lo) * u[:, 2::3]
        if isinstance(u, Tensor):
            cnt_i = torch.clamp(torch.floor(cnt), max=c_hi)
            on: Array = (torch.arange(k, device=u.device).reshape(1, -1) < cnt_i.reshape(-1, 1)).float()
            centers: Array = torch.stack([u[:, 0::3], u[:, 1::3]], -1)
            ks = odd(bl * min(size))
        else:
            cnt_n = np.minimum(np.floor(cnt), c_hi)
            on = (np.arange(k).reshape(1, -1) < cnt_n.reshape(-1, 1)).astype(np.float32)
            centers = np.stack([u[:, 0::3], u[:, 1::3]], -1).astype(np.float32)
            radii = radii.astype(np.float32)
            ks = odd(bl * min(size))
        return DropletParams(applied=applied, centers=centers, radii=radii, on=on, ksize=ks)

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        p = expect(params, DropletParams, self)
        t = torch.as_tensor
        return fw.lens_droplets(image, t(p.centers), t(p.radii), t(p.on), t(p.ksize))

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        p = expect(params, DropletParams, self)
        return fw.lens_droplets_np(
            image, np.asarray(p.centers)[0], np.asarray(p.radii)[0], np.asarray(p.on)[0], int(scalar(p.ksize))
        )
