"""Weather and lighting ops per sample vs albumentations (and batched vs kornia), or their preview grids.

Usage: .venv/bin/python benchmarks/weather.py [--quick]   (same as `augmentgen bench ops --suite weather`)
       .venv/bin/python benchmarks/weather.py --previews docs/img   (weather-{op}.png grids)
"""

from __future__ import annotations

import argparse

from augmentgen.bench.weather import run_weather_benchmark, write_previews

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--previews", metavar="DIR", help="write the preview grids to DIR and stop")
    ap.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    args = ap.parse_args()
    if args.previews:
        for p in write_previews(args.previews):
            print(p)
    else:
        run_weather_benchmark(quick=args.quick)
