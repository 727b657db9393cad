"""The weather suite: each weather op per sample against albumentations, and the preview grids.

``augmentgen bench ops --suite weather`` runs ``run_weather_benchmark``: every weather and
lighting op at its default parameters, per sample (one HWC uint8 image per call, a fresh
per-sample rng each call) at 640x360 and 1280x720 on the scikit-image ``stereo_motorcycle``
photo, against albumentations' RandomFog, RandomRain, RandomSnow, RandomSunFlare and
RandomShadow at their defaults, in ONE process on one thread, in interleaved rounds (the best
round per library counts, so a busy machine does not favour whoever ran while it was quiet).
Ops without an albumentations counterpart are timed alone. Without ``--quick`` it also times
the batched path against kornia's RandomRain and RandomSnow (batch 16, 640x360, CPU).

``benchmarks/weather.py --previews docs/img`` (``write_previews``) writes ``weather-{op}.png``: rows
are photos, columns the input then three seeded draws.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from augmentgen.core.rng import reused_sample_rng, torch_rng
from augmentgen.data.photos import load_photo

Log = Callable[[str], None] | None

WEATHER_OPS = ("fog", "rain", "snow", "sun_flare", "shadow", "night", "lens_droplets", "jpeg", "sensor_noise")
ALBUMENTATIONS = {
    "fog": "RandomFog",
    "rain": "RandomRain",
    "snow": "RandomSnow",
    "sun_flare": "RandomSunFlare",
    "shadow": "RandomShadow",
}
SIZES = ((640, 360), (1280, 720))
PREVIEW_PHOTOS = ("stereo_motorcycle", "astronaut", "coffee", "rocket")


def _ours(name: str, img: np.ndarray) -> Callable[[int], None]:
    import augmentgen.ops  # noqa: F401
    from augmentgen.pipeline import Pipeline

    pipe = Pipeline.from_dict([{"name": name}])

    def run(i: int) -> None:
        pipe(img, rng=reused_sample_rng(0, 0, i))

    return run


def _albu(name: str, img: np.ndarray) -> Callable[[int], None]:
    import albumentations as A

    t = A.Compose([getattr(A, ALBUMENTATIONS[name])(p=1.0)], seed=0)

    def run(i: int) -> None:
        t(image=img)

    return run


def _best(fns: dict[str, Callable[[int], None]], seconds: float, rounds: int) -> dict[str, dict[str, float]]:
    """ms per call (wall and process CPU) per entry: the best of ``rounds`` interleaved rounds."""
    best = {k: {"wall_ms": float("inf"), "cpu_ms": float("inf")} for k in fns}
    for fn in fns.values():
        fn(0)  # warm-up: builds pipelines, banks and caches
    for _ in range(rounds):
        for name, fn in fns.items():
            i, t0, c0 = 0, time.perf_counter(), time.process_time()
            while True:
                fn(i)
                i += 1
                el = time.perf_counter() - t0
                if el >= seconds / rounds:
                    break
            cpu = time.process_time() - c0
            if el / i * 1e3 < best[name]["wall_ms"]:
                best[name] = {"wall_ms": el / i * 1e3, "cpu_ms": cpu / i * 1e3}
    return best


def _kornia_batch(name: str, x: torch.Tensor) -> Callable[[int], None]:
    import kornia.augmentation as K

    aug = K.RandomRain(p=1.0) if name == "rain" else K.RandomSnow(p=1.0)
    return lambda i: None if aug(x) is None else None


def _ours_batch(name: str, x: torch.Tensor) -> Callable[[int], None]:
    import augmentgen.ops  # noqa: F401
    from augmentgen.core.batch import Batch
    from augmentgen.pipeline import Pipeline

    pipe = Pipeline.from_dict([{"name": name}])
    gen = torch_rng(0, "bench")
    return lambda i: None if pipe(Batch(x), rng=gen) is None else None


def run_weather_benchmark(*, quick: bool = False, log: Log = print) -> dict[str, Any]:
    """Per-sample ms per image of every weather op vs albumentations at 640x360 and 1280x720."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    seconds, rounds = (0.6, 3) if quick else (2.0, 5)
    results: dict[str, Any] = {
        "settings": {"threads": 1, "rounds": rounds, "quick": quick, "photo": "stereo_motorcycle"},
        "sizes": {},
    }
    for w, h in SIZES:
        img = load_photo("stereo_motorcycle", (h, w))
        rows: dict[str, Any] = {}
        for name in WEATHER_OPS:
            fns = {"augmentgen": _ours(name, img)}
            if name in ALBUMENTATIONS:
                try:
                    fns["albumentations"] = _albu(name, img)
                except ImportError as e:
                    if log:
                        log(f"  skipped albumentations: {e}")
            best = _best(fns, seconds * len(fns), rounds)
            row: dict[str, Any] = {k: {m: round(v, 3) for m, v in r.items()} for k, r in best.items()}
            if "albumentations" in best:
                row["speedup"] = round(best["albumentations"]["wall_ms"] / best["augmentgen"]["wall_ms"], 2)
            rows[name] = row
            if log:
                a = row["augmentgen"]
                text = f"  {name:<14} augmentgen {a['wall_ms']:8.2f} ms (cpu {a['cpu_ms']:7.2f})"
                if "albumentations" in row:
                    b = row["albumentations"]
                    text += (
                        f"   albumentations {ALBUMENTATIONS[name]:<15} {b['wall_ms']:8.2f} ms "
                        f"(cpu {b['cpu_ms']:7.2f})   {row['speedup']:.2f}x"
                    )
                log(f"{w}x{h} {text}" if name == WEATHER_OPS[0] else f"{'':>9} {text}")
        results["sizes"][f"{w}x{h}"] = rows
    if not quick:
        x = torch.from_numpy(np.stack([load_photo("stereo_motorcycle", (360, 640))] * 16)).permute(0, 3, 1, 2)
        x = x.float().div(255.0).contiguous()
        batch: dict[str, Any] = {}
        for name in ("rain", "snow"):
            fns = {"augmentgen": _ours_batch(name, x)}
            try:
                fns["kornia"] = _kornia_batch(name, x)
            except ImportError as e:
                if log:
                    log(f"  skipped kornia: {e}")
            best = _best(fns, seconds * len(fns), rounds)
            batch[name] = {k: {m: round(v, 2) for m, v in r.items()} for k, r in best.items()}
            if log:
                text = "  ".join(
                    f"{k} {r['wall_ms']:.1f} ms (cpu {r['cpu_ms']:.1f})" for k, r in best.items()
                )
                log(f"batch 16x640x360 {name:<5} {text}")
        results["batch_16x640x360_cpu"] = batch
    return results


def write_previews(
    out_dir: str | Path, *, n: int = 3, seed: int = 0, size: tuple[int, int] = (160, 236)
) -> list[Path]:
    """One grid per weather op (``weather-{op}.png``): rows are photos, columns input + ``n`` draws."""
    import augmentgen.ops  # noqa: F401
    from augmentgen.pipeline import Pipeline
    from augmentgen.pipeline.preview import preview_grid

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    photos = [load_photo(p, size) for p in PREVIEW_PHOTOS]
    paths = []
    for name in WEATHER_OPS:
        grid = preview_grid(photos, Pipeline.from_dict([{"name": name}]), n=n, seed=seed)
        path = out / f"weather-{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        paths.append(path)
    return paths
