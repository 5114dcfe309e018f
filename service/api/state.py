"""Composition root: settings -> backend -> model wrappers -> pipelines, loaded once at start."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from service.errors import ModelNotFound, ModelNotReady
from service.metrics import Metrics
from service.models.cam_classifier import CamClassifier
from service.models.deeplab import DeepLab
from service.models.embedding_cache import CachedEncoder
from service.models.sam import SamDecoder, SamEncoder
from service.models.shared_cache import SharedEmbeddingStore, model_fingerprint
from service.pipeline.everything import EverythingGenerator
from service.pipeline.predict import Predictor
from service.pipeline.segment import PipelineConfig, Segmenter
from service.runtime import InferenceBackend, ModelRepository, create_backend
from service.runtime.batching import BatchingBackend
from service.settings import Settings

log = logging.getLogger(__name__)

SEGMENT_MODELS = ("cam_classifier", "sam_encoder", "sam_decoder")
BATCHED_MODELS = ("cam_classifier", "deeplab")
PREDICT_MODELS = ("deeplab",)


def pipeline_config(settings: Settings) -> PipelineConfig:
    return PipelineConfig(
        cam_scales=tuple(settings.cam_scales),
        cam_flip=settings.cam_flip,
        peak_threshold=settings.peak_threshold,
        peak_min_distance=settings.peak_min_distance,
        max_peaks_per_class=settings.max_peaks_per_class,
        label_threshold=settings.label_threshold,
        confidence_threshold=settings.confidence_threshold,
        stability_confidence_threshold=settings.stability_confidence_threshold,
        sam_mask_index=settings.sam_mask_index,
        max_prompts=settings.max_prompts,
        max_work_side=settings.max_work_side,
        max_request_bytes=settings.max_request_bytes,
        stuff_agreement=settings.stuff_agreement,
        stuff_cam_threshold=settings.stuff_cam_threshold,
    )


class ServiceState:
    """The loaded models and pipelines; ``ready`` once every model loaded and ran a warm-up."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.backend: InferenceBackend | None = None
        self.segmenter: Segmenter | None = None
        self.predictor: Predictor | None = None
        self.everything: EverythingGenerator | None = None
        self.error: str | None = None
        self.retryable = False
        """True when loading failed only because the backend was unreachable (worth retrying)."""
        self._ready = threading.Event()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def load(self) -> None:
        """Load, validate and warm up every model of the repository (blocking).

        On failure ``error`` says why (naming the model) and the state stays not ready.
        """
        backend: InferenceBackend | None = None
        try:
            repo = ModelRepository(self.settings.model_repo)
            names = [n for n in SEGMENT_MODELS + PREDICT_MODELS if n in repo]
            missing = [n for n in SEGMENT_MODELS if n not in repo]
            if missing and not any(n in repo for n in PREDICT_MODELS):
                raise ModelNotFound(f"model repository {repo.root} has none of the models this service serves")
            backend = create_backend(
                self.settings.backend,
                repo,
                self.settings.providers,
                self.settings.intra_op_threads,
                self.settings.inter_op_threads,
                self.metrics.observe_inference,
                self.settings.triton_url,
                self.settings.triton_timeout_seconds,
                self.settings.max_message_bytes,
                self.settings.ort_allow_spinning,
                self.settings.ort_io_binding,
            )
            if self.settings.batch_max_size > 1:
                backend = BatchingBackend(
                    backend, set(BATCHED_MODELS), self.settings.batch_max_size, self.settings.batch_max_delay_ms / 1000, self.metrics.observe_batch
                )
            backend.load(names)
            self.backend = backend
            encoder, decoder = None, None
            if "sam_encoder" in repo and "sam_decoder" in repo:
                encoder = CachedEncoder(SamEncoder(backend), self.settings.embedding_cache_bytes, self.metrics.observe_cache,
                                        self._shared_cache(repo.get("sam_encoder").model_path, backend.models()["sam_encoder"].version))
                decoder = SamDecoder(backend)
                self.everything = EverythingGenerator(encoder, decoder, self.settings.max_work_side, self.settings.max_request_bytes)
            if not missing:
                segmenter = Segmenter(CamClassifier(backend), encoder, decoder, pipeline_config(self.settings))
            elif missing == ["sam_encoder", "sam_decoder"]:
                log.warning("no SAM model in %s: Segment serves boxes only, by GrabCut", repo.root)
                segmenter = Segmenter(CamClassifier(backend), None, None, pipeline_config(self.settings))
            else:
                segmenter = None
                log.warning("Segment is unavailable: models %s are not in %s", missing, repo.root)
            if segmenter is not None:
                segmenter.warmup()
                self.segmenter = segmenter
            if "deeplab" in repo:
                predictor = Predictor(DeepLab(backend), self.settings.max_work_side, self.settings.max_request_bytes)
                predictor.warmup()
                self.predictor = predictor
            else:
                log.warning("Predict is unavailable: model 'deeplab' is not in %s", repo.root)
        except Exception as exc:  # any failure leaves the server up, NOT_SERVING, with the reason logged
            self.error = str(exc)
            self.retryable = isinstance(exc, ModelNotReady)
            log.error("model loading failed: %s", exc)
            if backend is not None:  # a retry builds a new one; release this one's sessions, channel and threads
                self.backend = None
                self._close(backend)
            return
        self._ready.set()
        log.info("models loaded and warmed up: %s", ", ".join(sorted(self.backend.models())))

    def _shared_cache(self, model_path: Path, version: str) -> SharedEmbeddingStore | None:
        """The Redis embedding cache of ``WSSS_EMBEDDING_CACHE_URL`` (None when unset)."""
        s = self.settings
        if s.embedding_cache_url is None:
            return None
        store = SharedEmbeddingStore(
            s.embedding_cache_url.get_secret_value(), model_fingerprint(model_path, "sam_encoder", version), s.embedding_cache_dtype,
            s.embedding_cache_ttl_seconds, s.embedding_cache_timeout_seconds, s.embedding_cache_retry_seconds, self.metrics.observe_shared_cache,
        )
        log.info("shared embedding cache: %s (%s, TTL %d s)", store.where, s.embedding_cache_dtype, s.embedding_cache_ttl_seconds)
        return store

    def close(self) -> None:
        """Release the backend (sessions, Triton channel and client loop)."""
        backend, self.backend = self.backend, None
        if backend is not None:
            self._close(backend)

    @staticmethod
    def _close(backend: InferenceBackend) -> None:
        try:
            backend.close()
        except Exception:  # closing is best effort at shutdown
            log.exception("closing the inference backend failed")

    def require_segmenter(self) -> Segmenter:
        if not self.ready:
            raise ModelNotReady(self._not_ready_message())
        if self.segmenter is None:
            raise ModelNotFound("Segment needs model cam_classifier (and sam_encoder + sam_decoder for all but boxes) in the model repository")
        return self.segmenter

    def require_predictor(self) -> Predictor:
        if not self.ready:
            raise ModelNotReady(self._not_ready_message())
        if self.predictor is None:
            raise ModelNotFound("Predict needs model 'deeplab' in the model repository")
        return self.predictor

    def require_everything(self) -> EverythingGenerator:
        if not self.ready:
            raise ModelNotReady(self._not_ready_message())
        if self.everything is None:
            raise ModelNotFound("SegmentEverything needs models 'sam_encoder' and 'sam_decoder' in the model repository")
        return self.everything

    def require_backend(self) -> InferenceBackend:
        if not self.ready or self.backend is None:
            raise ModelNotReady(self._not_ready_message())
        return self.backend

    def _not_ready_message(self) -> str:
        if self.error:
            return f"models failed to load: {self.error}"
        return "models are still loading; retry shortly"
