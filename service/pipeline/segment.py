"""The Segment pipeline: runs the stages in order.

image -> weak labels -> CAM -> prompts -> SAM masks -> aggregation -> refinement -> result
(+ quality metrics when a ground truth is given). Plain values in and out; no server needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from service.errors import Cancelled, InvalidInput
from service.models.cam_classifier import CamClassifier
from service.models.embedding_cache import pixel_key
from service.models.sam import ImageEncoder, SamDecoder
from service.pipeline import aggregation, cam, cam_random_walk, evaluation, grabcut, prompts, refinement, sam_masks, scribbles, weak_labels
from service.pipeline.cam_cache import CamCache
from service.pipeline.encoding import coco_rle, encode_png
from service.pipeline.types import (
    IGNORE,
    ClassResult,
    ConfidenceScore,
    EncodedMask,
    InstanceMask,
    LabelsSource,
    MaskFormat,
    Refinement,
    SegmentInput,
    SegmentResult,
)
from service.pipeline.work_frame import WorkFrame, estimate_bytes, refuse_over_budget


@dataclass(frozen=True)
class PipelineConfig:
    """Server-wide pipeline defaults (see ``service.settings.Settings`` for each field's meaning)."""

    cam_scales: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    cam_flip: bool = True
    peak_threshold: float = 0.5
    peak_min_distance: int = 20
    max_peaks_per_class: int = 8
    label_threshold: float = 0.5
    confidence_threshold: float = 0.05
    stability_confidence_threshold: float = 0.05
    sam_mask_index: int = 3
    max_prompts: int = 1000
    max_work_side: int = 1024
    max_request_bytes: int = 1536 * 1024 * 1024
    stuff_agreement: float = 0.0
    stuff_cam_threshold: float = 0.35
    cam_walk_beta: float = cam_random_walk.RANDOM_WALK[0]
    cam_walk_steps: int = cam_random_walk.RANDOM_WALK[1]


class Timer:
    """Collects (stage, seconds) in order and checks for cancellation between stages."""

    def __init__(self, should_stop: Callable[[], bool] | None = None) -> None:
        self.timings: list[tuple[str, float]] = []
        self.should_stop = should_stop

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled(f"request cancelled or past its deadline before stage {name!r}")
        start = time.perf_counter()
        yield
        self.timings.append((name, time.perf_counter() - start))


def review_score(uncertain_fraction: float, classes: tuple[ClassResult, ...]) -> float:
    """0 (confident) .. 1: max(10 x share of 255 pixels capped at 1, 1 - min over classes of predicted IoU x stability)."""
    worst = min((c.sam_iou * c.stability_score for c in classes), default=1.0)
    return float(min(1.0, max(10.0 * uncertain_fraction, 1.0 - worst)))


def confidence_bytes(confidence: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """0..1 confidences -> uint8 round(255 x q) (MASK_FORMAT_CONFIDENCE)."""
    return np.rint(np.clip(confidence, 0.0, 1.0) * 255.0).astype(np.uint8)


def instance_rles(
    instances: tuple[InstanceMask, ...], region: npt.NDArray[np.bool_], owner: npt.NDArray[np.generic] | None
) -> tuple[InstanceMask, ...]:
    """Each instance with the COCO RLE of its share of the class ``region``: the pixels where its
    logit is the class's highest (``owner``; all of the region for a single instance)."""
    if owner is None or len(instances) == 1:
        return tuple(replace(inst, rle=coco_rle(region) if i == 0 else coco_rle(np.zeros_like(region))) for i, inst in enumerate(instances))
    return tuple(replace(inst, rle=coco_rle(region & (owner == i))) for i, inst in enumerate(instances))


def encode_mask(label_map: np.ndarray, formats: frozenset[MaskFormat]) -> EncodedMask:
    """The label map in the requested formats (PNG when none is named; nothing for an empty set)."""
    h, w = label_map.shape
    want_png = MaskFormat.PNG in formats
    return EncodedMask(
        height=h,
        width=w,
        png=encode_png(label_map) if want_png else b"",
        raw=label_map.tobytes() if MaskFormat.RAW in formats else b"",
    )


class Segmenter:
    """Weak labels -> label map with the CAM classifier and the SAM-contract models.

    Without SAM (``encoder`` and ``decoder`` None) only boxes are served, by GrabCut.
    """

    def __init__(self, classifier: CamClassifier, encoder: ImageEncoder | None, decoder: SamDecoder | None, config: PipelineConfig,
                 cam_cache: CamCache | None = None) -> None:
        self.classifier = classifier
        self.cam_cache = cam_cache
        self.encoder = encoder
        self.decoder = decoder
        self.config = config

    @property
    def classes(self) -> tuple[str, ...]:
        return self.classifier.classes

    def model_versions(self) -> dict[str, str]:
        models = [m for m in (self.classifier, self.encoder, self.decoder) if m is not None]
        return {m.name.partition("@")[0]: m.version for m in models}  # "cam_classifier@2" is version 2 of cam_classifier

    def segment(self, request: SegmentInput, should_stop: Callable[[], bool] | None = None) -> SegmentResult:
        """Run the pipeline on one decoded request.

        Args:
            request: image uint8 [H, W, 3], weak labels, options, optional ground truth.
            should_stop: polled between stages; when it returns True the work stops with Cancelled.

        Raises:
            InvalidInput, NotImplementedFeature, Cancelled.
        """
        cfg = self.config
        opts = request.options
        h, w = request.image.shape[:2]
        frame = self.check_budget(h, w)
        timer = Timer(should_stop)
        with timer.stage("weak_labels"):
            resolved = frame.labels_to_work(weak_labels.resolve(request.labels, self.classes, h, w, cfg.max_prompts))
            if request.ground_truth is not None and request.ground_truth.shape != (h, w):
                raise InvalidInput(f"ground_truth is {request.ground_truth.shape[1]}x{request.ground_truth.shape[0]} but the image is {w}x{h}")
            image = frame.image_to_work(request.image)
            work_shape = (frame.work_height, frame.work_width)
            pixels = pixel_key(image) if self.cam_cache is not None and self.cam_cache.max_bytes > 0 else None  # both caches' key, hashed once
        with timer.stage("cam"):
            if self.cam_cache is not None:  # a later round on the same image skips the classifier
                cams = self.cam_cache.cams(self.classifier, image, cfg.cam_scales, cfg.cam_flip, pixels)
            else:
                cams = cam.multiscale_cams(self.classifier, image, cfg.cam_scales, cfg.cam_flip)
        if request.labels.empty:
            threshold = cfg.label_threshold if opts.label_threshold is None else opts.label_threshold
            tagged = tuple(int(i) + 1 for i in np.flatnonzero(cams.probabilities > threshold))
            source = LabelsSource.CLASSIFIER
        else:
            tagged = resolved.class_ids
            source = LabelsSource.REQUEST
        if self.walks and cams.features is not None and tagged:
            with timer.stage("cam_walk"):  # the prompted classes' CAMs spread over their look-alike pixels
                if self.cam_cache is not None:  # a later round with the same classes skips the walk
                    cams = self.cam_cache.walked(self.classifier, cams, tagged, cfg.cam_walk_beta, cfg.cam_walk_steps, cfg.cam_scales,
                                                 cfg.cam_flip, pixels)
                else:
                    cams = cam_random_walk.walk_classes(cams, tagged, cfg.cam_walk_beta, cfg.cam_walk_steps)
        with timer.stage("prompts"):
            tau = cfg.peak_threshold if opts.peak_threshold is None else opts.peak_threshold
            sets = prompts.prompt_sets(
                resolved, tagged, cams.cams, tau, cfg.peak_min_distance, cfg.max_peaks_per_class, instance_per_peak=opts.instance_per_peak
            )
        class_ids = tuple(sorted({s.class_id for s in sets}))
        masks = []
        if sets and (self.encoder is None or self.decoder is None):
            with timer.stage("grabcut"):
                masks = grabcut.class_masks(image, sets)
        elif sets and self.encoder is not None and self.decoder is not None:
            with timer.stage("sam_encoder"):
                embedding = self.encoder.embed(image, pixels)
            with timer.stage("sam_decoder"):
                masks = sam_masks.class_masks(self.decoder, embedding, sets, cfg.sam_mask_index)
            if resolved.scribbles:
                with timer.stage("scribbles"):
                    masks = scribbles.fuse(image, masks, resolved.scribbles, cams.features, should_stop)
        with timer.stage("aggregation"):
            if opts.confidence_threshold is not None:
                conf_threshold = opts.confidence_threshold
            elif opts.confidence_score is ConfidenceScore.LOGIT_X_CAM:
                conf_threshold = cfg.confidence_threshold
            else:
                conf_threshold = cfg.stability_confidence_threshold
            merged = aggregation.aggregate(masks, cams.cams, opts.confidence_score, conf_threshold, work_shape)
            if cfg.stuff_agreement > 0.0 and any(m.uses_cam for m in masks):
                cam_tagged = tuple(sorted({m.class_id for m in masks if m.uses_cam}))
                filled, _ = aggregation.fill_stuff(merged.label_map, masks, cams.cams, cam_tagged, cfg.stuff_agreement, cfg.stuff_cam_threshold)
                merged = aggregation.Aggregated(filled, merged.confidence, merged.cam_in_mask)
        with timer.stage("refinement"):
            probs = None
            if opts.refinement is Refinement.CRF:
                probs = refinement.class_probabilities({m.class_id: m.logits for m in masks}, work_shape, len(self.classes))
            work_map = refinement.refine(merged.label_map, image, opts.refinement, probs, should_stop)
        with timer.stage("encode"):
            label_map = frame.label_map_to_original(work_map)
            formats = frozenset() if opts.omit_mask else opts.mask_formats
            encoded = encode_mask(label_map, formats)
            if MaskFormat.CONFIDENCE in formats:
                confidence = aggregation.label_confidence(work_map, masks, cams.cams, merged.cam_in_mask)
                encoded = replace(encoded, confidence=encode_png(confidence_bytes(frame.map_to_original(confidence, nearest=False))))
            by_class = {m.class_id: m for m in masks}
            results = []
            for k in class_ids:
                region = label_map == k
                area = int(np.count_nonzero(region))
                work_region = region if frame.identity else work_map == k
                m = by_class[k]
                instances = frame.instances_to_original(m.instances)
                if MaskFormat.COCO_RLE in formats:
                    instances = instance_rles(instances, region, None if m.owner is None else frame.map_to_original(m.owner, nearest=True))
                results.append(
                    ClassResult(
                        class_id=k,
                        class_name=self.classes[k - 1],
                        area=area,
                        confidence=float(merged.confidence[work_region].mean()) if work_region.any() else 0.0,
                        cam_score=merged.cam_in_mask.get(k, 0.0),
                        sam_iou=m.iou_prediction,
                        stability_score=m.stability,
                        classifier_probability=float(cams.probabilities[k - 1]),
                        prompts=frame.prompts_to_original(m.prompts),
                        rle=coco_rle(region) if MaskFormat.COCO_RLE in formats else None,
                        instances=instances,
                        low_res_logits=m.low_res_logits if opts.return_low_res_logits else None,
                    )
                )
        metrics = None
        if request.ground_truth is not None:
            with timer.stage("evaluation"):
                metrics = evaluation.quality_metrics(label_map, request.ground_truth, len(self.classes))
        uncertain = float(np.count_nonzero(label_map == IGNORE)) / label_map.size
        return SegmentResult(
            label_map=label_map,
            mask=encoded,
            classes=tuple(results),
            labels_source=source,
            metrics=metrics,
            timings=tuple(timer.timings),
            model_versions=self.model_versions(),
            uncertain_fraction=uncertain,
            review_score=review_score(uncertain, tuple(results)),
        )

    @property
    def can_walk(self) -> bool:
        """Whether the CAM random walk can run: it needs the classifier's features, which come from the scale-1 run."""
        return self.classifier.has_features and 1.0 in self.config.cam_scales

    @property
    def walks(self) -> bool:
        """Whether tagged classes' CAMs take the random walk (switched on, and ``can_walk``)."""
        return self.config.cam_walk_steps > 0 and self.can_walk

    def image_bytes(self, height: int, width: int) -> int:
        """Estimated working memory that grows with a ``height`` x ``width`` image, in bytes: what
        ``max_request_bytes`` caps (a smaller image needs less)."""
        frame = WorkFrame.of(height, width, self.config.max_work_side)
        cells = cam_random_walk.feature_cells(frame.work_height, frame.work_width, self.classifier.feature_stride) if self.walks else 0
        return estimate_bytes(frame, len(self.classes), max(self.config.cam_scales, default=1.0), cells)

    def working_bytes(self, height: int, width: int) -> int:
        """Estimated working memory of a request with a ``height`` x ``width`` image, in bytes (what
        the server's memory budget admits requests by): ``image_bytes`` and one run of SAM's encoder
        (``run_bytes``: the same for every image; counted on an embedding-cache hit too)."""
        return self.image_bytes(height, width) + (self.encoder.run_bytes if self.encoder is not None else 0)

    def check_budget(self, height: int, width: int) -> WorkFrame:
        """The working frame of a ``height`` x ``width`` image, if its ``image_bytes`` fit ``max_request_bytes``.

        Raises:
            Overloaded: the estimate exceeds ``max_request_bytes`` (RESOURCE_EXHAUSTED).
        """
        frame = WorkFrame.of(height, width, self.config.max_work_side)
        refuse_over_budget(frame, self.image_bytes(height, width), self.config.max_request_bytes)
        return frame

    def warmup(self) -> None:
        """One inference of each model."""
        self.classifier.warmup()
        if self.encoder is not None and self.decoder is not None:
            self.decoder.warmup(self.encoder.warmup())  # the encoder itself runs, whatever the caches hold
