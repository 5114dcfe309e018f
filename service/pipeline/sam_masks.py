"""Stage 5: prompt sets -> masks from the SAM-contract decoder, merged into one mask per class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from service.models.sam import ImageEmbedding, SamDecoder
from service.pipeline.prompts import PromptSet
from service.pipeline.types import ClassMask, InstanceMask


def stability_score(logits: npt.NDArray[np.float32], offset: float = 1.0) -> float:
    """SAM's stability score: |logits > +offset| / |logits > -offset| (1.0 for an empty mask)."""
    union = int(np.count_nonzero(logits > -offset))
    return float(np.count_nonzero(logits > offset)) / union if union else 1.0


def class_masks(decoder: SamDecoder, embedding: ImageEmbedding, sets: Sequence[PromptSet], mask_index: int = 3) -> list[ClassMask]:
    """Decode each prompt set (one batched call where the export allows) and merge the instances
    of each class (max of their logits; ``owner`` records which instance gave the max).

    Args:
        decoder: the SAM decoder wrapper.
        embedding: the image's embedding.
        sets: from ``prompts.prompt_sets``.
        mask_index: mask kept from a 4-mask decoder (a 1-mask decoder always gives index 0).

    Returns:
        One ``ClassMask`` per class, in class-id order, logits upsampled to the original image.
    """
    per_class: dict[int, list[tuple[PromptSet, npt.NDArray[np.float32], InstanceMask, npt.NDArray[np.float32]]]] = {}
    arrays = [
        (np.array([[p.x, p.y] for p in s.prompts], np.float32).reshape(-1, 2), np.array([p.label for p in s.prompts], np.float32))
        for s in sets
    ]
    for s, decoded in zip(sets, decoder.predict_many(embedding, arrays, [s.mask_input for s in sets])):
        k = mask_index if decoded.low_res_logits.shape[0] > mask_index else 0
        low = decoded.low_res_logits[k]
        logits = decoder.upsample(low[None], embedding.geometry)[0]
        inst = InstanceMask(s.kind, s.prompts, float(decoded.iou_predictions[k]), stability_score(logits), int(np.count_nonzero(logits > 0)))
        per_class.setdefault(s.class_id, []).append((s, logits, inst, low))
    out = []
    for class_id in sorted(per_class):
        items = per_class[class_id]
        owner = None
        if len(items) == 1:
            logits = items[0][1]
        else:
            stack = np.stack([it[1] for it in items])
            owner = stack.argmax(axis=0).astype(np.uint16)
            logits = np.take_along_axis(stack, owner[None].astype(np.intp), axis=0)[0]
        low_res = items[0][3] if len(items) == 1 else np.max(np.stack([it[3] for it in items]), axis=0)
        out.append(
            ClassMask(
                class_id=class_id,
                logits=logits,
                iou_prediction=float(np.mean([it[2].iou_prediction for it in items])),
                stability=stability_score(logits),
                prompts=tuple(p for it in items for p in it[0].prompts),
                instances=tuple(it[2] for it in items),
                uses_cam=any(it[0].uses_cam for it in items),
                low_res_logits=low_res,
                owner=owner,
            )
        )
    return out
