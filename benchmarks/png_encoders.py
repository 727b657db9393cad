"""Can a small PNG be encoded much faster than OpenCV does? CPU per image of the PNG encoders at hand.

At 32 px a PNG's encoding is most of what writing a shard sample costs (benchmarks/shards.md).
This measures OpenCV's ``imencode`` with its default settings (Sub filter, RLE), with the
writer's fast profile (Up filter, Huffman-only) and with other filters, against PNGs assembled
here from Python's ``zlib`` with every deflate strategy, level and window (rows filtered with
PNG's Up filter, one IDAT chunk), on the shard benchmark's own images (256 crops of the
scikit-image photos). Every PNG is decoded by OpenCV and compared with its source, so only
valid PNGs are timed.

    .venv/bin/python benchmarks/png_encoders.py [--size 32] [--n 3000]

Prints one line per encoder: CPU microseconds per image (one thread, best of 3) and mean bytes.
"""

from __future__ import annotations

import argparse
import struct
import time
import zlib
from collections.abc import Callable

import cv2
import numpy as np

from augmentgen.bench.shard_peers import POOL, photo_dataset
from augmentgen.shards.encoders import EncodeSpec


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zlib_png(level: int, wbits: int, mem: int, strategy: int) -> Callable[[np.ndarray], bytes]:
    """An RGB ``[H, W, 3]`` uint8 -> PNG bytes encoder: Up-filtered rows through ``zlib.compressobj(...)``."""

    def encode(img: np.ndarray) -> bytes:
        h, w, _ = img.shape
        rows = img.reshape(h, w * 3)
        raw = np.empty((h, 1 + w * 3), np.uint8)
        raw[:, 0] = 2  # PNG filter 'Up'
        raw[0, 1:] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])
        c = zlib.compressobj(level, zlib.DEFLATED, wbits, mem, strategy)
        idat = c.compress(raw.tobytes()) + c.flush()
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")

    return encode


def opencv_png(params: list[int]) -> Callable[[np.ndarray], bytes]:
    def encode(img: np.ndarray) -> bytes:
        ok, data = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
        assert ok
        return data.tobytes()

    return encode


def cpu_us(fn: Callable[[np.ndarray], bytes], images: np.ndarray, n: int) -> float:
    best = float("inf")
    for _ in range(3):
        c = time.process_time()
        for i in range(n):
            fn(images[i % len(images)])
        best = min(best, (time.process_time() - c) / n * 1e6)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--n", type=int, default=3000, help="images per timing")
    args = ap.parse_args()
    images = photo_dataset(args.size, POOL).images
    encoders: dict[str, Callable[[np.ndarray], bytes]] = {
        "opencv default (Sub filter, RLE)": opencv_png([]),
        "opencv Up filter, Huffman-only (the writer's)": opencv_png(EncodeSpec("png").cv2_params()),
    }
    filters = {n: getattr(cv2, f"IMWRITE_PNG_FILTER_{n.upper()}") for n in ("up", "paeth")}
    for fname, flt in filters.items():
        encoders[f"opencv {fname} filter, default strategy"] = opencv_png([cv2.IMWRITE_PNG_FILTER, flt])
    strategies = {"default": zlib.Z_DEFAULT_STRATEGY, "huffman_only": zlib.Z_HUFFMAN_ONLY,
                  "rle": zlib.Z_RLE, "fixed": zlib.Z_FIXED}  # fmt: skip
    for name, strategy in strategies.items():
        for level in (1, 6):
            encoders[f"zlib {name} level {level}"] = zlib_png(level, 15, 8, strategy)
    encoders["zlib huffman_only, memLevel 1 (small blocks)"] = zlib_png(6, 15, 1, zlib.Z_HUFFMAN_ONLY)
    encoders["zlib huffman_only, 4 KiB window"] = zlib_png(6, 12, 8, zlib.Z_HUFFMAN_ONLY)
    encoders["zlib stored (level 0, no compression)"] = zlib_png(0, 15, 8, zlib.Z_DEFAULT_STRATEGY)
    for name, fn in encoders.items():
        sizes = []
        for img in images[:64]:
            data = fn(img)
            back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if back is None or not np.array_equal(cv2.cvtColor(back, cv2.COLOR_BGR2RGB), img):
                raise AssertionError(f"{name}: the PNG does not decode to its source image")
            sizes.append(len(data))
        print(f"{name:48s} {cpu_us(fn, images, args.n):7.1f} us/image  {np.mean(sizes):7.0f} bytes", flush=True)


if __name__ == "__main__":
    main()
