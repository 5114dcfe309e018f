"""Stage 9: label map -> PNG bytes, raw bytes, COCO RLE."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image


def encode_png(label_map: npt.NDArray[np.uint8]) -> bytes:
    """uint8 [H, W] -> 8-bit grayscale PNG bytes (pixel value = class id)."""
    buf = io.BytesIO()
    Image.fromarray(label_map, mode="L").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def rle_counts(mask: npt.NDArray[np.bool_]) -> list[int]:
    """Uncompressed COCO run lengths of a binary [H, W] mask: column-major, starting with zeros."""
    flat = np.asarray(mask, bool).T.reshape(-1)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0] + runs
    return runs


def coco_rle(mask: npt.NDArray[np.bool_]) -> dict[str, object]:
    """COCO compressed RLE of a binary [H, W] mask, as ``pycocotools.mask.encode`` makes it:
    ``{"size": [H, W], "counts": str}``."""
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": compress_counts(rle_counts(mask))}


def compress_counts(counts: list[int] | tuple[int, ...]) -> str:
    """COCO's compressed string of uncompressed run lengths (``rle_counts``)."""
    chars = []
    for i, value in enumerate(counts):
        x = value - counts[i - 2] if i > 2 else value
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return "".join(chars)


def decompress_counts(counts: str) -> list[int]:
    """Uncompressed run lengths of a COCO compressed counts string (the inverse of ``compress_counts``)."""
    out: list[int] = []
    i = 0
    while i < len(counts):
        x, k, more = 0, 0, True
        while more:
            c = ord(counts[i]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            i += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def decode_rle(counts: str, height: int, width: int) -> npt.NDArray[np.bool_]:
    """COCO compressed RLE counts -> binary [height, width] mask (the inverse of ``coco_rle``)."""
    return mask_from_counts(decompress_counts(counts), height, width)


def mask_from_counts(counts: list[int] | tuple[int, ...], height: int, width: int) -> npt.NDArray[np.bool_]:
    """The binary [H, W] mask of uncompressed run lengths (column-major, zeros first)."""
    flat = np.zeros(height * width, bool)
    pos = 0
    for i, n in enumerate(counts):
        if i % 2:
            flat[pos : pos + n] = True
        pos += n
    return flat.reshape(width, height).T
