"""Stage 1: request bytes -> uint8 RGB image (and the optional ground-truth label map)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from service.errors import InvalidInput, WsssError
from service.pipeline.types import IGNORE

FORMATS = ("PNG", "JPEG", "TIFF", "BMP")

SizeCheck = Callable[[int, int], object]
"""Called with (height, width) once an image's size is known, before its pixels are decoded;
raises to refuse it (e.g. ``Segmenter.check_budget``)."""


def _check_size(height: int, width: int, max_pixels: int, max_side: int, check: SizeCheck | None = None) -> None:
    if height <= 0 or width <= 0:
        raise InvalidInput(f"image has zero size ({width}x{height})")
    if height > max_side or width > max_side:
        raise InvalidInput(f"image is {width}x{height}; the largest side allowed is {max_side} pixels")
    if height * width > max_pixels:
        raise InvalidInput(f"image is {width}x{height} = {height * width} pixels; at most {max_pixels} are allowed")
    if check is not None:
        check(height, width)


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from an encoded image's header, without decoding; None when unreadable."""
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as img:
            return img.height, img.width
    except Exception:  # noqa: BLE001 - any unreadable header: decoding will say why
        return None


@contextmanager
def _decoding() -> Iterator[None]:
    """Pillow's failures on a caller's bytes (opening or decoding) as InvalidInput saying which."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except WsssError:
        raise
    except UnidentifiedImageError:
        raise InvalidInput(f"image bytes are not a supported image ({', '.join(FORMATS)})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInput(f"image refused as a decompression bomb: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidInput(f"image could not be decoded (truncated or corrupt): {exc}") from None


def _open(data: bytes, max_pixels: int, max_side: int, check: SizeCheck | None = None, load: bool = True) -> Image.Image:
    """The image with its declared size checked; its pixels decoded only when ``load``."""
    if not data:
        raise InvalidInput("image bytes are empty")
    with _decoding():
        img = Image.open(io.BytesIO(data), formats=FORMATS)
        _check_size(img.height, img.width, max_pixels, max_side, check)
        if load:
            img.load()
    return img


OPENCV_PNG_MODES = frozenset({"RGB", "RGBA", "L", "LA", "P"})
"""8-bit PNGs that OpenCV decodes to the same RGB pixels as Pillow's ``convert("RGB")``, about
1.7x faster (tests/pipeline/test_image.py compares them); other modes and formats stay with Pillow."""


def _png_with_opencv(data: bytes) -> npt.NDArray[np.uint8] | None:
    """RGB pixels of an 8-bit PNG decoded by OpenCV (orientation ignored, as Pillow does); None
    when OpenCV refuses it (then Pillow decodes it, and says why it is corrupt)."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.ndim != 3:
        return None
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.uint8)


def _to_rgb(img: Image.Image) -> npt.NDArray[np.uint8]:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.int64)
        peak = 65535 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255
        gray = np.clip(arr * 255 // peak, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "F":
        arr = np.nan_to_num(np.asarray(img, np.float32))
        lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=1.0))
        gray = ((arr - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def decode_image(data: bytes, max_pixels: int, max_side: int, check: SizeCheck | None = None) -> npt.NDArray[np.uint8]:
    """Decode PNG/JPEG/TIFF/BMP bytes to uint8 [H, W, 3] RGB.

    Grayscale, palette, 16-bit, RGBA (alpha dropped) and CMYK inputs are converted to RGB. The
    declared size is checked against the limits (and ``check``) before any pixel is decoded.

    Raises:
        InvalidInput: empty, truncated, corrupt, unsupported or too large input; whatever ``check`` raises.
    """
    img = _open(data, max_pixels, max_side, check, load=False)
    if img.format == "PNG" and img.mode in OPENCV_PNG_MODES:
        rgb = _png_with_opencv(data)
        if rgb is not None and rgb.shape[:2] == (img.height, img.width):
            return rgb
    with _decoding():  # the header read and checked above: decode the pixels now
        img.load()
    return _to_rgb(img)


def raw_image(
    data: bytes, height: int, width: int, channels: int, max_pixels: int, max_side: int, check: SizeCheck | None = None
) -> npt.NDArray[np.uint8]:
    """Raw uint8 row-major [height, width, channels] bytes (channels 1, 3 or 4) -> uint8 [H, W, 3] RGB.

    Raises:
        InvalidInput: bad shape, or a byte count that does not match it; whatever ``check`` raises.
    """
    _check_size(height, width, max_pixels, max_side, check)
    if channels not in (1, 3, 4):
        raise InvalidInput(f"raw image must have 1, 3 or 4 channels, got {channels}")
    expected = height * width * channels
    if len(data) != expected:
        raise InvalidInput(f"raw image of {width}x{height}x{channels} needs {expected} bytes, got {len(data)}")
    arr = np.frombuffer(data, np.uint8).reshape(height, width, channels)
    if channels == 1:
        return np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[..., :3])


def decode_label_map(
    data: bytes | None,
    raw: tuple[bytes, int, int, int] | None,
    shape: tuple[int, int],
    num_classes: int,
    max_pixels: int,
    max_side: int,
) -> npt.NDArray[np.uint8]:
    """A ground-truth label map from PNG bytes (mode L or P: palette indices) or raw bytes.

    Args:
        data: encoded bytes, or None.
        raw: (bytes, height, width, channels) with channels == 1, or None.
        shape: (H, W) the image has; the label map must match.
        num_classes: C; ids must be in 0..C or 255.

    Raises:
        InvalidInput: wrong size, more than one channel, or unknown ids.
    """
    if raw is not None:
        buf, h, w, c = raw
        if c != 1:
            raise InvalidInput(f"ground_truth must have 1 channel, got {c}")
        _check_size(h, w, max_pixels, max_side)
        if len(buf) != h * w:
            raise InvalidInput(f"ground_truth of {w}x{h} needs {h * w} bytes, got {len(buf)}")
        gt = np.frombuffer(buf, np.uint8).reshape(h, w)
    else:
        img = _open(data or b"", max_pixels, max_side)
        if img.mode not in ("L", "P"):
            raise InvalidInput(f"ground_truth must be a single-channel 8-bit label map (mode L or P), got mode {img.mode}")
        gt = np.asarray(img, np.uint8)
    if gt.shape != shape:
        raise InvalidInput(f"ground_truth is {gt.shape[1]}x{gt.shape[0]} but the image is {shape[1]}x{shape[0]}")
    ids = np.unique(gt)
    bad = ids[(ids > num_classes) & (ids != IGNORE)]
    if bad.size:
        raise InvalidInput(f"ground_truth has unknown class ids {bad.tolist()} (valid: 0..{num_classes} and 255)")
    return np.ascontiguousarray(gt)
