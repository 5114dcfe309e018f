from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MaskFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MASK_FORMAT_UNSPECIFIED: _ClassVar[MaskFormat]
    MASK_FORMAT_PNG: _ClassVar[MaskFormat]
    MASK_FORMAT_COCO_RLE: _ClassVar[MaskFormat]
    MASK_FORMAT_RAW: _ClassVar[MaskFormat]
    MASK_FORMAT_CONFIDENCE: _ClassVar[MaskFormat]

class ConfidenceScore(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONFIDENCE_SCORE_UNSPECIFIED: _ClassVar[ConfidenceScore]
    CONFIDENCE_SCORE_LOGIT_X_CAM: _ClassVar[ConfidenceScore]
    CONFIDENCE_SCORE_STABILITY_X_CAM: _ClassVar[ConfidenceScore]

class Refinement(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REFINEMENT_UNSPECIFIED: _ClassVar[Refinement]
    REFINEMENT_NONE: _ClassVar[Refinement]
    REFINEMENT_CRF: _ClassVar[Refinement]
    REFINEMENT_SUPERPIXEL: _ClassVar[Refinement]

class LabelsSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABELS_SOURCE_UNSPECIFIED: _ClassVar[LabelsSource]
    LABELS_SOURCE_REQUEST: _ClassVar[LabelsSource]
    LABELS_SOURCE_CLASSIFIER: _ClassVar[LabelsSource]
MASK_FORMAT_UNSPECIFIED: MaskFormat
MASK_FORMAT_PNG: MaskFormat
MASK_FORMAT_COCO_RLE: MaskFormat
MASK_FORMAT_RAW: MaskFormat
MASK_FORMAT_CONFIDENCE: MaskFormat
CONFIDENCE_SCORE_UNSPECIFIED: ConfidenceScore
CONFIDENCE_SCORE_LOGIT_X_CAM: ConfidenceScore
CONFIDENCE_SCORE_STABILITY_X_CAM: ConfidenceScore
REFINEMENT_UNSPECIFIED: Refinement
REFINEMENT_NONE: Refinement
REFINEMENT_CRF: Refinement
REFINEMENT_SUPERPIXEL: Refinement
LABELS_SOURCE_UNSPECIFIED: LabelsSource
LABELS_SOURCE_REQUEST: LabelsSource
LABELS_SOURCE_CLASSIFIER: LabelsSource

class Image(_message.Message):
    __slots__ = ("encoded", "raw")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    raw: RawImage
    def __init__(self, encoded: _Optional[bytes] = ..., raw: _Optional[_Union[RawImage, _Mapping]] = ...) -> None: ...

class RawImage(_message.Message):
    __slots__ = ("data", "height", "width", "channels")
    DATA_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    height: int
    width: int
    channels: int
    def __init__(self, data: _Optional[bytes] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., channels: _Optional[int] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class BoxLabel(_message.Message):
    __slots__ = ("label", "x0", "y0", "x1", "y1")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    X0_FIELD_NUMBER: _ClassVar[int]
    Y0_FIELD_NUMBER: _ClassVar[int]
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    label: str
    x0: float
    y0: float
    x1: float
    y1: float
    def __init__(self, label: _Optional[str] = ..., x0: _Optional[float] = ..., y0: _Optional[float] = ..., x1: _Optional[float] = ..., y1: _Optional[float] = ...) -> None: ...

class PointLabel(_message.Message):
    __slots__ = ("label", "x", "y", "negative")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    label: str
    x: float
    y: float
    negative: bool
    def __init__(self, label: _Optional[str] = ..., x: _Optional[float] = ..., y: _Optional[float] = ..., negative: _Optional[bool] = ...) -> None: ...

class ScribbleLabel(_message.Message):
    __slots__ = ("label", "points", "width")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    label: str
    points: _containers.RepeatedCompositeFieldContainer[Point]
    width: float
    def __init__(self, label: _Optional[str] = ..., points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., width: _Optional[float] = ...) -> None: ...

class MaskInput(_message.Message):
    __slots__ = ("label", "low_res_logits")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    LOW_RES_LOGITS_FIELD_NUMBER: _ClassVar[int]
    label: str
    low_res_logits: bytes
    def __init__(self, label: _Optional[str] = ..., low_res_logits: _Optional[bytes] = ...) -> None: ...

class WeakLabels(_message.Message):
    __slots__ = ("image_labels", "boxes", "points", "scribbles", "mask_inputs")
    IMAGE_LABELS_FIELD_NUMBER: _ClassVar[int]
    BOXES_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    SCRIBBLES_FIELD_NUMBER: _ClassVar[int]
    MASK_INPUTS_FIELD_NUMBER: _ClassVar[int]
    image_labels: _containers.RepeatedScalarFieldContainer[str]
    boxes: _containers.RepeatedCompositeFieldContainer[BoxLabel]
    points: _containers.RepeatedCompositeFieldContainer[PointLabel]
    scribbles: _containers.RepeatedCompositeFieldContainer[ScribbleLabel]
    mask_inputs: _containers.RepeatedCompositeFieldContainer[MaskInput]
    def __init__(self, image_labels: _Optional[_Iterable[str]] = ..., boxes: _Optional[_Iterable[_Union[BoxLabel, _Mapping]]] = ..., points: _Optional[_Iterable[_Union[PointLabel, _Mapping]]] = ..., scribbles: _Optional[_Iterable[_Union[ScribbleLabel, _Mapping]]] = ..., mask_inputs: _Optional[_Iterable[_Union[MaskInput, _Mapping]]] = ...) -> None: ...

class SegmentOptions(_message.Message):
    __slots__ = ("mask_formats", "confidence_score", "refinement", "peak_threshold", "confidence_threshold", "label_threshold", "omit_mask", "return_low_res_logits", "instance_per_peak")
    MASK_FORMATS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_SCORE_FIELD_NUMBER: _ClassVar[int]
    REFINEMENT_FIELD_NUMBER: _ClassVar[int]
    PEAK_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    LABEL_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    OMIT_MASK_FIELD_NUMBER: _ClassVar[int]
    RETURN_LOW_RES_LOGITS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_PER_PEAK_FIELD_NUMBER: _ClassVar[int]
    mask_formats: _containers.RepeatedScalarFieldContainer[MaskFormat]
    confidence_score: ConfidenceScore
    refinement: Refinement
    peak_threshold: float
    confidence_threshold: float
    label_threshold: float
    omit_mask: bool
    return_low_res_logits: bool
    instance_per_peak: bool
    def __init__(self, mask_formats: _Optional[_Iterable[_Union[MaskFormat, str]]] = ..., confidence_score: _Optional[_Union[ConfidenceScore, str]] = ..., refinement: _Optional[_Union[Refinement, str]] = ..., peak_threshold: _Optional[float] = ..., confidence_threshold: _Optional[float] = ..., label_threshold: _Optional[float] = ..., omit_mask: _Optional[bool] = ..., return_low_res_logits: _Optional[bool] = ..., instance_per_peak: _Optional[bool] = ...) -> None: ...

class SegmentRequest(_message.Message):
    __slots__ = ("id", "image", "labels", "options", "ground_truth", "model_set", "model_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    MODEL_SET_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    image: Image
    labels: WeakLabels
    options: SegmentOptions
    ground_truth: Image
    model_set: str
    model_version: str
    def __init__(self, id: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., labels: _Optional[_Union[WeakLabels, _Mapping]] = ..., options: _Optional[_Union[SegmentOptions, _Mapping]] = ..., ground_truth: _Optional[_Union[Image, _Mapping]] = ..., model_set: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class MaskOutput(_message.Message):
    __slots__ = ("height", "width", "png", "raw", "confidence")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    height: int
    width: int
    png: bytes
    raw: bytes
    confidence: bytes
    def __init__(self, height: _Optional[int] = ..., width: _Optional[int] = ..., png: _Optional[bytes] = ..., raw: _Optional[bytes] = ..., confidence: _Optional[bytes] = ...) -> None: ...

class CocoRle(_message.Message):
    __slots__ = ("size", "counts")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    size: _containers.RepeatedScalarFieldContainer[int]
    counts: str
    def __init__(self, size: _Optional[_Iterable[int]] = ..., counts: _Optional[str] = ...) -> None: ...

class PromptPoint(_message.Message):
    __slots__ = ("x", "y", "label", "source")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    label: int
    source: str
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., label: _Optional[int] = ..., source: _Optional[str] = ...) -> None: ...

class InstanceResult(_message.Message):
    __slots__ = ("kind", "sam_iou", "stability_score", "area", "prompts", "rle")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SAM_IOU_FIELD_NUMBER: _ClassVar[int]
    STABILITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    RLE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    sam_iou: float
    stability_score: float
    area: int
    prompts: _containers.RepeatedCompositeFieldContainer[PromptPoint]
    rle: CocoRle
    def __init__(self, kind: _Optional[str] = ..., sam_iou: _Optional[float] = ..., stability_score: _Optional[float] = ..., area: _Optional[int] = ..., prompts: _Optional[_Iterable[_Union[PromptPoint, _Mapping]]] = ..., rle: _Optional[_Union[CocoRle, _Mapping]] = ...) -> None: ...

class ClassResult(_message.Message):
    __slots__ = ("class_id", "class_name", "area", "confidence", "cam_score", "sam_iou", "stability_score", "classifier_probability", "prompts", "rle", "instances", "low_res_logits")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    CAM_SCORE_FIELD_NUMBER: _ClassVar[int]
    SAM_IOU_FIELD_NUMBER: _ClassVar[int]
    STABILITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    RLE_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    LOW_RES_LOGITS_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    class_name: str
    area: int
    confidence: float
    cam_score: float
    sam_iou: float
    stability_score: float
    classifier_probability: float
    prompts: _containers.RepeatedCompositeFieldContainer[PromptPoint]
    rle: CocoRle
    instances: _containers.RepeatedCompositeFieldContainer[InstanceResult]
    low_res_logits: bytes
    def __init__(self, class_id: _Optional[int] = ..., class_name: _Optional[str] = ..., area: _Optional[int] = ..., confidence: _Optional[float] = ..., cam_score: _Optional[float] = ..., sam_iou: _Optional[float] = ..., stability_score: _Optional[float] = ..., classifier_probability: _Optional[float] = ..., prompts: _Optional[_Iterable[_Union[PromptPoint, _Mapping]]] = ..., rle: _Optional[_Union[CocoRle, _Mapping]] = ..., instances: _Optional[_Iterable[_Union[InstanceResult, _Mapping]]] = ..., low_res_logits: _Optional[bytes] = ...) -> None: ...

class ClassIoU(_message.Message):
    __slots__ = ("class_id", "class_name", "iou")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    IOU_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    class_name: str
    iou: float
    def __init__(self, class_id: _Optional[int] = ..., class_name: _Optional[str] = ..., iou: _Optional[float] = ...) -> None: ...

class QualityMetrics(_message.Message):
    __slots__ = ("miou", "pixel_accuracy", "per_class")
    MIOU_FIELD_NUMBER: _ClassVar[int]
    PIXEL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    miou: float
    pixel_accuracy: float
    per_class: _containers.RepeatedCompositeFieldContainer[ClassIoU]
    def __init__(self, miou: _Optional[float] = ..., pixel_accuracy: _Optional[float] = ..., per_class: _Optional[_Iterable[_Union[ClassIoU, _Mapping]]] = ...) -> None: ...

class StageTiming(_message.Message):
    __slots__ = ("stage", "seconds")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    seconds: float
    def __init__(self, stage: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("code", "code_name", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    CODE_NAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    code_name: str
    message: str
    def __init__(self, code: _Optional[int] = ..., code_name: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class SegmentResponse(_message.Message):
    __slots__ = ("id", "mask", "classes", "metrics", "timings", "model_versions", "labels_source", "uncertain_fraction", "error", "review_score")
    class ModelVersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    LABELS_SOURCE_FIELD_NUMBER: _ClassVar[int]
    UNCERTAIN_FRACTION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REVIEW_SCORE_FIELD_NUMBER: _ClassVar[int]
    id: str
    mask: MaskOutput
    classes: _containers.RepeatedCompositeFieldContainer[ClassResult]
    metrics: QualityMetrics
    timings: _containers.RepeatedCompositeFieldContainer[StageTiming]
    model_versions: _containers.ScalarMap[str, str]
    labels_source: LabelsSource
    uncertain_fraction: float
    error: ItemError
    review_score: float
    def __init__(self, id: _Optional[str] = ..., mask: _Optional[_Union[MaskOutput, _Mapping]] = ..., classes: _Optional[_Iterable[_Union[ClassResult, _Mapping]]] = ..., metrics: _Optional[_Union[QualityMetrics, _Mapping]] = ..., timings: _Optional[_Iterable[_Union[StageTiming, _Mapping]]] = ..., model_versions: _Optional[_Mapping[str, str]] = ..., labels_source: _Optional[_Union[LabelsSource, str]] = ..., uncertain_fraction: _Optional[float] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ..., review_score: _Optional[float] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("id", "image", "mask_formats", "model_set", "model_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MASK_FORMATS_FIELD_NUMBER: _ClassVar[int]
    MODEL_SET_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    image: Image
    mask_formats: _containers.RepeatedScalarFieldContainer[MaskFormat]
    model_set: str
    model_version: str
    def __init__(self, id: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., mask_formats: _Optional[_Iterable[_Union[MaskFormat, str]]] = ..., model_set: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class PredictedClass(_message.Message):
    __slots__ = ("class_id", "class_name", "area", "mean_confidence", "rle")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    MEAN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    RLE_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    class_name: str
    area: int
    mean_confidence: float
    rle: CocoRle
    def __init__(self, class_id: _Optional[int] = ..., class_name: _Optional[str] = ..., area: _Optional[int] = ..., mean_confidence: _Optional[float] = ..., rle: _Optional[_Union[CocoRle, _Mapping]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("id", "mask", "classes", "timings", "model_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    mask: MaskOutput
    classes: _containers.RepeatedCompositeFieldContainer[PredictedClass]
    timings: _containers.RepeatedCompositeFieldContainer[StageTiming]
    model_version: str
    def __init__(self, id: _Optional[str] = ..., mask: _Optional[_Union[MaskOutput, _Mapping]] = ..., classes: _Optional[_Iterable[_Union[PredictedClass, _Mapping]]] = ..., timings: _Optional[_Iterable[_Union[StageTiming, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TensorInfo(_message.Message):
    __slots__ = ("name", "dtype", "shape")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "backend", "device", "provider", "classes", "inputs", "outputs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    backend: str
    device: str
    provider: str
    classes: _containers.RepeatedScalarFieldContainer[str]
    inputs: _containers.RepeatedCompositeFieldContainer[TensorInfo]
    outputs: _containers.RepeatedCompositeFieldContainer[TensorInfo]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., backend: _Optional[str] = ..., device: _Optional[str] = ..., provider: _Optional[str] = ..., classes: _Optional[_Iterable[str]] = ..., inputs: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "model_sets")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    MODEL_SETS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    model_sets: _containers.RepeatedCompositeFieldContainer[ModelSetInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., model_sets: _Optional[_Iterable[_Union[ModelSetInfo, _Mapping]]] = ...) -> None: ...

class ModelSetInfo(_message.Message):
    __slots__ = ("name", "classes", "models", "versions", "predict_scales", "predict_flip")
    class ModelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    PREDICT_SCALES_FIELD_NUMBER: _ClassVar[int]
    PREDICT_FLIP_FIELD_NUMBER: _ClassVar[int]
    name: str
    classes: _containers.RepeatedScalarFieldContainer[str]
    models: _containers.ScalarMap[str, str]
    versions: _containers.ScalarMap[str, str]
    predict_scales: _containers.RepeatedScalarFieldContainer[float]
    predict_flip: bool
    def __init__(self, name: _Optional[str] = ..., classes: _Optional[_Iterable[str]] = ..., models: _Optional[_Mapping[str, str]] = ..., versions: _Optional[_Mapping[str, str]] = ..., predict_scales: _Optional[_Iterable[float]] = ..., predict_flip: _Optional[bool] = ...) -> None: ...

class EverythingOptions(_message.Message):
    __slots__ = ("points_per_side", "points_per_batch", "pred_iou_thresh", "stability_score_thresh", "stability_score_offset", "box_nms_thresh", "min_mask_region_area", "max_masks")
    POINTS_PER_SIDE_FIELD_NUMBER: _ClassVar[int]
    POINTS_PER_BATCH_FIELD_NUMBER: _ClassVar[int]
    PRED_IOU_THRESH_FIELD_NUMBER: _ClassVar[int]
    STABILITY_SCORE_THRESH_FIELD_NUMBER: _ClassVar[int]
    STABILITY_SCORE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    BOX_NMS_THRESH_FIELD_NUMBER: _ClassVar[int]
    MIN_MASK_REGION_AREA_FIELD_NUMBER: _ClassVar[int]
    MAX_MASKS_FIELD_NUMBER: _ClassVar[int]
    points_per_side: int
    points_per_batch: int
    pred_iou_thresh: float
    stability_score_thresh: float
    stability_score_offset: float
    box_nms_thresh: float
    min_mask_region_area: int
    max_masks: int
    def __init__(self, points_per_side: _Optional[int] = ..., points_per_batch: _Optional[int] = ..., pred_iou_thresh: _Optional[float] = ..., stability_score_thresh: _Optional[float] = ..., stability_score_offset: _Optional[float] = ..., box_nms_thresh: _Optional[float] = ..., min_mask_region_area: _Optional[int] = ..., max_masks: _Optional[int] = ...) -> None: ...

class SegmentEverythingRequest(_message.Message):
    __slots__ = ("id", "image", "options", "model_set")
    ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_SET_FIELD_NUMBER: _ClassVar[int]
    id: str
    image: Image
    options: EverythingOptions
    model_set: str
    def __init__(self, id: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., options: _Optional[_Union[EverythingOptions, _Mapping]] = ..., model_set: _Optional[str] = ...) -> None: ...

class Proposal(_message.Message):
    __slots__ = ("rle", "bbox", "area", "predicted_iou", "stability_score", "point")
    RLE_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_IOU_FIELD_NUMBER: _ClassVar[int]
    STABILITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    rle: CocoRle
    bbox: _containers.RepeatedScalarFieldContainer[float]
    area: int
    predicted_iou: float
    stability_score: float
    point: Point
    def __init__(self, rle: _Optional[_Union[CocoRle, _Mapping]] = ..., bbox: _Optional[_Iterable[float]] = ..., area: _Optional[int] = ..., predicted_iou: _Optional[float] = ..., stability_score: _Optional[float] = ..., point: _Optional[_Union[Point, _Mapping]] = ...) -> None: ...

class SegmentEverythingResponse(_message.Message):
    __slots__ = ("id", "proposals", "points", "timings", "model_versions")
    class ModelVersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    id: str
    proposals: _containers.RepeatedCompositeFieldContainer[Proposal]
    points: int
    timings: _containers.RepeatedCompositeFieldContainer[StageTiming]
    model_versions: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., proposals: _Optional[_Iterable[_Union[Proposal, _Mapping]]] = ..., points: _Optional[int] = ..., timings: _Optional[_Iterable[_Union[StageTiming, _Mapping]]] = ..., model_versions: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RepositoryIndexRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RepositoryModel(_message.Message):
    __slots__ = ("name", "versions_on_disk", "version_served", "state", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_ON_DISK_FIELD_NUMBER: _ClassVar[int]
    VERSION_SERVED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    versions_on_disk: _containers.RepeatedScalarFieldContainer[str]
    version_served: str
    state: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., versions_on_disk: _Optional[_Iterable[str]] = ..., version_served: _Optional[str] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RepositoryIndexResponse(_message.Message):
    __slots__ = ("models", "model_control_mode")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    MODEL_CONTROL_MODE_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[RepositoryModel]
    model_control_mode: str
    def __init__(self, models: _Optional[_Iterable[_Union[RepositoryModel, _Mapping]]] = ..., model_control_mode: _Optional[str] = ...) -> None: ...

class LoadModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class LoadModelResponse(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class UnloadModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UnloadModelResponse(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...
