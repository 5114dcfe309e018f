"""Label maps for people: the VOC colour palette and overlays of a label map on its image."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def palette() -> npt.NDArray[np.uint8]:
    """PASCAL VOC colour map: 256 x RGB."""
    pal = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    pal[255] = (255, 255, 255)
    return pal


def overlay(image: npt.NDArray[np.uint8], label_map: npt.NDArray[np.uint8], alpha: float = 0.55) -> npt.NDArray[np.uint8]:
    """Colour the labelled pixels of ``image`` [H,W,3] by class (255 = white)."""
    colours = palette()[label_map].astype(np.float32)
    out = image.astype(np.float32)
    fg = label_map > 0
    out[fg] = (1 - alpha) * out[fg] + alpha * colours[fg]
    return out.astype(np.uint8)
