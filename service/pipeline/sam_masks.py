"""Stage 5: prompts -> one mask per class from the SAM-contract decoder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from service.models.sam import ImageEmbedding, SamDecoder
from service.pipeline.types import ClassMask, Prompt


def stability_score(logits: npt.NDArray[np.float32], offset: float = 1.0) -> float:
    """SAM's stability score: |logits > +offset| / |logits > -offset| (1.0 for an empty mask)."""
    union = int(np.count_nonzero(logits > -offset))
    return float(np.count_nonzero(logits > offset)) / union if union else 1.0


def class_masks(
    decoder: SamDecoder,
    embedding: ImageEmbedding,
    prompts: Mapping[int, Sequence[Prompt]],
    mask_index: int = 3,
) -> list[ClassMask]:
    """Decode each class's prompts (all at once, as S2C does) and keep one mask per class.

    Args:
        decoder: the SAM decoder wrapper.
        embedding: the image's embedding.
        prompts: class id -> its prompts (SAM labels 1, 0, 2, 3).
        mask_index: mask to keep from a 4-mask decoder (a 1-mask decoder always gives index 0).

    Returns:
        One ``ClassMask`` per class, logits upsampled to the original image.
    """
    out = []
    for class_id, points in prompts.items():
        coords = np.array([[p.x, p.y] for p in points], np.float32)
        labels = np.array([p.label for p in points], np.float32)
        decoded = decoder.predict(embedding, coords, labels)
        k = mask_index if decoded.low_res_logits.shape[0] > mask_index else 0
        logits = decoder.upsample(decoded.low_res_logits[k : k + 1], embedding.geometry)[0]
        out.append(ClassMask(class_id, logits, float(decoded.iou_predictions[k]), stability_score(logits), tuple(points)))
    return out
