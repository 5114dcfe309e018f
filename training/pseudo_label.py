"""``pseudo-label``: the service pipeline, in process, over a data set folder's weak labels.

``source`` says what makes each label map: ``pipeline`` (the Segment pipeline: CAM peaks ->
SAM-contract masks -> aggregation, every kind of weak label) or, from the image-level tags alone,
the classifier's CAMs (``cam_threshold``, ``cam_crf``: ``training/cam_labels.py``), for data where
the promptable model's masks are worse than the CAMs, ``cam_saliency`` (CAM + CRF with its unary
split between salient objects and stuff by a salient-object model: ``training/saliency.py``; each
class's objectness is measured over the images labelled, first), ``cam_rw`` and ``cam_rw_saliency``
(``cam_threshold`` and ``cam_saliency`` on CAMs spread by a random walk over the classifier's
feature affinity: ``service/pipeline/cam_random_walk.py``), or ``consensus``: where the
pipeline and CAM + CRF agree, their class, elsewhere 255 (DeepLab learns only from the pixels both
methods give the same class). Which one is chosen per data set on its training split (docs/RESULTS.md).

Writes ``<out>/masks/<id>.png`` (uint8 label map, 255 = not confident: ignored by train-deeplab),
``<out>/overlays/<id>.png`` and ``<out>/pseudo_labels.json`` (per image: classes with area,
confidence, predicted IoU, stability; review score; labels source; seconds; with a saliency source
the tagged classes whose CAM was empty, labelled from the saliency alone; and the mask's IoU
against the ground truth when the folder has masks; with a CRF source, ``cam_crf``: its appearance
kernel's weight and colour scale; with a random-walk source, ``random_walk``: its power and steps).

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

from service.pipeline.cam_random_walk import RANDOM_WALK
from service.pipeline.evaluation import quality_metrics
from service.pipeline.segment import Segmenter
from service.pipeline.types import IGNORE, Refinement, SegmentInput, SegmentOptions, SegmentResult, WeakLabels
from service.render import overlay
from training.cam_labels import CRF_APPEARANCE, CamLabels
from training.datasets import DatasetError, DatasetFolder
from training.saliency import SaliencyModel

SOURCES = ("pipeline", "cam_threshold", "cam_crf", "cam_saliency", "cam_rw", "cam_rw_saliency", "consensus")
CRF_SOURCES = ("cam_crf", "cam_saliency", "cam_rw_saliency", "consensus")
"""The sources whose labels go through the CAM CRF (``CamLabels``: its appearance kernel ``cam_crf``)."""
RW_SOURCES = ("cam_rw", "cam_rw_saliency")
"""The sources whose CAMs are spread by the random walk (``CamLabels``: its ``random_walk``)."""
SALIENCY_SOURCES = ("cam_saliency", "cam_rw_saliency")
"""The sources that need a salient-object model (``--saliency``)."""


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
    fill_background: bool = False, overlays: bool = True, source: str = "pipeline", saliency: SaliencyModel | None = None,
    cam_crf: tuple[float, float] = CRF_APPEARANCE, random_walk: tuple[float, int] = RANDOM_WALK,
) -> dict[str, object]:
    """Pseudo-label ``ids`` of ``folder`` into ``out``; returns the summary written to pseudo_labels.json.

    The segmenter's classes must be the folder's (``toolkit`` checks it when it loads the repository).
    A CAM ``source`` needs image-level tags on every image that has labels (DatasetError naming the
    first image without, before anything is written); ``cam_saliency`` and ``cam_rw_saliency`` need ``saliency``.
    """
    if source not in SOURCES:
        raise DatasetError(f"unknown pseudo-label source {source!r} (one of {', '.join(SOURCES)})")
    if (source in SALIENCY_SOURCES) != (saliency is not None):
        raise DatasetError(f"--source {'/'.join(SALIENCY_SOURCES)} needs --saliency REPO (a salient-object DeepLab), and --saliency only applies to them")
    if source not in ("pipeline", "consensus") and refinement != Refinement.NONE:
        raise DatasetError(f"--refinement {refinement.value} refines the pipeline's masks: it does not apply to --source {source}")
    cams = (CamLabels(segmenter, background=not fill_background, saliency=saliency, crf_appearance=cam_crf, random_walk=random_walk)
            if source != "pipeline" else None)
    if cams is not None and source in RW_SOURCES and not cams.can_walk:
        raise DatasetError(f"--source {source} walks over the classifier's features at CAM scale 1: this cam_classifier exports no "
                           f"features output, or the CAM scales {segmenter.config.cam_scales} lack 1.0")
    if cams is not None:
        untagged = [i for i in ids if not (labels := folder.weak_labels(i)).image_labels and not labels.empty]
        if untagged:
            raise DatasetError(f"{folder.root}: --source {source} uses image-level tags, but {untagged[0]} (and {len(untagged) - 1} more) "
                               "has other labels only: use --source pipeline")
    objectness, objectness_seconds = None, 0.0
    if cams is not None and source in SALIENCY_SOURCES:
        start = time.perf_counter()
        objectness = cams.measure_objectness(folder, ids)
        objectness_seconds = time.perf_counter() - start
    (out / "masks").mkdir(parents=True, exist_ok=True)
    if overlays:
        (out / "overlays").mkdir(parents=True, exist_ok=True)
    per_image: dict[str, dict[str, object]] = {}
    total = objectness_seconds  # the first pass over the images counts in the step's time
    for image_id in tqdm(ids, desc=f"pseudo-label {folder.name}", unit="img"):
        image = folder.image(image_id)
        start = time.perf_counter()
        labels = folder.weak_labels(image_id)
        result: SegmentResult | None = None
        label_map: npt.NDArray[np.uint8] | None = None
        if source in ("pipeline", "consensus"):
            label_map, result = segment_labels(segmenter, image, labels, folder.labelled(image_id), fill_background, refinement)
        if cams is not None:
            make = {"cam_threshold": cams.threshold, "cam_saliency": cams.saliency_crf, "cam_rw": cams.rw_threshold,
                    "cam_rw_saliency": cams.rw_saliency_crf}.get(source, cams.crf)
            cam_map = make(image_id, image, labels.image_labels)
            if fill_background and labels.image_labels:
                cam_map = fill_unlabelled(cam_map, segmenter.classes.index(labels.image_labels[0]) + 1)
            label_map = cam_map if label_map is None else np.where(label_map == cam_map, label_map, IGNORE).astype(np.uint8)
        assert label_map is not None
        seconds = time.perf_counter() - start
        total += seconds
        Image.fromarray(label_map).save(out / "masks" / f"{image_id}.png")
        if overlays:
            Image.fromarray(overlay(image, label_map)).save(out / "overlays" / f"{image_id}.png")
        info: dict[str, object] = {"seconds": round(seconds, 4), "source": source, "labelled_fraction": round(float(np.mean(label_map != IGNORE)), 4)}
        if cams is not None and source in SALIENCY_SOURCES:
            info["empty_cam_classes"] = cams.empty_cams  # tagged, but their CAM was empty: labelled from the saliency alone
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
        "dataset": folder.name, "images": len(ids), "seconds": round(total, 1), "refinement": refinement.value, "source": source,
        "fill_background": fill_background, "per_image": per_image,
    }
    if source in CRF_SOURCES:
        summary["cam_crf"] = list(cam_crf)
    if source in RW_SOURCES:
        summary["random_walk"] = list(random_walk)
    if objectness is not None:
        summary["objectness"] = objectness
        summary["objectness_seconds"] = round(objectness_seconds, 1)
        summary["images_with_empty_cams"] = sum(bool(i["empty_cam_classes"]) for i in per_image.values())
    (out / "pseudo_labels.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
