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
    """Bilinear resize of a uint8 [H, W, 3] RGB image to [height, width, 3] (Pillow)."""
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


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


_LUT = np.ascontiguousarray(((np.arange(256, dtype=np.float32)[:, None] - IMAGENET_MEAN) / IMAGENET_STD).reshape(1, 256, 3))


def normalise(image: npt.NDArray[np.uint8], out: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.float32]:
    """uint8 [H, W, 3] RGB -> float32 [3, H, W], ImageNet mean/std in 0-255 units.

    One per-channel lookup table pass and a channel split (OpenCV; 3x faster than numpy's
    indexing); ``out`` [3, H, W] is filled in place when given (e.g. the top-left corner of a
    padded SAM input).
    """
    if out is None:
        out = np.empty((3,) + image.shape[:2], np.float32)
    hwc = cv2.LUT(np.ascontiguousarray(image), _LUT)
    if all(out[c].flags.c_contiguous for c in range(3)):
        cv2.split(hwc, [out[0], out[1], out[2]])
    else:
        for c in range(3):
            out[c] = hwc[..., c]
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
