"""Plain values passed between the pipeline's stages and to its callers (no protobuf here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import numpy.typing as npt

IGNORE = 255
"""Label-map value of pixels that are not confident (prediction) or to ignore (ground truth)."""


class MaskFormat(Enum):
    PNG = "png"
    COCO_RLE = "coco_rle"
    RAW = "raw"
    CONFIDENCE = "confidence"


class ConfidenceScore(Enum):
    LOGIT_X_CAM = "logit_x_cam"
    """S2C reference code: SAM mask logit at the pixel x mean normalised CAM inside the mask."""
    STABILITY_X_CAM = "stability_x_cam"
    """S2C paper: stability score of the mask x normalised CAM at the pixel."""


class Refinement(Enum):
    NONE = "none"
    CRF = "crf"
    SUPERPIXEL = "superpixel"


class LabelsSource(Enum):
    REQUEST = "request"
    CLASSIFIER = "classifier"


@dataclass(frozen=True)
class Box:
    """A box of class ``label``: x0 < x1, y0 < y1, in original image pixels."""

    label: str
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class Click:
    """A click at (x, y) pixels on class ``label``; ``negative`` = not this class."""

    label: str
    x: float
    y: float
    negative: bool = False


@dataclass(frozen=True)
class Scribble:
    """A polyline [(x, y), ...] in pixels over class ``label``, ``width`` pixels wide."""

    label: str
    points: tuple[tuple[float, float], ...]
    width: float = 3.0


@dataclass(frozen=True)
class MaskInput:
    """A previous round's low-res logits float32 [256, 256] for class ``label``."""

    label: str
    low_res_logits: npt.NDArray[np.float32]


@dataclass(frozen=True)
class WeakLabels:
    """The cheap labels of one image."""

    image_labels: tuple[str, ...] = ()
    boxes: tuple[Box, ...] = ()
    points: tuple[Click, ...] = ()
    scribbles: tuple[Scribble, ...] = ()
    mask_inputs: tuple[MaskInput, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.image_labels or self.boxes or self.points or self.scribbles or self.mask_inputs)


@dataclass(frozen=True)
class SegmentOptions:
    """Per-request options; None means the server default."""

    mask_formats: frozenset[MaskFormat] = frozenset({MaskFormat.PNG})
    confidence_score: ConfidenceScore = ConfidenceScore.LOGIT_X_CAM
    refinement: Refinement = Refinement.NONE
    peak_threshold: float | None = None
    confidence_threshold: float | None = None
    label_threshold: float | None = None
    omit_mask: bool = False
    return_low_res_logits: bool = False
    instance_per_peak: bool = False


@dataclass(frozen=True)
class SegmentInput:
    """One Segment request, decoded.

    Attributes:
        image: uint8 [H, W, 3] RGB.
        labels: the weak labels.
        options: per-request options.
        ground_truth: optional uint8 [H, W] label map (0..C, 255 ignore).
    """

    image: npt.NDArray[np.uint8]
    labels: WeakLabels = field(default_factory=WeakLabels)
    options: SegmentOptions = field(default_factory=SegmentOptions)
    ground_truth: npt.NDArray[np.uint8] | None = None


@dataclass(frozen=True)
class Prompt:
    """A prompt point given to the mask model, in original pixels; ``label`` as SAM's (1, 0, 2, 3)."""

    x: float
    y: float
    label: int
    source: str


@dataclass(frozen=True)
class InstanceMask:
    """One decoder call's mask (one box, or one class's peaks and clicks).

    Attributes:
        kind: ``cam``, ``box`` or ``click`` (see ``prompts.PromptSet``).
        prompts: the prompts of the call.
        iou_prediction: the model's predicted IoU.
        stability: |logits > 1| / |logits > -1|.
        area: pixels with logit > 0.
        rle: with MaskFormat.COCO_RLE in a result, the instance's share of its class's pixels in
            the final label map (COCO compressed RLE).
    """

    kind: str
    prompts: tuple[Prompt, ...]
    iou_prediction: float
    stability: float
    area: int
    rle: dict[str, object] | None = None


@dataclass(frozen=True)
class ClassMask:
    """The mask model's answer for one class (output of the SAM stage): its instances merged.

    Attributes:
        class_id: 1..C.
        logits: float32 [H, W] mask logits on the original image (max over the instances).
        iou_prediction: mean predicted IoU of the instances.
        stability: |logits > 1| / |logits > -1| of the merged logits.
        prompts: every prompt used for the class.
        instances: the decoder calls merged into this mask.
        uses_cam: whether the class's CAM weighs its confidence (tagged or predicted class).
        owner: with several instances, uint16 [H, W]: per pixel the index of the instance of highest
            logit (None: every pixel belongs to instance 0).
    """

    class_id: int
    logits: npt.NDArray[np.float32]
    iou_prediction: float
    stability: float
    prompts: tuple[Prompt, ...]
    instances: tuple[InstanceMask, ...] = ()
    uses_cam: bool = True
    low_res_logits: npt.NDArray[np.float32] | None = None
    owner: npt.NDArray[np.uint16] | None = None


@dataclass(frozen=True)
class ClassResult:
    """Per-class summary of a Segment result."""

    class_id: int
    class_name: str
    area: int
    confidence: float
    cam_score: float
    sam_iou: float
    stability_score: float
    classifier_probability: float
    prompts: tuple[Prompt, ...]
    rle: dict[str, object] | None = None
    instances: tuple[InstanceMask, ...] = ()
    low_res_logits: npt.NDArray[np.float32] | None = None


@dataclass(frozen=True)
class QualityMetrics:
    """Against a ground truth: per-class IoU (class id -> IoU), mIoU, pixel accuracy."""

    miou: float
    pixel_accuracy: float
    per_class: dict[int, float]


@dataclass(frozen=True)
class EncodedMask:
    """The label map in the formats asked for."""

    height: int
    width: int
    png: bytes = b""
    raw: bytes = b""
    confidence: bytes = b""


@dataclass(frozen=True)
class SegmentResult:
    """Everything Segment returns.

    Attributes:
        label_map: uint8 [H, W] (0 background, 1..C, 255 not confident).
        mask: the label map encoded as asked.
        classes: per-class results, in class-id order.
        labels_source: whether the classes came from the request or the classifier.
        metrics: quality metrics when a ground truth was given.
        timings: (stage, seconds) in execution order.
        model_versions: model name -> version.
        uncertain_fraction: share of pixels at 255.
        review_score: 0 (confident) .. 1 (needs a human look); see ``segment.review_score``.
    """

    label_map: npt.NDArray[np.uint8]
    mask: EncodedMask
    classes: tuple[ClassResult, ...]
    labels_source: LabelsSource
    metrics: QualityMetrics | None
    timings: tuple[tuple[str, float], ...]
    model_versions: dict[str, str]
    uncertain_fraction: float
    review_score: float


@dataclass(frozen=True)
class PredictedClass:
    class_id: int
    class_name: str
    area: int
    mean_confidence: float
    rle: dict[str, object] | None = None


@dataclass(frozen=True)
class PredictResult:
    label_map: npt.NDArray[np.uint8]
    mask: EncodedMask
    classes: tuple[PredictedClass, ...]
    timings: tuple[tuple[str, float], ...]
    model_version: str
