"""Figures for the report: image grids (PIL) and matplotlib plots, each returned as PNG bytes and saved to disk."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw


def _save(data: bytes, path: str | Path | None) -> bytes:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return data


def image_grid(
    images: np.ndarray,
    *,
    ncol: int,
    scale: int = 2,
    pad: int = 2,
    fill: int = 255,
    path: str | Path | None = None,
) -> bytes:
    """PNG of ``[N, H, W, C]`` uint8 images in rows of ``ncol``, each enlarged ``scale`` x (nearest).

    Example:
        >>> image_grid(np.zeros((3, 4, 4, 1), np.uint8), ncol=2)[:4]
        b'\\x89PNG'
    """
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"image_grid takes [N, H, W, C] uint8, got {images.shape} {images.dtype}")
    n, h, w, c = images.shape
    rows = max(1, math.ceil(n / ncol))
    hh, ww = h * scale, w * scale
    canvas = np.full((rows * (hh + pad) + pad, ncol * (ww + pad) + pad, 3), fill, np.uint8)
    for i in range(n):
        r, col = divmod(i, ncol)
        tile = images[i].repeat(scale, 0).repeat(scale, 1)
        tile = np.repeat(tile, 3, axis=2) if c == 1 else tile
        y, x = pad + r * (hh + pad), pad + col * (ww + pad)
        canvas[y : y + hh, x : x + ww] = tile
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format="PNG")
    return _save(buf.getvalue(), path)


def pair_grid(
    left: np.ndarray,
    right: np.ndarray,
    captions: Sequence[str],
    *,
    ncol: int = 4,
    scale: int = 3,
    path: str | Path | None = None,
) -> bytes:
    """PNG of (left | right) image pairs with a caption under each pair (nearest-neighbour pairs).

    Shape:
        left, right ``[N, H, W, C]`` uint8.
    """
    if left.shape != right.shape:
        raise ValueError(f"pair_grid: left {left.shape} and right {right.shape} differ")
    n, h, w, c = left.shape
    gap, cap = 2, 14
    pw, ph = 2 * w * scale + gap, h * scale + cap
    rows = max(1, math.ceil(n / ncol))
    canvas = Image.new("RGB", (ncol * (pw + 10) + 10, rows * (ph + 10) + 10), "white")
    draw = ImageDraw.Draw(canvas)
    for i in range(n):
        r, col = divmod(i, ncol)
        x, y = 10 + col * (pw + 10), 10 + r * (ph + 10)
        for j, img in enumerate((left[i], right[i])):
            tile = img.repeat(scale, 0).repeat(scale, 1)
            tile = np.repeat(tile, 3, axis=2) if c == 1 else tile
            canvas.paste(Image.fromarray(tile), (x + j * (w * scale + gap), y))
        draw.text((x, y + h * scale + 1), captions[i] if i < len(captions) else "", fill=(0, 0, 0))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return _save(buf.getvalue(), path)


def _fig_png(fig: Any, path: str | Path | None) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return _save(buf.getvalue(), path)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def per_class_bars(
    series: Mapping[str, Mapping[str, float]],
    *,
    reference: Mapping[str, float] | None = None,
    title: str = "",
    path: str | Path | None = None,
) -> bytes:
    """Grouped bars: one group per class, one bar per series (e.g. label agreement, spread ratio, mode coverage).

    ``reference`` draws a dashed horizontal line per series value (e.g. 1.0 for ratios).
    """
    plt = _plt()
    classes = list(next(iter(series.values())).keys()) if series else []
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(classes) + 2), 3.4))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(classes))
    for i, (name, vals) in enumerate(series.items()):
        ax.bar(x + i * width - 0.4 + width / 2, [vals.get(c, np.nan) for c in classes], width, label=name)
    for name, v in (reference or {}).items():
        ax.axhline(v, ls="--", lw=1, color="gray")
        ax.text(len(classes) - 0.5, v, f" {name}", va="bottom", ha="right", fontsize=8, color="gray")
    ax.set_xticks(x, classes, rotation=30, ha="right")
    ax.set_title(title, pad=22)
    ax.legend(
        fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=max(1, len(series)), frameon=False
    )
    ax.grid(axis="y", alpha=0.3)
    return _fig_png(fig, path)


def confusion_plot(
    cm: Sequence[Sequence[int]], class_names: Sequence[str], *, path: str | Path | None = None
) -> bytes:
    """Row-normalised confusion matrix (rows: conditioning label, columns: classifier's prediction)."""
    plt = _plt()
    m = np.asarray(cm, dtype=np.float64)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    k = len(class_names)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    for i in range(k):
        for j in range(k):
            if norm[i, j] >= 0.01:
                ax.text(
                    j,
                    i,
                    f"{norm[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    ax.set_xlabel("predicted by the reference classifier")
    ax.set_ylabel("conditioning label")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _fig_png(fig, path)


def ratio_histogram(
    edges: Sequence[float], counts: Sequence[int], threshold: float, *, path: str | Path | None = None
) -> bytes:
    """Histogram of memorization ratios with the near-copy threshold marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3))
    e = np.asarray(edges)
    ax.bar(e[:-1], counts, width=np.diff(e), align="edge", color="#4a7ab8", edgecolor="white")
    ax.axvline(threshold, color="crimson", ls="--", lw=1.2, label=f"near-copy threshold {threshold:.2f}")
    ax.set_xlabel("distance to nearest training sample / that sample's own nearest-neighbour distance")
    ax.set_ylabel("generated samples")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _fig_png(fig, path)


def training_curves(
    records: Sequence[Mapping[str, Any]], *, rt_target: float = 0.6, path: str | Path | None = None
) -> bytes:
    """Loss, discriminator accuracy and r_t curves of a trainer's ``metrics.jsonl``; alarms as red lines."""
    plt = _plt()
    steps = [float(r.get("step", i)) for i, r in enumerate(records)]
    groups = {
        "losses": [k for k in sorted({k for r in records for k in r}) if k.startswith("loss")],
        "discriminator": [k for k in ("d_real_acc", "d_fake_acc", "r_t") if any(k in r for r in records)],
    }
    groups = {g: ks for g, ks in groups.items() if ks}
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(5.5 * max(1, len(groups)), 3.2), squeeze=False)
    for ax, (g, keys) in zip(axes[0], groups.items(), strict=False):
        for k in keys:
            ys = [float(r[k]) if isinstance(r.get(k), (int, float)) else np.nan for r in records]
            ax.plot(steps, ys, label=k, lw=1.2)
        if "r_t" in keys:
            ax.axhline(rt_target, color="gray", ls=":", lw=1)
        for st, r in zip(steps, records, strict=True):
            fired = [
                k
                for k, v in r.items()
                if (k.endswith("alarm") and isinstance(v, (int, float)) and v) or k == "alarms"
            ]
            if fired:
                ax.axvline(st, color="crimson", ls="--", lw=0.8, alpha=0.7)
        ax.set_title(g)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return _fig_png(fig, path)
