"""Lighting and sensor ops: sun flare, shadows, night, sensor noise and JPEG artefacts.

Photometric ("pixel") ops with per-sample parameters drawn from ``rng``; the kernels live
in ``ops.functional.lighting`` and give the same result on the batched torch path and the
per-sample OpenCV path (uint8: within a few levels; JPEG: identical bytes, both libjpeg-turbo).
Boxes, masks and keypoints pass through untouched.

Example:
    >>> import torch
    >>> from augmentgen.core import Batch
    >>> op = Night()
    >>> b = Batch(torch.rand(2, 3, 16, 24))
    >>> op.apply(b, op.sample_params(b, torch.Generator().manual_seed(0))).image.shape
    torch.Size([2, 3, 16, 24])
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
from augmentgen.ops.functional import lighting as fl
from augmentgen.ops.functional import noise as fnoise
from augmentgen.ops.weather import rand, rounded


def _f32(a: Any) -> Any:
    return a.to(torch.float32) if isinstance(a, Tensor) else np.asarray(a, np.float32)


@dataclass(frozen=True)
class SunFlareParams(Params):
    center: Array  # [B, 2] x, y fractions
    radius: Array
    intensity: Array
    rays: Array  # starburst rotation, radians
    ghost_t: Array  # [B, G] position along the flare -> centre axis
    ghost_r: Array  # [B, G] fraction of max(H, W)
    ghost_a: Array  # [B, G] opacity
    ghost_hue: Array  # [B, G] in [0, 1)


@register("sun_flare")
@dataclass(kw_only=True)
class SunFlare(Op):
    """Low sun in the frame: a warm halo with a starburst at a per-sample position, and a line of
    coloured ghosts through the image centre, screen-blended (``x + L (1 - x)``).

    Args:
        x: ``(low, high)`` flare centre as a fraction of the width, in [0, 1].
        y: ``(low, high)`` flare centre as a fraction of the height, in [0, 1]. Default upper half.
        radius: ``(low, high)`` halo radius as a fraction of ``max(H, W)``, in [0, 1].
        intensity: ``(low, high)`` in [0, 1]; 0 is the identity.
        num_ghosts: ghosts per sample, in [0, 16].
        ghost_radius: ``(low, high)`` fraction of ``max(H, W)`` in [0, 0.5].
    """

    x: Range = (0.0, 1.0)
    y: Range = (0.0, 0.5)
    radius: Range = (0.15, 0.35)
    intensity: Range = (0.6, 1.0)
    num_ghosts: int = 6
    ghost_radius: Range = (0.01, 0.05)

    def validate(self) -> None:
        for k in ("x", "y", "radius", "intensity"):
            as_range("SunFlare", k, getattr(self, k), 0.0, 1.0)
        as_range("SunFlare", "ghost_radius", self.ghost_radius, 0.0, 0.5)
        if not isinstance(self.num_ghosts, int) or not 0 <= self.num_ghosts <= 16:
            raise ValueError(f"SunFlare.num_ghosts must be an int in [0, 16], got {self.num_ghosts!r}")

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        ranges = [as_range("SunFlare", k, getattr(self, k)) for k in ("x", "y", "radius", "intensity")]
        (cx, cy, r, inten, rays), _ = uniform_cols(rng, [*ranges, (0.0, 2 * math.pi)], n)
        g = self.num_ghosts
        u = _f32(rand(rng, n, 4 * g))
        g_lo, g_hi = as_range("SunFlare", "ghost_radius", self.ghost_radius)
        xy: Any = [cx, cy]
        center = torch.stack(xy, -1) if isinstance(cx, Tensor) else np.stack(xy, -1)
        return SunFlareParams(
            applied=applied,
            center=center,
            radius=r,
            intensity=inten,
            rays=rays,
            ghost_t=0.3 + 1.9 * u[:, 0::4],
            ghost_r=g_lo + (g_hi - g_lo) * u[:, 1::4],
            ghost_a=0.1 + 0.25 * u[:, 2::4],
            ghost_hue=u[:, 3::4],
        )

    @staticmethod
    def _dict(p: SunFlareParams) -> dict[str, Any]:
        return {k: v for k, v in p.fields().items() if k != "applied"}

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        return fl.sun_flare(image, self._dict(expect(params, SunFlareParams, self)))

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        p = expect(params, SunFlareParams, self)
        if scalar(p.intensity) == 0.0:
            return image
        return fl.sun_flare_np(image, self._dict(p))


@dataclass(frozen=True)
class ShadowParams(Params):
    vx: Array  # [B, K, V] vertex x (pixels), in order around each polygon
    vy: Array  # [B, K, V]
    on: Array  # [B, K]
    intensity: Array


@register("shadow")
@dataclass(kw_only=True)
class Shadow(Op):
    """Cast shadows: random convex polygons (vertices on a rotated ellipse, one per angular sector
    of ``360 / vertices`` degrees, so the polygon holds the ellipse's centre) darkened by a
    per-sample intensity, with a soft penumbra of a few pixels.

    Args:
        num_shadows: ``(low, high)`` polygons per sample, ints in [0, 8]; 0 is the identity.
        intensity: ``(low, high)`` darkening in [0, 1] (0.5 halves the light); 0 is the identity.
        size: ``(low, high)`` polygon semi-axes as fractions of W and H, in [0, 1].
        roi: ``(x0, y0, x1, y1)`` fractions where polygon centres fall. Default: the lower half.
        vertices: vertices per polygon, in [3, 12].
    """

    num_shadows: Range = (1.0, 2.0)
    intensity: Range = (0.4, 0.7)
    size: Range = (0.1, 0.35)
    roi: tuple[float, float, float, float] = (0.0, 0.5, 1.0, 1.0)
    vertices: int = 5

    def validate(self) -> None:
        lo, hi = as_range("Shadow", "num_shadows", self.num_shadows, 0.0, 8.0)
        if lo != int(lo) or hi != int(hi):
            raise ValueError(f"Shadow.num_shadows must be whole numbers, got {self.num_shadows!r}")
        as_range("Shadow", "intensity", self.intensity, 0.0, 1.0)
        as_range("Shadow", "size", self.size, 0.0, 1.0)
        r = self.roi
        if len(r) != 4 or not (0.0 <= r[0] <= r[2] <= 1.0 and 0.0 <= r[1] <= r[3] <= 1.0):
            raise ValueError(
                f"Shadow.roi must be (x0, y0, x1, y1) fractions with x0 <= x1, y0 <= y1, got {r!r}"
            )
        if not isinstance(self.vertices, int) or not 3 <= self.vertices <= 12:
            raise ValueError(f"Shadow.vertices must be an int in [3, 12], got {self.vertices!r}")

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        h, w = size
        c_lo, c_hi = as_range("Shadow", "num_shadows", self.num_shadows)
        cnt: Any
        (cnt, inten), _ = uniform_cols(
            rng, [(c_lo, c_hi + 1.0), as_range("Shadow", "intensity", self.intensity)], n
        )
        k, v = max(1, int(c_hi)), self.vertices
        s_lo, s_hi = as_range("Shadow", "size", self.size)
        x0, y0, x1, y1 = self.roi
        u = _f32(rand(rng, n, k * (5 + v))).reshape(n, k, 5 + v)
        cx, cy = (x0 + (x1 - x0) * u[..., 0]) * w, (y0 + (y1 - y0) * u[..., 1]) * h
        ax, ay = (s_lo + (s_hi - s_lo) * u[..., 2]) * w, (s_lo + (s_hi - s_lo) * u[..., 3]) * h
        rot = u[..., 4:5] * (2 * math.pi)
        phi: Any
        ex: Any
        cr: Any
        if isinstance(u, Tensor):
            phi = (torch.arange(v, device=u.device) + 0.5 * u[..., 5:]) * (2 * math.pi / v)
            ex, ey = ax[..., None] * torch.cos(phi), ay[..., None] * torch.sin(phi)
            cr, sr = torch.cos(rot), torch.sin(rot)
            on: Array = (
                torch.arange(k, device=u.device).reshape(1, -1)
                < torch.floor(cnt).clamp(max=c_hi).reshape(-1, 1)
            ).float()
        else:
            phi = (np.arange(v, dtype=np.float32) + np.float32(0.5) * u[..., 5:]) * np.float32(
                2 * math.pi / v
            )
            ex, ey = ax[..., None] * np.cos(phi), ay[..., None] * np.sin(phi)
            cr, sr = np.cos(rot), np.sin(rot)
            on = (np.arange(k).reshape(1, -1) < np.minimum(np.floor(cnt), c_hi).reshape(-1, 1)).astype(
                np.float32
            )
        vx, vy = cx[..., None] + cr * ex - sr * ey, cy[..., None] + sr * ex + cr * ey
        return ShadowParams(applied=applied, vx=_f32(vx), vy=_f32(vy), on=on, intensity=inten)

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        p = expect(params, ShadowParams, self)
        t = torch.as_tensor
        return fl.shadow(image, t(p.vx), t(p.vy), t(p.on), t(p.intensity))

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        p = expect(params, ShadowParams, self)
        return fl.shadow_np(
            image, np.asarray(p.vx)[0], np.asarray(p.vy)[0], np.asarray(p.on)[0], scalar(p.intensity)
        )


@dataclass(frozen=True)
class NightParams(Params):
    brightness: Array
    gamma: Array
    blue: Array
    sigma: Array
    offset: Array


@register("night")
@dataclass(kw_only=True)
class Night(Op):
    """Night / low light: ``brightness * x ** gamma`` (crushes shadows more than highlights), a
    blue shift (red and green lose light), then sensor noise of std ``noise``.

    Args:
        brightness: ``(low, high)`` in [0, 1]; 1 keeps the exposure.
        gamma: ``(low, high)`` in [1, 5]; 1 keeps the tone curve.
        blue: ``(low, high)`` blue shift in [0, 1]; red gains ``1 - 0.6 blue``, green ``1 - 0.3 blue``.
        noise: ``(low, high)`` noise std in [0, 1] image units.
            ``brightness=1, gamma=1, blue=0, noise=0`` is the identity.
    """

    brightness: Range = (0.25, 0.5)
    gamma: Range = (1.3, 2.2)
    blue: Range = (0.2, 0.6)
    noise: Range = (0.01, 0.04)

    def _ranges(self) -> list[tuple[float, float]]:
        lim = {"brightness": (0.0, 1.0), "gamma": (1.0, 5.0), "blue": (0.0, 1.0), "noise": (0.0, 1.0)}
        return [as_range("Night", k, getattr(self, k), *lim[k]) for k in lim]

    def validate(self) -> None:
        self._ranges()

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        (b, g, bl, s, _off), u = uniform_cols(rng, [*self._ranges(), (0.0, 1.0)], n)
        return NightParams(
            applied=applied,
            brightness=b,
            gamma=g,
            blue=bl,
            sigma=s,
            offset=offsets(u[:, -1], fnoise.BANK_SIZE),
        )

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        p = expect(params, NightParams, self)
        t = torch.as_tensor
        return fl.night(image, t(p.brightness), t(p.gamma), t(p.blue), t(p.sigma), t(p.offset))

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        p = expect(params, NightParams, self)
        return fl.night_np(
            image,
            scalar(p.brightness),
            scalar(p.gamma),
            scalar(p.blue),
            scalar(p.sigma),
            int(scalar(p.offset)),
        )


@dataclass(frozen=True)
class SensorNoiseParams(Params):
    shot: Array
    read: Array
    chroma: Array
    off_luma: Array
    off_chroma: Array


@register("sensor_noise")
@dataclass(kw_only=True)
class SensorNoise(Op):
    """Camera sensor noise: signal-dependent shot noise plus read noise, part of it shared by the
    channels (luma grain) and part per channel (colour speckle).

    Args:
        shot: ``(low, high)`` shot-noise gain in [0, 1] (variance ``shot * x``).
        read: ``(low, high)`` read-noise std in [0, 1] image units. ``shot=0, read=0`` is the identity.
        chroma: ``(low, high)`` share of the variance that is per channel, in [0, 1].
    """

    shot: Range = (0.0005, 0.004)
    read: Range = (0.003, 0.015)
    chroma: Range = (0.2, 0.6)

    def _ranges(self) -> list[tuple[float, float]]:
        return [as_range("SensorNoise", k, getattr(self, k), 0.0, 1.0) for k in ("shot", "read", "chroma")]

    def validate(self) -> None:
        self._ranges()

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        (sh, rd, ch, _a, _b), u = uniform_cols(rng, [*self._ranges(), (0.0, 1.0), (0.0, 1.0)], n)
        return SensorNoiseParams(
            applied=applied,
            shot=sh,
            read=rd,
            chroma=ch,
            off_luma=offsets(u[:, 3], fnoise.BANK_SIZE),
            off_chroma=offsets(u[:, 4], fnoise.BANK_SIZE),
        )

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        p = expect(params, SensorNoiseParams, self)
        t = torch.as_tensor
        return fl.sensor_noise(image, t(p.shot), t(p.read), t(p.chroma), t(p.off_luma), t(p.off_chroma))

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        p = expect(params, SensorNoiseParams, self)
        return fl.sensor_noise_np(
            image,
            scalar(p.shot),
            scalar(p.read),
            scalar(p.chroma),
            int(scalar(p.off_luma)),
            int(scalar(p.off_chroma)),
        )


@dataclass(frozen=True)
class JpegParams(Params):
    quality: Array  # int64 in [1, 100]


@register("jpeg")
@dataclass(kw_only=True)
class Jpeg(Op):
    """JPEG compression artefacts: a real encode/decode at a per-sample quality (blocking, ringing,
    chroma bleeding). No quality is lossless, so only ``p=0`` is the identity.

    Args:
        quality: ``(low, high)`` ints in [1, 100]. Default (30, 90).
    """

    quality: Range = (30.0, 90.0)

    def validate(self) -> None:
        lo, hi = as_range("Jpeg", "quality", self.quality, 1.0, 100.0)
        if lo != int(lo) or hi != int(hi):
            raise ValueError(f"Jpeg.quality must be whole numbers, got {self.quality!r}")

    def draw(self, n: int, size: tuple[int, int], rng: RNG, applied: Array) -> Params:
        lo, hi = as_range("Jpeg", "quality", self.quality)
        (q,), _ = uniform_cols(rng, [(lo, hi + 1.0)], n)
        qi = rounded(q - 0.5)
        qi = torch.clamp(qi, int(lo), int(hi)) if isinstance(qi, Tensor) else np.clip(qi, int(lo), int(hi))
        return JpegParams(applied=applied, quality=qi)

    def apply_image(self, image: Tensor, params: Params) -> Tensor:
        return fl.jpeg(image, torch.as_tensor(expect(params, JpegParams, self).quality))

    def apply_image_np(self, image: np.ndarray, params: Params) -> np.ndarray:
        return fl.jpeg_np(image, int(scalar(expect(params, JpegParams, self).quality)))
