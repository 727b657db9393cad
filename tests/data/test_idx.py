"""idx reader: round trips through files written here, and clear errors on corrupt files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp

from augmentgen.data.idx import read_idx, write_idx


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path: Path, suffix: str, dtype: type) -> None:
    arr = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    p = write_idx(tmp_path / f"x-idx3-ubyte{suffix}", arr)
    out = read_idx(p)
    assert out.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(out, arr)


@settings(max_examples=25, deadline=None)
@given(arr=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=4, max_side=6)))
def test_round_trip_any_shape(tmp_path_factory: pytest.TempPathFactory, arr: np.ndarray) -> None:
    p = write_idx(tmp_path_factory.mktemp("idx") / "a-ubyte", arr)
    np.testing.assert_array_equal(read_idx(p), arr)


def test_reads_known_bytes(tmp_path: Path) -> None:
    # header: 0x00000801 (uint8, 1 dim), size 3, then the data
    raw = bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])
    (tmp_path / "l-idx1-ubyte").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "l-idx1-ubyte"), [7, 8, 9])
    with gzip.open(tmp_path / "l-idx1-ubyte.gz", "wb") as f:
        f.write(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "l-idx1-ubyte.gz"), [7, 8, 9])


def test_big_endian_int32(tmp_path: Path) -> None:
    raw = bytes([0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 1, 0, 0xFF, 0xFF, 0xFF, 0xFE])
    (tmp_path / "a").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), [256, -2])


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (bytes([1, 0, 8, 1, 0, 0, 0, 1, 5]), "bad magic"),
        (bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 5]), "bad magic"),
        (bytes([0, 0, 8, 0]), "bad magic"),
        (bytes([0, 0]), "truncated"),
        (bytes([0, 0, 8, 2, 0, 0, 0]), "truncated inside its header"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 4, 1, 2]), "truncated"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 1, 1, 2]), "too long"),
    ],
)
def test_corrupt_files_name_the_file(tmp_path: Path, raw: bytes, match: str) -> None:
    p = tmp_path / "bad-idx1-ubyte"
    p.write_bytes(raw)
    with pytest.raises(ValueError, match=match) as e:
        read_idx(p)
    assert str(p) in str(e.value)


def test_truncated_gzip_names_the_file(tmp_path: Path) -> None:
    p = write_idx(tmp_path / "x-idx3-ubyte.gz", np.zeros((50, 28, 28), np.uint8) + 3)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=str(p)):
        read_idx(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        read_idx(tmp_path / "nope.gz")
