"""Protobuf <-> pipeline values. The only module besides the servicer that knows the proto types."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from service.errors import InvalidInput
from service.pipeline import image as image_stage
from service.pipeline import types as t
from service.pipeline.encoding import compress_counts
from service.pipeline.everything import EverythingOptions, EverythingResult
from service.runtime.backend import LoadedModel
from wsss.v1 import segmentation_pb2 as pb

E = TypeVar("E")

_MASK_FORMATS: dict[int, t.MaskFormat] = {
    pb.MASK_FORMAT_UNSPECIFIED: t.MaskFormat.PNG,
    pb.MASK_FORMAT_PNG: t.MaskFormat.PNG,
    pb.MASK_FORMAT_COCO_RLE: t.MaskFormat.COCO_RLE,
    pb.MASK_FORMAT_RAW: t.MaskFormat.RAW,
    pb.MASK_FORMAT_CONFIDENCE: t.MaskFormat.CONFIDENCE,
}
_SCORES: dict[int, t.ConfidenceScore] = {
    pb.CONFIDENCE_SCORE_UNSPECIFIED: t.ConfidenceScore.LOGIT_X_CAM,
    pb.CONFIDENCE_SCORE_LOGIT_X_CAM: t.ConfidenceScore.LOGIT_X_CAM,
    pb.CONFIDENCE_SCORE_STABILITY_X_CAM: t.ConfidenceScore.STABILITY_X_CAM,
}
_REFINEMENTS: dict[int, t.Refinement] = {
    pb.REFINEMENT_UNSPECIFIED: t.Refinement.NONE,
    pb.REFINEMENT_NONE: t.Refinement.NONE,
    pb.REFINEMENT_CRF: t.Refinement.CRF,
    pb.REFINEMENT_SUPERPIXEL: t.Refinement.SUPERPIXEL,
}
_LABELS_SOURCE = {t.LabelsSource.REQUEST: pb.LABELS_SOURCE_REQUEST, t.LabelsSource.CLASSIFIER: pb.LABELS_SOURCE_CLASSIFIER}


def _enum(value: int, table: Mapping[int, E], field: str) -> E:
    try:
        return table[value]
    except KeyError:
        raise InvalidInput(f"{field}: unknown value {value}") from None


def mask_formats(values: Iterable[int]) -> frozenset[t.MaskFormat]:
    """Requested mask formats (PNG when none is named)."""
    formats = frozenset(_enum(v, _MASK_FORMATS, "mask_formats") for v in values)
    return formats or frozenset({t.MaskFormat.PNG})


def decode_image(
    msg: pb.Image, max_pixels: int, max_side: int, field: str = "image", check: image_stage.SizeCheck | None = None
) -> npt.NDArray[np.uint8]:
    """``Image`` message -> uint8 [H, W, 3] RGB; ``check`` sees the size before any pixel is decoded."""
    kind = msg.WhichOneof("source")
    try:
        if kind == "encoded":
            return image_stage.decode_image(msg.encoded, max_pixels, max_side, check)
        if kind == "raw":
            r = msg.raw
            return image_stage.raw_image(r.data, r.height, r.width, r.channels, max_pixels, max_side, check)
    except InvalidInput as exc:
        raise InvalidInput(f"{field}: {exc}") from None
    raise InvalidInput(f"{field} is required: set {field}.encoded (PNG/JPEG/TIFF/BMP bytes) or {field}.raw")


def declared_size(msg: pb.Image) -> tuple[int, int] | None:
    """(height, width) an ``Image`` message declares, read without decoding pixels; None if unknown."""
    kind = msg.WhichOneof("source")
    if kind == "raw":
        return msg.raw.height, msg.raw.width
    if kind == "encoded":
        return image_stage.declared_size(msg.encoded)
    return None


def _optional(opts: pb.SegmentOptions, name: str, lo: float, hi: float) -> float | None:
    if not opts.HasField(name):  # type: ignore[arg-type]
        return None
    value = float(getattr(opts, name))
    if not (math.isfinite(value) and lo <= value <= hi):
        raise InvalidInput(f"options.{name} must be a number in [{lo}, {hi}], got {value}")
    return value


def segment_options(opts: pb.SegmentOptions) -> t.SegmentOptions:
    return t.SegmentOptions(
        mask_formats=mask_formats(opts.mask_formats),
        confidence_score=_enum(opts.confidence_score, _SCORES, "options.confidence_score"),
        refinement=_enum(opts.refinement, _REFINEMENTS, "options.refinement"),
        peak_threshold=_optional(opts, "peak_threshold", 0.0, 1.0),
        confidence_threshold=_optional(opts, "confidence_threshold", -1e6, 1e6),
        label_threshold=_optional(opts, "label_threshold", 0.0, 1.0),
        omit_mask=opts.omit_mask,
        return_low_res_logits=opts.return_low_res_logits,
        instance_per_peak=opts.instance_per_peak,
    )


LOW_RES_BYTES = 256 * 256 * 4


def _mask_input(i: int, m: pb.MaskInput) -> t.MaskInput:
    if len(m.low_res_logits) != LOW_RES_BYTES:
        raise InvalidInput(f"labels.mask_inputs[{i}]: low_res_logits must be 256x256 float32 = {LOW_RES_BYTES} bytes, got {len(m.low_res_logits)}")
    return t.MaskInput(m.label, np.frombuffer(m.low_res_logits, "<f4").reshape(256, 256).astype(np.float32))


def weak_labels(msg: pb.WeakLabels) -> t.WeakLabels:
    return t.WeakLabels(
        image_labels=tuple(msg.image_labels),
        boxes=tuple(t.Box(b.label, b.x0, b.y0, b.x1, b.y1) for b in msg.boxes),
        points=tuple(t.Click(p.label, p.x, p.y, p.negative) for p in msg.points),
        scribbles=tuple(t.Scribble(s.label, tuple((p.x, p.y) for p in s.points), s.width or 3.0) for s in msg.scribbles),
        mask_inputs=tuple(_mask_input(i, m) for i, m in enumerate(msg.mask_inputs)),
    )


def segment_input(
    req: pb.SegmentRequest, num_classes: int, max_pixels: int, max_side: int, check: image_stage.SizeCheck | None = None
) -> t.SegmentInput:
    """``SegmentRequest`` -> decoded pipeline input (image decoded, ground truth checked)."""
    image = decode_image(req.image, max_pixels, max_side, check=check)
    gt = None
    if req.HasField("ground_truth"):
        g = req.ground_truth
        kind = g.WhichOneof("source")
        try:
            if kind == "encoded":
                gt = image_stage.decode_label_map(g.encoded, None, image.shape[:2], num_classes, max_pixels, max_side)
            elif kind == "raw":
                raw = (g.raw.data, g.raw.height, g.raw.width, g.raw.channels)
                gt = image_stage.decode_label_map(None, raw, image.shape[:2], num_classes, max_pixels, max_side)
        except InvalidInput as exc:
            raise InvalidInput(f"ground_truth: {exc}") from None
    return t.SegmentInput(image=image, labels=weak_labels(req.labels), options=segment_options(req.options), ground_truth=gt)


def _rle(rle: dict[str, object] | None) -> pb.CocoRle | None:
    if rle is None:
        return None
    return pb.CocoRle(size=rle["size"], counts=rle["counts"])  # type: ignore[arg-type]


def _prompts(prompts: tuple[t.Prompt, ...]) -> list[pb.PromptPoint]:
    return [pb.PromptPoint(x=p.x, y=p.y, label=p.label, source=p.source) for p in prompts]


def _mask(m: t.EncodedMask) -> pb.MaskOutput:
    return pb.MaskOutput(height=m.height, width=m.width, png=m.png, raw=m.raw, confidence=m.confidence)


def _timings(timings: tuple[tuple[str, float], ...]) -> list[pb.StageTiming]:
    return [pb.StageTiming(stage=s, seconds=sec) for s, sec in timings]


def segment_response(request_id: str, result: t.SegmentResult, classes: tuple[str, ...]) -> pb.SegmentResponse:
    resp = pb.SegmentResponse(
        id=request_id,
        mask=_mask(result.mask),
        timings=_timings(result.timings),
        model_versions=result.model_versions,
        labels_source=_LABELS_SOURCE[result.labels_source],
        uncertain_fraction=result.uncertain_fraction,
        review_score=result.review_score,
    )
    for c in result.classes:
        resp.classes.append(
            pb.ClassResult(
                class_id=c.class_id,
                class_name=c.class_name,
                area=c.area,
                confidence=c.confidence,
                cam_score=c.cam_score,
                sam_iou=c.sam_iou,
                stability_score=c.stability_score,
                classifier_probability=c.classifier_probability,
                prompts=_prompts(c.prompts),
                rle=_rle(c.rle),
                instances=[
                    pb.InstanceResult(
                        kind=i.kind, sam_iou=i.iou_prediction, stability_score=i.stability, area=i.area, prompts=_prompts(i.prompts), rle=_rle(i.rle)
                    )
                    for i in c.instances
                ],
                low_res_logits=b"" if c.low_res_logits is None else c.low_res_logits.astype("<f4").tobytes(),
            )
        )
    if result.metrics is not None:
        names = ("background",) + classes
        resp.metrics.CopyFrom(
            pb.QualityMetrics(
                miou=result.metrics.miou,
                pixel_accuracy=result.metrics.pixel_accuracy,
                per_class=[pb.ClassIoU(class_id=k, class_name=names[k], iou=v) for k, v in sorted(result.metrics.per_class.items())],
            )
        )
    return resp


def predict_response(request_id: str, result: t.PredictResult) -> pb.PredictResponse:
    return pb.PredictResponse(
        id=request_id,
        mask=_mask(result.mask),
        classes=[
            pb.PredictedClass(class_id=c.class_id, class_name=c.class_name, area=c.area, mean_confidence=c.mean_confidence, rle=_rle(c.rle))
            for c in result.classes
        ],
        timings=_timings(result.timings),
        model_version=result.model_version,
    )


def model_info(m: LoadedModel) -> pb.ModelInfo:
    return pb.ModelInfo(
        name=m.name,
        version=m.version,
        backend=m.backend,
        device=m.device,
        provider=m.provider,
        classes=list(m.labels),
        inputs=[pb.TensorInfo(name=s.name, dtype=s.dtype, shape=list(s.shape)) for s in m.inputs],
        outputs=[pb.TensorInfo(name=s.name, dtype=s.dtype, shape=list(s.shape)) for s in m.outputs],
    )


def everything_options(opts: pb.EverythingOptions, defaults: EverythingOptions) -> EverythingOptions:
    """The request's options over ``defaults`` (an unset or zero field keeps the default), validated."""
    given: dict[str, float | int] = {}
    for name in ("points_per_side", "points_per_batch", "min_mask_region_area", "max_masks"):
        if getattr(opts, name):
            given[name] = int(getattr(opts, name))
    for name in ("pred_iou_thresh", "stability_score_thresh", "stability_score_offset", "box_nms_thresh"):
        if opts.HasField(name):  # type: ignore[arg-type]
            value = float(getattr(opts, name))
            if not math.isfinite(value):
                raise InvalidInput(f"options.{name} must be a finite number, got {value}")
            given[name] = value
    try:
        return replace(defaults, **given).validated()  # type: ignore[arg-type]
    except InvalidInput as exc:
        raise InvalidInput(f"options.{exc}") from None


def everything_response(request_id: str, result: EverythingResult) -> pb.SegmentEverythingResponse:
    return pb.SegmentEverythingResponse(
        id=request_id,
        proposals=[
            pb.Proposal(
                rle=pb.CocoRle(size=[p.height, p.width], counts=compress_counts(p.counts)),
                bbox=list(p.box),
                area=p.area,
                predicted_iou=p.predicted_iou,
                stability_score=p.stability_score,
                point=pb.Point(x=p.point[0], y=p.point[1]),
            )
            for p in result.proposals
        ],
        points=result.points,
        timings=_timings(result.timings),
        model_versions=result.model_versions,
    )
