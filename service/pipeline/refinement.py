"""Stage 7: optional refinement of the label map, per request.

- ``NONE``: the aggregated label map as it is.
- ``CRF``: fully-connected CRF (Kraehenbuehl & Koltun 2011) with an appearance kernel (position +
  colour) and a smoothness kernel (position), mean-field inference; the unary comes from the
  per-class mask probabilities. Every pixel gets a label (no 255 after a CRF).
- ``SUPERPIXEL``: SLIC superpixels take the majority label of their pixels (255 pixels do not
  vote unless nothing else does). Cleans ragged borders of blobs; it can erase structures thinner
  than a superpixel, such as scratches, so it is never the default.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from skimage.segmentation import slic

from service.errors import Cancelled
from service.pipeline.types import IGNORE, Refinement


def class_probabilities(
    logits: dict[int, npt.NDArray[np.float32]], shape: tuple[int, int], num_classes: int
) -> npt.NDArray[np.float32]:
    """[C+1, H, W] probabilities from per-class mask logits: sigmoid per class, background = 1 - max.

    Classes without a mask get 0; the result is normalised to sum to 1 per pixel.
    """
    probs = np.zeros((num_classes + 1,) + shape, np.float32)
    for k, lg in logits.items():
        probs[k] = 1.0 / (1.0 + np.exp(-np.clip(lg, -30, 30)))
    probs[0] = 1.0 - probs[1:].max(axis=0)
    probs = np.clip(probs, 1e-5, 1.0)
    return probs / probs.sum(axis=0, keepdims=True)


def dense_crf(
    image: npt.NDArray[np.uint8],
    probs: npt.NDArray[np.float32],
    iterations: int = 5,
    smooth_sxy: float = 3.0,
    smooth_compat: float = 3.0,
    appearance_sxy: float = 50.0,
    appearance_srgb: float = 13.0,
    appearance_compat: float = 10.0,
    should_stop: Callable[[], bool] | None = None,
) -> npt.NDArray[np.uint8]:
    """Dense CRF over ``probs`` [L, H, W] for ``image`` uint8 [H, W, 3]; returns labels [H, W].

    ``should_stop`` is polled between mean-field iterations (Cancelled when it returns True).
    """
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    n_labels, h, w = probs.shape
    crf = dcrf.DenseCRF2D(w, h, n_labels)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs)))
    crf.addPairwiseGaussian(sxy=smooth_sxy, compat=smooth_compat)
    crf.addPairwiseBilateral(sxy=appearance_sxy, srgb=appearance_srgb, rgbim=np.require(image, np.uint8, ["C", "W"]), compat=appearance_compat)
    q, tmp1, tmp2 = crf.startInference()
    for _ in range(iterations):
        if should_stop is not None and should_stop():
            raise Cancelled("request cancelled or past its deadline during CRF refinement")
        crf.stepInference(q, tmp1, tmp2)
    return np.array(q).reshape(n_labels, h, w).argmax(axis=0).astype(np.uint8)


def superpixel_snap(image: npt.NDArray[np.uint8], label_map: npt.NDArray[np.uint8], pixels_per_segment: int = 100) -> npt.NDArray[np.uint8]:
    """Each SLIC superpixel takes the majority label of its pixels (255 votes only when alone)."""
    h, w = label_map.shape
    segments = slic(image, n_segments=max(4, (h * w) // pixels_per_segment), compactness=10.0, start_label=0, channel_axis=-1)
    n = int(segments.max()) + 1
    votes = label_map.astype(np.int64)
    votes[votes == IGNORE] = 256
    counts = np.bincount((segments.ravel() * 257 + votes.ravel()), minlength=n * 257).reshape(n, 257)
    known = counts[:, :256]
    winner = np.where(known.sum(axis=1) > 0, known.argmax(axis=1), IGNORE)
    return winner[segments].astype(np.uint8)


def region_of_interest(label_map: npt.NDArray[np.uint8], margin: int = 16) -> tuple[slice, slice] | None:
    """The bounding box of every non-background pixel, grown by ``margin``; None when all is background.

    Refinement runs there only: far from every mask nothing can change, and defects are small.
    """
    ys, xs = np.nonzero(label_map != 0)
    if len(ys) == 0:
        return None
    h, w = label_map.shape
    return slice(max(0, ys.min() - margin), min(h, ys.max() + margin + 1)), slice(max(0, xs.min() - margin), min(w, xs.max() + margin + 1))


def refine(
    label_map: npt.NDArray[np.uint8],
    image: npt.NDArray[np.uint8],
    method: Refinement,
    probs: npt.NDArray[np.float32] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> npt.NDArray[np.uint8]:
    """Refine ``label_map`` uint8 [H, W] using ``image`` uint8 [H, W, 3], inside the region of interest.

    Args:
        probs: float32 [C+1, H, W] class probabilities for the CRF's unary (background at 0).
        should_stop: polled inside the CRF's iterations.
    """
    if method is Refinement.NONE:
        return label_map
    roi = region_of_interest(label_map)
    if roi is None:
        return label_map
    out = label_map.copy()
    crop_img, crop_map = image[roi], label_map[roi]
    if method is Refinement.SUPERPIXEL:
        out[roi] = superpixel_snap(crop_img, crop_map)
        return out
    if probs is None:
        n = int(label_map[label_map != IGNORE].max(initial=0)) + 1
        probs = np.full((n,) + label_map.shape, 0.3 / max(n - 1, 1), np.float32)
        for k in range(n):
            probs[k][label_map == k] = 0.7
        probs /= probs.sum(axis=0, keepdims=True)
    out[roi] = dense_crf(crop_img, probs[(slice(None),) + roi], should_stop=should_stop)
    return out
