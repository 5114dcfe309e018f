"""``pseudo-label``: the service pipeline, in process, over a data set folder's weak labels.

Writes ``<out>/masks/<id>.png`` (uint8 label map, 255 = not confident: ignored by train-deeplab),
``<out>/overlays/<id>.png`` and ``<out>/pseudo_labels.json`` (per image: classes with area,
confidence, predicted IoU, stability; review score; labels source; seconds; and the mask's IoU
against the ground truth when the folder has masks).

An image whose labels.json entry is empty is known to hold none of the classes: its pseudo-label
is all background, without running the models. For data sets without a background class
(``fill_background``), 0 and 255 pixels take the nearest labelled pixel's class.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image
from scipy import ndimage as ndi
from tqdm import tqdm

from service.pipeline.evaluation import quality_metrics
from service.pipeline.segment import Segmenter
from service.pipeline.types import IGNORE, Refinement, SegmentInput, SegmentOptions, SegmentResult, WeakLabels
from service.render import overlay
from training.datasets import DatasetFolder


def fill_unlabelled(label_map: npt.NDArray[np.uint8], fallback: int) -> npt.NDArray[np.uint8]:
    """Pixels at 0 or 255 take the class of the nearest pixel that has one (``fallback`` when none has)."""
    unknown = (label_map == 0) | (label_map == IGNORE)
    if not unknown.any():
        return label_map
    if unknown.all():
        return np.full_like(label_map, fallback)
    _, (iy, ix) = ndi.distance_transform_edt(unknown, return_indices=True)
    return label_map[iy, ix]


def segment_labels(
    segmenter: Segmenter, image: npt.NDArray[np.uint8], labels: WeakLabels, known_empty: bool, fill_background: bool,
    refinement: Refinement = Refinement.NONE,
) -> tuple[npt.NDArray[np.uint8], SegmentResult | None]:
    """The pipeline's label map for one image (all 0 when the labels say it holds no class)."""
    if labels.empty and known_empty:
        return np.zeros(image.shape[:2], np.uint8), None
    result = segmenter.segment(SegmentInput(image=image, labels=labels, options=SegmentOptions(refinement=refinement)))
    label_map = result.label_map
    if fill_background:
        best = max(result.classes, key=lambda c: c.classifier_probability, default=None)
        label_map = fill_unlabelled(label_map, best.class_id if best is not None else 0)
    return label_map, result


def pseudo_label(
    segmenter: Segmenter, folder: DatasetFolder, ids: Sequence[str], out: Path, refinement: Refinement = Refinement.NONE,
    fill_background: bool = False, overlays: bool = True,
) -> dict[str, object]:
    """Pseudo-label ``ids`` of ``folder`` into ``out``; returns the summary written to pseudo_labels.json.

    The segmenter's classes must be the folder's (``toolkit`` checks it when it loads the repository).
    """
    (out / "masks").mkdir(parents=True, exist_ok=True)
    if overlays:
        (out / "overlays").mkdir(parents=True, exist_ok=True)
    per_image: dict[str, object] = {}
    total = 0.0
    for image_id in tqdm(ids, desc=f"pseudo-label {folder.name}", unit="img"):
        image = folder.image(image_id)
        start = time.perf_counter()
        label_map, result = segment_labels(segmenter, image, folder.weak_labels(image_id), folder.labelled(image_id), fill_background, refinement)
        seconds = time.perf_counter() - start
        total += seconds
        Image.fromarray(label_map).save(out / "masks" / f"{image_id}.png")
        if overlays:
            Image.fromarray(overlay(image, label_map)).save(out / "overlays" / f"{image_id}.png")
        info: dict[str, object] = {"seconds": round(seconds, 4)}
        if result is not None:
            info["labels_source"] = result.labels_source.value
            info["review_score"] = round(result.review_score, 4)
            info["classes"] = [
                {"name": c.class_name, "area": c.area, "confidence": round(c.confidence, 4), "sam_iou": round(c.sam_iou, 4),
                 "stability": round(c.stability_score, 4)}
                for c in result.classes
            ]
        if folder.has_masks:
            info["miou_vs_ground_truth"] = round(quality_metrics(label_map, folder.mask(image_id), len(folder.classes)).miou, 4)
        per_image[image_id] = info
    summary: dict[str, object] = {
        "dataset": folder.name, "images": len(ids), "seconds": round(total, 1), "refinement": refinement.value,
        "fill_background": fill_background, "per_image": per_image,
    }
    (out / "pseudo_labels.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
