"""Image decoding: every valid kind works, every bad one is a clear InvalidInput."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from service.errors import InvalidInput
from service.pipeline.image import decode_image, decode_label_map, raw_image

LIMITS = {"max_pixels": 4_000_000, "max_side": 4096}


def _encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("RGB", "PNG"), ("RGB", "JPEG"), ("RGB", "BMP"), ("RGB", "TIFF"), ("L", "PNG"), ("RGBA", "PNG"), ("CMYK", "JPEG"), ("I;16", "PNG"), ("P", "PNG"), ("1", "PNG")],
)
def test_valid_kinds_decode_to_rgb(mode: str, fmt: str) -> None:
    img = Image.new(mode, (7, 5))
    out = decode_image(_encode(img, fmt), **LIMITS)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    arr = np.full((4, 4), 65535, np.uint16)
    out = decode_image(_encode(Image.fromarray(arr)), **LIMITS)
    assert out.max() == 255


def test_one_by_one() -> None:
    assert decode_image(_encode(Image.new("RGB", (1, 1), (9, 8, 7))), **LIMITS)[0, 0].tolist() == [9, 8, 7]


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n"
    for kind, body in ((b"IHDR", ihdr), (b"IDAT", zlib.compress(bytes(1000))), (b"IEND", b"")):
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return out


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "image bytes are empty"),
        (b"hello, not an image", "not a supported image"),
        (_encode(Image.new("RGB", (64, 64)))[:60], "could not be decoded"),
        (_png_header_only(100_000, 100_000), "decompression bomb"),
        (_png_header_only(5000, 10), "largest side allowed is 4096"),
        (_png_header_only(3000, 3000), "at most 4000000 are allowed"),
        (_encode(Image.new("RGB", (8, 8)), "GIF"), "not a supported image"),
    ],
    ids=["empty", "garbage", "truncated", "bomb", "too-wide", "too-many-pixels", "gif"],
)
def test_bad_bytes(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        decode_image(data, **LIMITS)


def test_raw_images() -> None:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(raw_image(rgb.tobytes(), 2, 3, 3, **LIMITS), rgb)
    assert raw_image(bytes(6), 2, 3, 1, **LIMITS).shape == (2, 3, 3)
    assert raw_image(bytes(24), 2, 3, 4, **LIMITS).shape == (2, 3, 3)
    with pytest.raises(InvalidInput, match="needs 18 bytes, got 17"):
        raw_image(bytes(17), 2, 3, 3, **LIMITS)
    with pytest.raises(InvalidInput, match="1, 3 or 4 channels"):
        raw_image(bytes(12), 2, 3, 2, **LIMITS)
    with pytest.raises(InvalidInput, match="zero size"):
        raw_image(b"", 0, 3, 3, **LIMITS)


def test_label_maps() -> None:
    gt = np.array([[0, 1], [4, 255]], np.uint8)
    np.testing.assert_array_equal(decode_label_map(_encode(Image.fromarray(gt)), None, (2, 2), 4, **LIMITS), gt)
    np.testing.assert_array_equal(decode_label_map(None, (gt.tobytes(), 2, 2, 1), (2, 2), 4, **LIMITS), gt)
    with pytest.raises(InvalidInput, match=r"unknown class ids \[5\]"):
        decode_label_map(_encode(Image.fromarray(gt + (gt == 4))), None, (2, 2), 4, **LIMITS)
    with pytest.raises(InvalidInput, match="is 2x2 but the image is 3x2"):
        decode_label_map(_encode(Image.fromarray(gt)), None, (2, 3), 4, **LIMITS)
    with pytest.raises(InvalidInput, match="single-channel"):
        decode_label_map(_encode(Image.new("RGB", (2, 2))), None, (2, 2), 4, **LIMITS)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "P+transparency", "RGBA+alpha", "I;16", "1"])
def test_png_pixels_equal_pillows_whichever_decoder_runs(mode: str) -> None:
    """8-bit PNGs are decoded by OpenCV (faster), the rest by Pillow: the pixels are Pillow's convert("RGB") in every case."""
    rng = np.random.default_rng(len(mode))
    rgb = Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8))
    buf = io.BytesIO()
    if mode == "P+transparency":
        rgb.quantize(16).save(buf, format="PNG", transparency=3)
    elif mode == "RGBA+alpha":
        Image.fromarray(np.dstack([np.asarray(rgb), rng.integers(0, 256, (37, 53), dtype=np.uint8)]), "RGBA").save(buf, format="PNG")
    elif mode == "P":
        rgb.quantize(64).save(buf, format="PNG")
    elif mode == "I;16":
        Image.fromarray(rng.integers(0, 65536, (37, 53), dtype=np.uint16)).save(buf, format="PNG")
    else:
        rgb.convert(mode).save(buf, format="PNG")
    data = buf.getvalue()
    got = decode_image(data, **LIMITS)
    assert got.shape == (37, 53, 3) and got.dtype == np.uint8
    if mode != "I;16":  # 16-bit is scaled by the service's own rule (test_valid_kinds_decode_to_rgb)
        np.testing.assert_array_equal(got, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    with pytest.raises(InvalidInput, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2], **LIMITS)
