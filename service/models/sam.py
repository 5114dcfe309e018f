"""SAM wrappers: ``sam_encoder`` (image -> embedding) and ``sam_decoder`` (official ONNX contract).

Encode once, decode many: ``SamEncoder.embed`` runs the encoder once per image and returns an
``ImageEmbedding`` that carries the geometry; ``SamDecoder.predict`` takes prompts in original
image pixels and returns low-res logits, which ``SamDecoder.upsample`` brings to the image size
itself (as ``SamPredictor`` does: upsample to 1024, crop the resized image, resize), so decoders
exported with the PyPI segment-anything aspect-ratio bug in ``masks`` still give aligned masks.
Preprocessing is ``SamPredictor``'s too: the uint8 image resized as Pillow resizes it, then
normalised, then zero-padded.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from service import memory_peak
from service.errors import ModelRepositoryError
from service.models.imageops import normalise, resize_image, upsample_crop_resize
from service.runtime.backend import DeviceTensor, InferenceBackend

log = logging.getLogger(__name__)

SAM_IMG_SIZE = 1024
LOW_RES = 256
DECODER_INPUTS = ("image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size")
DECODER_OUTPUTS = ("masks", "iou_predictions", "low_res_masks")
EMBEDDING_SHAPE = (1, 256, 64, 64)
KEEP_EMBEDDING = frozenset({"image_embeddings"})


@dataclass(frozen=True)
class ResizeLongestSide:
    """SAM's geometry: resize so the longest side is ``target``, pad bottom/right to a square.

    Attributes:
        height, width: original image size.
        target: longest side after resizing (1024 for SAM).
    """

    height: int
    width: int
    target: int = SAM_IMG_SIZE

    @property
    def resized(self) -> tuple[int, int]:
        """(height, width) after resizing, rounded as segment-anything rounds (floor(x + 0.5)), each
        at least 1 (segment-anything rounds the short side of a 4096 x 1 image to 0)."""
        scale = self.target / max(self.height, self.width)
        return max(1, int(self.height * scale + 0.5)), max(1, int(self.width * scale + 0.5))

    def apply_coords(self, coords: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Original-pixel (x, y) coordinates [..., 2] -> the resized frame."""
        rh, rw = self.resized
        out = np.array(coords, np.float32, copy=True)
        out[..., 0] *= rw / self.width
        out[..., 1] *= rh / self.height
        return out


@dataclass(frozen=True)
class ImageEmbedding:
    """The encoder's output for one image.

    Attributes:
        embeddings: float32 [1, 256, 64, 64]; a ``DeviceTensor`` in GPU memory when the backend
            keeps it there (I/O binding), ``np.asarray`` brings it to the host.
        geometry: the image's size and SAM resize.
        encoder_version: version of the encoder that made it.
    """

    embeddings: npt.NDArray[np.float32] | DeviceTensor
    geometry: ResizeLongestSide
    encoder_version: str


@dataclass(frozen=True)
class DecoderOutput:
    """Decoder outputs for one prompt set.

    Attributes:
        low_res_logits: float32 [M, 256, 256] mask logits (M = 1 or 4).
        iou_predictions: float32 [M].
    """

    low_res_logits: npt.NDArray[np.float32]
    iou_predictions: npt.NDArray[np.float32]


class ImageEncoder(Protocol):
    """What the pipeline needs of an encoder: ``SamEncoder`` or ``CachedEncoder``."""

    name: str
    version: str

    @property
    def run_bytes(self) -> int: ...

    def embed(self, image: npt.NDArray[np.uint8], pixels: str | None = None) -> ImageEmbedding: ...

    def warmup(self) -> ImageEmbedding: ...


class SamEncoder:
    """Runs ``sam_encoder`` -> ``image_embeddings`` [1,256,64,64]. Two input contracts:

    - ``image`` uint8 [1,h,w,3]: the image resized so its longest side is 1024 (as segment-anything
      resizes it); normalisation and zero-padding to 1024 x 1024 run in the graph (exported now);
    - ``image`` float32 [1,3,1024,1024]: resized, ImageNet-normalised and zero-padded here (older
      exports and any SAM exported elsewhere with segment-anything's own contract).
    """

    def __init__(self, backend: InferenceBackend, name: str = "sam_encoder") -> None:
        self.backend = backend
        self.name = name
        model = backend.models().get(name)
        if model is None:
            raise ModelRepositoryError(f"model {name!r} is not loaded")
        self.version = model.version
        self.uint8_input = model.takes_uint8("image")
        self._buffers = threading.local()
        self.measured_bytes: int | None = None
        """How far one run raised this process's resident memory at its peak, measured on the first
        ``warmup`` (``service.memory_peak``); None before it, 0 where it could not be measured."""

    @property
    def run_bytes(self) -> int:
        """The working memory one encoder run takes in this process (0 until measured): the same for
        every image, as the input is always 1024 x 1024; the Segment and SegmentEverything estimates add it."""
        return self.measured_bytes or 0

    def preprocess(self, image: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.generic], ResizeLongestSide]:
        """uint8 [H, W, 3] RGB -> the encoder's input and the image's geometry: the resized uint8
        image [1, h, w, 3] (uint8 contract), or the normalised, zero-padded float32 [1, 3, 1024, 1024].

        segment-anything's order: the uint8 image resized as Pillow resizes it, then normalised,
        then padded. The float array is the calling thread's own input buffer, reused by its next
        call (12 MiB allocated once per thread instead of faulted in afresh for every image).
        """
        geometry = ResizeLongestSide(image.shape[0], image.shape[1])
        rh, rw = geometry.resized
        resized = resize_image(image, rh, rw)
        if self.uint8_input:
            return np.ascontiguousarray(resized)[None], geometry
        x: npt.NDArray[np.float32] | None = getattr(self._buffers, "input", None)
        if x is None:
            x = np.zeros((1, 3, SAM_IMG_SIZE, SAM_IMG_SIZE), np.float32)
            self._buffers.input = x
        else:
            x[0, :, rh:, :] = 0.0
            x[0, :, :rh, rw:] = 0.0
        normalise(resized, out=x[0, :, :rh, :rw])
        return x, geometry

    def embed(self, image: npt.NDArray[np.uint8], pixels: str | None = None) -> ImageEmbedding:
        """Encode one uint8 [H, W, 3] RGB image (``pixels``, its cache key, is for caches in front)."""
        x, geometry = self.preprocess(image)
        out = self.backend.infer(self.name, {"image": x}, keep_on_device=KEEP_EMBEDDING)
        emb = out["image_embeddings"]
        if emb.shape != EMBEDDING_SHAPE:
            raise ModelRepositoryError(f"model {self.name!r} returned image_embeddings of shape {list(emb.shape)}, expected {list(EMBEDDING_SHAPE)}")
        return ImageEmbedding(emb if isinstance(emb, DeviceTensor) else np.asarray(emb, np.float32), geometry, self.version)

    def warmup(self) -> ImageEmbedding:
        """One inference (never from a cache); returns its embedding for the decoder's warm-up. The
        first warm-up runs twice and measures the second run (``run_bytes``): the first pays ONNX
        Runtime's one-time planning (segment-anything's ViT-B on 2 CPU cores: 2.9 GiB the first
        run, 1.8 GiB each later one). A 32 x 32 image is resized to the largest input, 1024 on its
        longest side, as any image is."""
        image = np.zeros((32, 32, 3), np.uint8)
        if self.measured_bytes is not None:
            return self.embed(image)
        self.embed(image)
        embedding, grown = memory_peak.growth(lambda: self.embed(image))
        self.measured_bytes = grown or 0
        log.info("model %s: one encoder run takes %s", self.name, f"{self.measured_bytes / 2**20:.0f} MiB" if grown is not None else "an unmeasured amount (not counted)")
        return embedding


class SamDecoder:
    """Runs ``sam_decoder`` with the official segment-anything ONNX contract.

    Inputs: ``image_embeddings`` [1,256,64,64], ``point_coords`` [1,N,2] (x, y in the 1024 frame),
    ``point_labels`` [1,N] (1 positive, 0 negative, -1 padding, 2/3 box corners), ``mask_input``
    [1,1,256,256], ``has_mask_input`` [1], ``orig_im_size`` [2] (h, w). Outputs: ``masks``,
    ``iou_predictions`` [1,M], ``low_res_masks`` [1,M,256,256], M = 1 or 4 (4: index 0 the
    single-mask output, 1-3 the multimask outputs).
    """

    def __init__(self, backend: InferenceBackend, name: str = "sam_decoder") -> None:
        self.backend = backend
        self.name = name
        model = backend.models().get(name)
        if model is None:
            raise ModelRepositoryError(f"model {name!r} is not loaded")
        names_in = tuple(t.name for t in model.inputs)
        names_out = tuple(t.name for t in model.outputs)
        if set(names_in) != set(DECODER_INPUTS) or not set(DECODER_OUTPUTS) <= set(names_out):
            raise ModelRepositoryError(
                f"model {name!r} must have the segment-anything ONNX decoder contract: inputs {list(DECODER_INPUTS)}, "
                f"outputs {list(DECODER_OUTPUTS)}; it has inputs {list(names_in)}, outputs {list(names_out)}"
            )
        self.version = model.version
        coords_spec = next(t for t in model.inputs if t.name == "point_coords")
        self.batched = coords_spec.shape[0] == -1
        """True when the export has a dynamic prompt-batch axis: ``predict_many`` runs one call."""

    def predict(
        self,
        embedding: ImageEmbedding,
        coords: npt.NDArray[np.float32],
        labels: npt.NDArray[np.float32],
        mask_input: npt.NDArray[np.float32] | None = None,
    ) -> DecoderOutput:
        """Decode one prompt set.

        Args:
            embedding: from ``SamEncoder.embed``.
            coords: float32 [N, 2] (x, y) in original image pixels.
            labels: float32 [N]: 1 positive, 0 negative, 2 box top-left, 3 box bottom-right.
                Without a box, a padding point (label -1) is appended, as segment-anything does.
            mask_input: optional float32 [256, 256] low-res logits of a previous round.
        """
        return self._run(embedding, [(coords, labels)], mask_input)[0]

    def predict_many(
        self,
        embedding: ImageEmbedding,
        prompt_sets: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]],
        mask_inputs: list[npt.NDArray[np.float32] | None] | None = None,
    ) -> list[DecoderOutput]:
        """Decode several prompt sets [(coords [N, 2], labels [N])] of one image: the sets without a
        mask input in one batched call when the export has a dynamic prompt-batch axis (shorter
        sets padded with label -1 points), every other set in a call of its own."""
        masks = mask_inputs if mask_inputs is not None else [None] * len(prompt_sets)
        out: list[DecoderOutput | None] = [None] * len(prompt_sets)
        plain = [i for i, m in enumerate(masks) if m is None]
        if self.batched and len(plain) > 1:
            for i, res in zip(plain, self._run(embedding, [prompt_sets[i] for i in plain], None)):
                out[i] = res
        for i, ps in enumerate(prompt_sets):
            if out[i] is None:
                out[i] = self._run(embedding, [ps], masks[i])[0]
        return [o for o in out if o is not None]

    def _run(
        self,
        embedding: ImageEmbedding,
        prompt_sets: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]],
        mask_input: npt.NDArray[np.float32] | None,
    ) -> list[DecoderOutput]:
        padded = []
        for coords, labels in prompt_sets:
            coords = np.asarray(coords, np.float32).reshape(-1, 2)
            labels = np.asarray(labels, np.float32).reshape(-1)
            if not np.any(labels == 2):
                coords = np.concatenate([coords, np.zeros((1, 2), np.float32)])
                labels = np.concatenate([labels, np.array([-1.0], np.float32)])
            padded.append((coords, labels))
        n = max(len(lab) for _, lab in padded)
        b = len(padded)
        all_coords = np.zeros((b, n, 2), np.float32)
        all_labels = np.full((b, n), -1.0, np.float32)
        for i, (coords, labels) in enumerate(padded):
            all_coords[i, : len(labels)] = coords
            all_labels[i, : len(labels)] = labels
        geometry = embedding.geometry
        has_mask = mask_input is not None
        previous = mask_input if mask_input is not None else np.zeros((LOW_RES, LOW_RES), np.float32)
        out = self.backend.infer(
            self.name,
            {
                "image_embeddings": embedding.embeddings,
                "point_coords": geometry.apply_coords(all_coords),
                "point_labels": all_labels,
                "mask_input": np.broadcast_to(previous.astype(np.float32), (b, 1, LOW_RES, LOW_RES)),
                "has_mask_input": np.array([1.0 if has_mask else 0.0], np.float32),
                "orig_im_size": np.array([geometry.height, geometry.width], np.float32),
            },
            # not ``masks``: the graph's full-size masks (each upsampled to 1024 x 1024, then to the
            # image) are never computed in process (ONNX Runtime runs the graph cut down to these two
            # outputs, service/runtime/onnx_prune.py); ``upsample`` makes the masks from the low-res
            # logits where a caller needs them
            outputs=("low_res_masks", "iou_predictions"),
        )
        low = np.asarray(out["low_res_masks"], np.float32)
        iou = np.asarray(out["iou_predictions"], np.float32).reshape(b, -1)
        if low.ndim != 4 or low.shape[0] != b or low.shape[2:] != (LOW_RES, LOW_RES) or iou.shape[1] != low.shape[1]:
            raise ModelRepositoryError(f"model {self.name!r} returned low_res_masks {low.shape} / iou_predictions {iou.shape} for {b} prompt set(s)")
        return [DecoderOutput(low[i], iou[i]) for i in range(b)]

    @staticmethod
    def upsample(low_res_logits: npt.NDArray[np.float32], geometry: ResizeLongestSide) -> npt.NDArray[np.float32]:
        """Low-res logits [M, 256, 256] -> [M, H, W] logits on the original image, as
        segment-anything's ``postprocess_masks`` does it: upsample to 1024 x 1024, crop the resized
        image's region, resize that to the original size (bilinear, half-pixel, no antialiasing)."""
        rh, rw = geometry.resized
        return upsample_crop_resize(low_res_logits, geometry.target, rh, rw, geometry.height, geometry.width)

    def warmup(self, embedding: ImageEmbedding) -> None:
        self.predict(embedding, np.array([[8.0, 8.0]], np.float32), np.array([1.0], np.float32))
