"""Resizing and normalisation shared by the model wrappers (numpy, OpenCV, Pillow).

Upscaling runs through OpenCV (bilinear, half-pixel centres: the same numbers as Pillow's to
1e-6 on float maps, about 10x faster); any downscaling stays with Pillow, whose bilinear filter
antialiases as segment-anything's reference preprocessing (torchvision on a PIL image) does.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

IMAGENET_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
"""ImageNet mean in 0-255 units (RGB), as SAM and the classifiers use it."""
IMAGENET_STD = np.array([58.395, 57.12, 57.375], np.float32)
"""ImageNet standard deviation in 0-255 units (RGB)."""


def resize_image(image: npt.NDArray[np.uint8], height: int, width: int) -> npt.NDArray[np.uint8]:
    """Bilinear resize of a uint8 [H, W, 3] RGB image to [height, width, 3]: Pillow's numbers
    (segment-anything's reference resize: torchvision on a PIL image is Pillow's bilinear).

    Downscaling is Pillow's own (antialiased); upscaling takes ``_upscale_like_pillow`` (OpenCV,
    the same numbers, about 10x faster than Pillow's generic resampler).
    """
    if image.shape[:2] == (height, width):
        return image
    if _upscales(image.shape[:2], height, width):
        return _upscale_like_pillow(image, height, width)
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def _upscale_like_pillow(image: npt.NDArray[np.uint8], height: int, width: int) -> npt.NDArray[np.uint8]:
    """Pillow's bilinear upscale of uint8 [H, W, C]: a horizontal pass rounded to uint8, then a
    vertical pass rounded to uint8 (half up). When upscaling, Pillow's filter is the half-pixel
    triangle of support 1 with edge taps dropped and renormalised, which is OpenCV's INTER_LINEAR
    with replicated edges; each pass is run in float32 and rounded as Pillow rounds. Pillow
    computes in 22-bit fixed point: where a scale is not a power-of-two fraction (the short side of
    most images), a value within that error of half a grey level can round the other way, one
    grey level on up to ~0.5 % of the pixels; at power-of-two scales (4x, 1024 / 2^k) they are equal."""
    h, w = image.shape[:2]
    x: npt.NDArray[np.float32] = image.astype(np.float32)
    if width != w:
        x = np.asarray(cv2.resize(x, (width, h), interpolation=cv2.INTER_LINEAR), np.float32)
        np.floor(x + 0.5, out=x)
    if height == h:
        return x.astype(np.uint8)
    x = np.asarray(cv2.resize(x, (width, height), interpolation=cv2.INTER_LINEAR), np.float32)
    # OpenCV rounds half to even; the 1e-4 makes its halves round up as Pillow's do (values are
    # multiples of far coarser steps than 1e-4 near a half for the dyadic SAM scales)
    return np.asarray(cv2.convertScaleAbs(x, alpha=1.0, beta=1e-4), np.uint8)


def _upscales(shape: tuple[int, ...], height: int, width: int) -> bool:
    return height >= shape[-2] and width >= shape[-1]


def resize_maps(
    maps: npt.NDArray[np.float32],
    height: int,
    width: int,
    box: tuple[float, float, float, float] | None = None,
    out: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """Bilinear resize of float maps [C, h, w] to [C, height, width].

    Args:
        maps: float32 [C, h, w].
        height, width: output size.
        box: optional source region (x0, y0, x1, y1) in input pixels, fractional allowed: only
            that region is resized to the output (crop + resize in one step, no rounding).
        out: optional float32 [C, height, width] to fill (e.g. a view into a padded batch).
    """
    if out is None:
        out = np.empty((maps.shape[0], height, width), np.float32)
    if box is None and _upscales(maps.shape, height, width):
        for c, m in enumerate(maps):
            plane = np.ascontiguousarray(m, dtype=np.float32)
            if out[c].flags.c_contiguous:
                cv2.resize(plane, (width, height), dst=out[c], interpolation=cv2.INTER_LINEAR)
            else:
                out[c] = cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR)
        return out
    for c, m in enumerate(maps):
        img = Image.fromarray(np.ascontiguousarray(m, dtype=np.float32), mode="F")
        out[c] = np.asarray(img.resize((width, height), Image.Resampling.BILINEAR, box=box))
    return out


_LUTS = [np.ascontiguousarray(((np.arange(256, dtype=np.float32) - IMAGENET_MEAN[c]) / IMAGENET_STD[c]).reshape(1, 256)) for c in range(3)]
"""Per channel, the normalised value of each grey level."""


def normalise(image: npt.NDArray[np.uint8], out: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.float32]:
    """uint8 [H, W, 3] RGB -> float32 [3, H, W], ImageNet mean/std in 0-255 units.

    A channel split of the uint8 image, then one lookup-table pass per channel written straight
    into its output plane (OpenCV; 2.5x faster than a lookup on the interleaved image followed by
    a float split, 8x faster than numpy's indexing); ``out`` [3, H, W] is filled in place when
    given (e.g. the top-left corner of a padded SAM input).
    """
    if out is None:
        out = np.empty((3,) + image.shape[:2], np.float32)
    planes = cv2.split(np.ascontiguousarray(image))
    for c in range(3):
        if out[c].flags.c_contiguous:
            cv2.LUT(planes[c], _LUTS[c], dst=out[c])
        else:
            out[c] = cv2.LUT(planes[c], _LUTS[c])
    return out


def normalised_resize(
    image: npt.NDArray[np.uint8],
    height: int,
    width: int,
    out: npt.NDArray[np.float32] | None = None,
    normalised: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """uint8 [H, W, 3] RGB -> normalised float32 [3, height, width], bilinear.

    Upscaling normalises first and resizes the float planes (normalisation is affine per channel,
    so this equals resizing first, minus the uint8 rounding, at a sixteenth of the lookups for a
    4x upscale); downscaling resizes the uint8 image with Pillow's antialiasing filter first.

    Args:
        image: uint8 [H, W, 3].
        height, width: output size.
        out: optional float32 [3, height, width] to fill.
        normalised: optional ``normalise(image)``, when the caller already has it.
    """
    if (height, width) == image.shape[:2]:
        if normalised is None:
            return normalise(image, out=out)
        if out is None:
            return normalised
        out[...] = normalised
        return out
    if not _upscales(image.shape[:2], height, width):
        return normalise(resize_image(image, height, width), out=out)
    base = normalise(image) if normalised is None else normalised
    return resize_maps(base, height, width, out=out)


def upsample_crop_resize(
    maps: npt.NDArray[np.float32], size: int, crop_height: int, crop_width: int, height: int, width: int
) -> npt.NDArray[np.float32]:
    """float32 [C, h, w] -> [C, height, width]: resize to ``size`` x ``size``, keep the top-left
    ``crop_height`` x ``crop_width``, resize that to ``height`` x ``width`` (bilinear, half-pixel
    centres, no antialiasing: torch's ``F.interpolate(..., "bilinear", align_corners=False)``
    twice, as segment-anything post-processes its masks; OpenCV's INTER_LINEAR is that filter)."""
    out = np.empty((maps.shape[0], height, width), np.float32)
    big = np.empty((size, size), np.float32)
    for c, m in enumerate(maps):
        cv2.resize(np.ascontiguousarray(m, dtype=np.float32), (size, size), dst=big, interpolation=cv2.INTER_LINEAR)
        crop = big[:crop_height, :crop_width]
        if (crop_height, crop_width) == (height, width):
            out[c] = crop
        else:
            cv2.resize(crop, (width, height), dst=out[c], interpolation=cv2.INTER_LINEAR)
    return out
