"""Image members: exact round trips (png, npy, lossless webp), RGB order as PIL sees it, checked quantization."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from augmentgen.shards.encoders import (
    RANGE_TOLERANCE,
    EncodeSpec,
    decode_image,
    encode_image,
    encode_jpeg_torch,
    to_uint8,
)


@given(arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12), st.sampled_from([1, 3]))))
@settings(max_examples=30, deadline=None)
def test_png_and_npy_round_trip_exactly(img: np.ndarray) -> None:
    for spec in (EncodeSpec("png"), EncodeSpec("png", png_compression=9), EncodeSpec("npy")):
        back = decode_image(encode_image(img, spec), spec.format)
        assert np.array_equal(back, img)
        if spec.format == "png":  # PIL, which the webdataset decoders use, reads the same pixels
            pil = np.asarray(Image.open(io.BytesIO(encode_image(img, spec))))
            assert np.array_equal(pil.reshape(img.shape), img)


def test_png_levels_trade_size_for_time() -> None:
    """The fast default (Up filter, Huffman-only) is larger than zlib level 9 on smooth images, never lossy."""
    smooth = np.repeat(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], 64, 0).repeat(3, 2)
    fast, small = encode_image(smooth, EncodeSpec("png")), encode_image(smooth, EncodeSpec("png", png_compression=9))
    assert len(small) < len(fast)
    assert np.array_equal(decode_image(fast, "png"), decode_image(small, "png"))


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
def test_lossy_formats_stay_close(fmt: str) -> None:
    smooth = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], 32, 0).repeat(3, 2)
    back = decode_image(encode_image(smooth, EncodeSpec(fmt, 95)), fmt)
    assert back.shape == smooth.shape
    assert np.abs(back.astype(int) - smooth).mean() < 2.0


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_channels_are_rgb_for_pil_readers(fmt: str) -> None:
    img = np.zeros((8, 8, 3), np.uint8)
    img[..., 0] = 250  # pure red
    pil = np.asarray(Image.open(io.BytesIO(encode_image(img, EncodeSpec(fmt)))).convert("RGB"))
    assert pil[..., 0].min() > 230 and pil[..., 2].max() < 25


def test_to_uint8_quantizes_and_flags_bad_rows() -> None:
    x = torch.zeros(5, 1, 1, 2)
    x[0, 0, 0] = torch.tensor([0.5, 1.0])
    x[1, 0, 0, 0] = float("nan")
    x[2, 0, 0, 0] = 1.0 + 2 * RANGE_TOLERANCE
    x[3, 0, 0, 0] = -2 * RANGE_TOLERANCE
    x[4, 0, 0] = torch.tensor([1.0 + 0.5 * RANGE_TOLERANCE, float("inf")])
    imgs, finite, ok = to_uint8(x)
    assert imgs.shape == (5, 1, 2, 1) and imgs.dtype == np.uint8
    assert imgs[0, 0, :, 0].tolist() == [128, 255]  # round half to even: 127.5 -> 128
    assert finite.tolist() == [True, False, True, True, False]
    assert ok.tolist() == [True, False, False, False, False]


def test_to_uint8_passes_uint8_through() -> None:
    x = torch.randint(0, 256, (2, 3, 4, 5), dtype=torch.uint8)
    imgs, finite, ok = to_uint8(x)
    assert np.array_equal(imgs, x.permute(0, 2, 3, 1).numpy()) and ok.all() and finite.all()
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        to_uint8(torch.zeros(2, 4, 4))


def test_torchvision_jpeg_decodes() -> None:
    x = torch.full((2, 3, 16, 16), 200, dtype=torch.uint8)
    out = encode_jpeg_torch(x, 90)
    assert all(abs(int(decode_image(b, "jpg").mean()) - 200) <= 2 for b in out)


def test_undecodable_bytes_name_where() -> None:
    with pytest.raises(ValueError, match="s.tar: k.image.png: 4 bytes do not decode as png"):
        decode_image(b"nope", "png", "s.tar: k.image.png")
    with pytest.raises(ValueError, match="not a valid .npy"):
        decode_image(b"nope", "npy")
    with pytest.raises(ValueError, match="need"):
        encode_image(np.zeros((2, 2, 4), np.uint8), EncodeSpec("png"))
