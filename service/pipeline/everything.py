"""Segment everything: class-agnostic mask proposals from a grid of point prompts, as
segment-anything's ``SamAutomaticMaskGenerator`` makes them (one crop layer, the whole image).

image -> embedding (once) -> n x n grid of single positive points, decoded ``points_per_batch``
at a time -> per mask: predicted-IoU filter, stability filter (on the logits upsampled to the
image), binarise, box -> box NMS over all -> optional small-region cleanup (holes, then islands;
masks it changed rank last, NMS again). Plain values in and out; no server needed. Also the SE map
of S2C's segment contrasting (``se_map``: the smallest segment wins where segments overlap).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.errors import Cancelled, InvalidInput
from service.models.imageops import resize_maps
from service.models.sam import ImageEmbedding, ImageEncoder, SamDecoder
from service.pipeline.amg_filters import box_nms, mask_boxes, point_grid, remove_small_regions, stability_scores
from service.pipeline.encoding import mask_from_counts, rle_counts
from service.pipeline.work_frame import WorkFrame, refuse_over_budget

MULTIMASK = (1, 2, 3)
"""Indices of the three multimask outputs of a 4-mask decoder (index 0 is the single-mask output);
the automatic generator uses these, as ``multimask_output=True`` does."""
MAX_POINTS_PER_SIDE = 64
MAX_POINTS_PER_BATCH = 256


@dataclass(frozen=True)
class EverythingOptions:
    """``SamAutomaticMaskGenerator``'s settings (same names and defaults, but ``points_per_batch``
    16 instead of 64: each prompt of a batch holds 4 masks upsampled to 1024 x 1024 inside the
    official decoder graph where it runs whole, as on a Triton server, 17 MiB, so 64 would take over
    1 GiB; in process the graph runs without them, ``service/runtime/onnx_prune.py``) plus ``max_masks``."""

    points_per_side: int = 32
    points_per_batch: int = 16
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    min_mask_region_area: int = 0
    max_masks: int = 0
    """Keep at most this many proposals, best predicted IoU first (0: all)."""

    def validated(self) -> EverythingOptions:
        """These options, or InvalidInput naming the first bad one."""
        checks = [
            (
                1 <= self.points_per_side <= MAX_POINTS_PER_SIDE,
                f"points_per_side must be 1..{MAX_POINTS_PER_SIDE}, not {self.points_per_side}",
            ),
            (
                1 <= self.points_per_batch <= MAX_POINTS_PER_BATCH,
                f"points_per_batch must be 1..{MAX_POINTS_PER_BATCH}, not {self.points_per_batch}",
            ),
            (0.0 <= self.pred_iou_thresh <= 1.0, f"pred_iou_thresh must be 0..1, not {self.pred_iou_thresh}"),
            (0.0 <= self.stability_score_thresh <= 1.0, f"stability_score_thresh must be 0..1, not {self.stability_score_thresh}"),
            (0.0 < self.stability_score_offset <= 100.0, f"stability_score_offset must be in (0, 100], not {self.stability_score_offset}"),
            (0.0 <= self.box_nms_thresh <= 1.0, f"box_nms_thresh must be 0..1, not {self.box_nms_thresh}"),
            (self.min_mask_region_area >= 0, f"min_mask_region_area must be >= 0, not {self.min_mask_region_area}"),
            (self.max_masks >= 0, f"max_masks must be >= 0, not {self.max_masks}"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidInput(message)
        return self


@dataclass(frozen=True)
class Proposal:
    """One class-agnostic mask, in original image pixels.

    Attributes:
        counts: uncompressed COCO run lengths (column-major, zeros first) of the [H, W] mask.
        box: (x, y, w, h), COCO's bbox convention (from the inclusive XYXY box: w = x1 - x0).
        area: mask pixels.
        predicted_iou, stability_score: the decoder's IoU prediction and the mask's stability.
        point: the (x, y) grid point that prompted it.
    """

    counts: tuple[int, ...]
    height: int
    width: int
    box: tuple[float, float, float, float]
    area: int
    predicted_iou: float
    stability_score: float
    point: tuple[float, float]

    def mask(self) -> npt.NDArray[np.bool_]:
        """The binary [H, W] mask."""
        return mask_from_counts(self.counts, self.height, self.width)


@dataclass(frozen=True)
class EverythingResult:
    proposals: tuple[Proposal, ...]
    timings: tuple[tuple[str, float], ...]
    model_versions: dict[str, str]
    points: int
    """Grid points decoded."""


@dataclass
class Candidate:
    """A mask that passed the filters, kept until NMS: its pixels packed 8 to a byte (a 32 x 32
    grid keeps up to 3,072 of them at once; unpacked, that was 3 KiB a working pixel)."""

    packed: npt.NDArray[np.uint8]
    shape: tuple[int, int]
    box: npt.NDArray[np.float32]
    iou: float
    stability: float
    point: tuple[float, float]

    @classmethod
    def of(cls, mask: npt.NDArray[np.bool_], iou: float, stability: float, point: tuple[float, float]) -> Candidate:
        return cls(np.packbits(mask, axis=None), (mask.shape[0], mask.shape[1]), mask_boxes(mask[None])[0], iou, stability, point)

    @property
    def mask(self) -> npt.NDArray[np.bool_]:
        """bool [H, W] at the working size (unpacked: a new array each time)."""
        h, w = self.shape
        return np.unpackbits(self.packed, count=h * w).reshape(h, w).view(np.bool_)

    @mask.setter
    def mask(self, mask: npt.NDArray[np.bool_]) -> None:
        self.packed, self.shape = np.packbits(mask, axis=None), (mask.shape[0], mask.shape[1])
        self.box = mask_boxes(mask[None])[0]


def _check_stop(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("request cancelled or past its deadline during segment-everything")


def generate(
    decoder: SamDecoder,
    embedding: ImageEmbedding,
    options: EverythingOptions,
    should_stop: Callable[[], bool] | None = None,
) -> list[Candidate]:
    """The proposals of one embedded image, at the embedding's image size, best predicted IoU first."""
    geometry = embedding.geometry
    h, w = geometry.height, geometry.width
    points = point_grid(options.points_per_side) * np.array([w, h], np.float32)
    kept: list[Candidate] = []
    ones = np.ones(1, np.float32)
    for start in range(0, len(points), options.points_per_batch):
        _check_stop(should_stop)
        batch = points[start : start + options.points_per_batch]
        decoded = decoder.predict_many(embedding, [(p[None], ones) for p in batch])
        for point, out in zip(batch, decoded):
            indices = MULTIMASK if out.low_res_logits.shape[0] == 4 else range(out.low_res_logits.shape[0])
            for k in indices:
                # compared in float32, as torch compares a float32 tensor with a Python float
                iou = np.float32(out.iou_predictions[k])
                if options.pred_iou_thresh > 0.0 and not iou > np.float32(options.pred_iou_thresh):
                    continue
                logits = decoder.upsample(out.low_res_logits[k][None], geometry)
                stability = stability_scores(logits, 0.0, options.stability_score_offset)[0]
                if options.stability_score_thresh > 0.0 and not stability >= np.float32(options.stability_score_thresh):
                    continue
                kept.append(Candidate.of(logits[0] > 0.0, float(iou), float(stability), (float(point[0]), float(point[1]))))
    if not kept:
        return []
    keep = box_nms(np.stack([k.box for k in kept]), np.array([k.iou for k in kept], np.float32), options.box_nms_thresh)
    kept = [kept[i] for i in keep]
    if options.min_mask_region_area > 0:
        kept = _clean_small_regions(kept, options.min_mask_region_area, options.box_nms_thresh, should_stop)
    return kept


def _clean_small_regions(
    kept: list[Candidate], min_area: int, nms_thresh: float, should_stop: Callable[[], bool] | None
) -> list[Candidate]:
    """Holes then islands below ``min_area`` removed; unchanged masks rank before changed ones in a second NMS."""
    scores = []
    for item in kept:
        _check_stop(should_stop)
        mask, changed_holes = remove_small_regions(item.mask, min_area, "holes")
        mask, changed_islands = remove_small_regions(mask, min_area, "islands")
        changed = changed_holes or changed_islands
        if changed:
            item.mask = mask  # packs it and boxes it again
        scores.append(0.0 if changed else 1.0)
    keep = box_nms(np.stack([k.box for k in kept]), np.array(scores, np.float32), nms_thresh)
    return [kept[i] for i in keep]


def se_map(masks: list[npt.NDArray[np.bool_]], shape: tuple[int, int]) -> npt.NDArray[np.int32]:
    """S2C's segment map: int32 [H, W], 0 where no segment lies, else 1 + the index of the smallest
    segment covering the pixel (segments painted largest first, so smaller ones win)."""
    out = np.zeros(shape, np.int32)
    order = sorted(range(len(masks)), key=lambda i: -int(np.count_nonzero(masks[i])))
    for i in order:
        out[masks[i]] = i + 1
    return out


class EverythingGenerator:
    """``SegmentEverything``: an image -> class-agnostic proposals, with the service's working
    frame (images larger than ``max_work_side`` are processed downscaled; masks come back at
    the original size) and memory estimate."""

    BYTES_PER_WORK_PIXEL = 64
    """Image, SAM input and up to a batch of upsampled logits and kept masks, per working pixel
    (measured peak: see README's limits)."""

    def __init__(self, encoder: ImageEncoder, decoder: SamDecoder, max_work_side: int, max_request_bytes: int) -> None:
        self.encoder = encoder
        self.decoder = decoder
        self.max_work_side = max_work_side
        self.max_request_bytes = max_request_bytes

    def image_bytes(self, height: int, width: int, options: EverythingOptions | None = None) -> int:
        """Estimated working memory that grows with the image and the grid (what ``max_request_bytes``
        caps): per working pixel a fixed part and every kept mask (packed, one bit a pixel, at most 3
        per grid point: ``Candidate``), plus one decoder batch: per prompt 4 masks at 1024 x 1024 (the
        official graph's upsampling), 256 x 256 and the working size, float32. In process the
        decoder's graph runs cut to its low-res outputs, so this over-counts there (conservative)."""
        opts = options or EverythingOptions()
        frame = WorkFrame.of(height, width, self.max_work_side)
        work = frame.work_height * frame.work_width
        masks = 3 * opts.points_per_side**2 * -(-work // 8)
        batch = min(opts.points_per_batch, opts.points_per_side**2)
        return int(height * width * 4 + work * self.BYTES_PER_WORK_PIXEL + masks + batch * 4 * 4 * (1024 * 1024 + 256 * 256 + work))

    def working_bytes(self, height: int, width: int, options: EverythingOptions | None = None) -> int:
        """Estimated working memory of a request (what the server's memory budget admits requests
        by): ``image_bytes`` and one run of SAM's encoder (``run_bytes``, the same for every image)."""
        return self.image_bytes(height, width, options) + self.encoder.run_bytes

    def check_budget(self, height: int, width: int, options: EverythingOptions | None = None) -> WorkFrame:
        frame = WorkFrame.of(height, width, self.max_work_side)
        refuse_over_budget(frame, self.image_bytes(height, width, options), self.max_request_bytes,
                           "send a smaller image or fewer points_per_side")
        return frame

    def model_versions(self) -> dict[str, str]:
        return {self.encoder.name: self.encoder.version, self.decoder.name: self.decoder.version}

    def run(
        self, image: npt.NDArray[np.uint8], options: EverythingOptions | None = None, should_stop: Callable[[], bool] | None = None
    ) -> EverythingResult:
        """Proposals for ``image`` uint8 [H, W, 3], best predicted IoU first (after ``max_masks``)."""
        opts = (options or EverythingOptions()).validated()
        h, w = image.shape[:2]
        frame = self.check_budget(h, w, opts)
        timings: list[tuple[str, float]] = []
        t = time.perf_counter()
        _check_stop(should_stop)
        embedding = self.encoder.embed(frame.image_to_work(image))
        timings.append(("sam_encoder", time.perf_counter() - t))
        t = time.perf_counter()
        kept = generate(self.decoder, embedding, opts, should_stop)
        if opts.max_masks:
            kept = kept[: opts.max_masks]
        timings.append(("everything", time.perf_counter() - t))
        t = time.perf_counter()
        proposals = tuple(self._to_original(k, frame, h, w) for k in kept)
        timings.append(("encode", time.perf_counter() - t))
        return EverythingResult(proposals, tuple(timings), self.model_versions(), opts.points_per_side**2)

    @staticmethod
    def _to_original(item: Candidate, frame: WorkFrame, h: int, w: int) -> Proposal:
        mask = item.mask
        px, py = item.point
        if not frame.identity:
            mask = resize_maps(mask[None].astype(np.float32), h, w)[0] > 0.5
            px, py = px * w / frame.work_width, py * h / frame.work_height
        box = mask_boxes(mask[None])[0]
        return Proposal(
            counts=tuple(rle_counts(mask)),
            height=h,
            width=w,
            box=(float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])),
            area=int(np.count_nonzero(mask)),
            predicted_iou=item.iou,
            stability_score=item.stability,
            point=(px, py),
        )
