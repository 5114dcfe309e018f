"""Resizing and normalisation shared by the model wrappers (numpy + Pillow)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

IMAGENET_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
"""ImageNet mean in 0-255 units (RGB), as SAM and the classifiers use it."""
IMAGENET_STD = np.array([58.395, 57.12, 57.375], np.float32)
"""ImageNet standard deviation in 0-255 units (RGB)."""


def resize_image(image: npt.NDArray[np.uint8], height: int, width: int) -> npt.NDArray[np.uint8]:
    """Bilinear resize of a uint8 [H, W, 3] RGB image to [height, width, 3]."""
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def resize_maps(
    maps: npt.NDArray[np.float32],
    height: int,
    width: int,
    box: tuple[float, float, float, float] | None = None,
) -> npt.NDArray[np.float32]:
    """Bilinear resize of float maps [C, h, w] to [C, height, width].

    Args:
        maps: float32 [C, h, w].
        height, width: output size.
        box: optional source region (x0, y0, x1, y1) in input pixels, fractional allowed: only
            that region is resized to the output (crop + resize in one step, no rounding).
    """
    out = np.empty((maps.shape[0], height, width), np.float32)
    for c, m in enumerate(maps):
        img = Image.fromarray(np.ascontiguousarray(m, dtype=np.float32), mode="F")
        out[c] = np.asarray(img.resize((width, height), Image.Resampling.BILINEAR, box=box))
    return out


_LUT = ((np.arange(256, dtype=np.float32)[:, None] - IMAGENET_MEAN) / IMAGENET_STD).T.copy()  # [3, 256]


def normalise(image: npt.NDArray[np.uint8], out: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.float32]:
    """uint8 [H, W, 3] RGB -> float32 [3, H, W], ImageNet mean/std in 0-255 units.

    A per-channel lookup table (twice as fast as float arithmetic); ``out`` [3, H, W] is filled
    in place when given (e.g. the top-left corner of a padded SAM input).
    """
    if out is None:
        out = np.empty((3,) + image.shape[:2], np.float32)
    for c in range(3):
        out[c] = _LUT[c][image[..., c]]
    return out
