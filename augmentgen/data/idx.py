"""Reader and writer of the idx format (MNIST, Fashion-MNIST), plain or gzip-compressed.

Format (big-endian): two zero bytes, a dtype code, the number of dimensions ``d``, then
``d`` uint32 sizes, then the data in C order. See http://yann.lecun.com/exdb/mnist/.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

# idx dtype code -> numpy dtype (big-endian where it matters)
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {v.newbyteorder("="): k for k, v in _DTYPES.items()}


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise ValueError(f"idx file {path} does not exist")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ValueError(f"idx file {path} cannot be read: {e}") from e


def read_idx(path: str | Path) -> np.ndarray:
    """Read one idx file (``.gz`` or plain) into a numpy array in native byte order.

    Args:
        path: the file, e.g. ``train-images-idx3-ubyte.gz``.

    Shape:
        images files give ``[N, H, W]`` uint8, label files ``[N]`` uint8.

    Example:
        >>> read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").shape
        (10000,)
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"idx file {path} is truncated: {len(raw)} bytes, the header alone needs 4")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _DTYPES or ndim == 0:
        raise ValueError(
            f"idx file {path} has a bad magic number 0x{raw[:4].hex()} "
            f"(expected 0x0000 + dtype code in {sorted(hex(c) for c in _DTYPES)} + ndim >= 1)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"idx file {path} is truncated inside its header ({len(raw)} < {header} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "too long"
        raise ValueError(
            f"idx file {path} is {what}: header says shape {tuple(shape)} ({expected} data bytes), "
            f"file holds {got} data bytes"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an idx file (gzip when ``path`` ends with ``.gz``); the inverse of ``read_idx``.

    Example:
        >>> write_idx(tmp / "x-idx1-ubyte", np.arange(3, dtype=np.uint8))  # doctest: +SKIP
    """
    path = Path(path)
    arr = np.asarray(array)
    key = arr.dtype.newbyteorder("=")
    if key not in _CODES:
        raise TypeError(f"write_idx: dtype {arr.dtype} has no idx code; use one of {list(_CODES)}")
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"write_idx: array must have 1..255 dimensions, got {arr.ndim}")
    code = _CODES[key]
    header = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body = np.ascontiguousarray(arr.astype(_DTYPES[code])).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(header + body)
    else:
        path.write_bytes(header + body)
    return path
