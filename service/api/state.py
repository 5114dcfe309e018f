"""Composition root: settings -> backend -> model wrappers -> pipelines, loaded at start and
again, beside the serving ones, when the repository changes (``reload``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from service.errors import InvalidInput, ModelNotFound, ModelNotReady
from service.metrics import Metrics
from service.models.cam_classifier import CamClassifier
from service.models.deeplab import DeepLab
from service.models.embedding_cache import CachedEncoder
from service.models.sam import SamDecoder, SamEncoder
from service.models.shared_cache import SharedEmbeddingStore, model_fingerprint
from service.pipeline.cam_cache import CamCache
from service.pipeline.everything import EverythingGenerator
from service.pipeline.predict import Predictor
from service.pipeline.segment import PipelineConfig, Segmenter
from service.runtime import InferenceBackend, ModelRepository, create_backend
from service.runtime.batching import BatchingBackend
from service.runtime.model_repo import SET_NAME, newest_first, repository_fingerprints
from service.runtime.onnxruntime_backend import adopt
from service.settings import Settings

log = logging.getLogger(__name__)

SEGMENT_MODELS = ("cam_classifier", "sam_encoder", "sam_decoder")
BATCHED_MODELS = ("cam_classifier", "deeplab")
PREDICT_MODELS = ("deeplab",)
SERVED_MODELS = SEGMENT_MODELS + PREDICT_MODELS
DEFAULT_SET = "default"
"""How the set of the repository's unprefixed models is named in ListModels, metrics and errors."""


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
        cam_walk_beta=settings.cam_walk_beta,
        cam_walk_steps=settings.cam_walk_steps,
    )


def version_keys(repo: ModelRepository, name: str) -> list[str]:
    """Backend keys of every version model ``name`` serves: ``name`` for the newest, ``name@<v>`` for older ones."""
    config = repo.get(name)
    return [name] + [f"{name}@{v}" for v in config.versions[1:]]


def model_set_of(folder: str) -> tuple[str, str] | None:
    """(set, model) of a repository folder name: ``deeplab`` -> ("", "deeplab"), ``tile_a.deeplab``
    -> ("tile_a", "deeplab"); None for a folder that is no model this service serves."""
    prefix, _, model = folder.rpartition(".")
    if model not in SERVED_MODELS or (prefix and not SET_NAME.fullmatch(prefix)):
        return None
    return prefix, model


T = TypeVar("T")


def _pinned(by_version: dict[str, T], version: str, newest: T, model: str, set_label: str) -> T:
    if not version:
        return newest
    if version not in by_version:
        raise ModelNotFound(f"model_version {version[:20]!r} of {model} is not served in model set {set_label}; served: "
                            f"{', '.join(newest_first(by_version))} (config.pbtxt version_policy)")
    return by_version[version]


@dataclass
class ModelSet:
    """One model set's pipelines: its classifier and DeepLab, with its own SAM or the repository's."""

    name: str
    segmenter: Segmenter | None = None
    predictor: Predictor | None = None
    everything: EverythingGenerator | None = None
    models: dict[str, str] = field(default_factory=dict)
    """Role (cam_classifier, deeplab, sam_encoder, sam_decoder) -> repository folder name."""
    segmenters: dict[str, Segmenter] = field(default_factory=dict)
    """Classifier version -> its pipeline, for every version served (``segmenter``: the newest)."""
    predictors: dict[str, Predictor] = field(default_factory=dict)
    """DeepLab version -> its pipeline, for every version served (``predictor``: the newest)."""

    @property
    def label(self) -> str:
        return self.name or DEFAULT_SET


@dataclass
class Generation:
    """Everything loaded from one state of the repository; never changed once built. A request
    holds the generation it started on (``ServiceState.acquire``) until it is done, so a reload
    never changes models under a running request; a retired generation is closed when its last
    request leaves."""

    backend: InferenceBackend
    fingerprints: dict[str, str]
    sets: dict[str, ModelSet] = field(default_factory=dict)
    encoders: dict[str, CachedEncoder] = field(default_factory=dict)
    """SAM encoder folder -> its cached encoder (one per SAM, shared by the sets using it)."""
    cam_cache: CamCache | None = None
    """Per-image CAMs of every set's classifiers (keys name the classifier and its version)."""
    users: int = 0
    retired: bool = False

    def versions(self) -> dict[str, str]:
        return {name: m.version for name, m in self.backend.models().items()}

    def model_set(self, name: str) -> ModelSet:
        """The set ``name`` ("" or ``default``: the default set).

        Raises:
            InvalidInput: not a set name; ModelNotFound: no such set (naming the sets there are).
        """
        key = "" if name in ("", DEFAULT_SET) else name
        if key and not SET_NAME.fullmatch(key):
            raise InvalidInput(f"model_set: {name[:80]!r} is not a set name (lower-case letters, digits, '_', '-')")
        found = self.sets.get(key)
        if found is None:
            raise ModelNotFound(f"model_set {name!r} is not served; sets: {', '.join(sorted(s.label for s in self.sets.values())) or 'none'}")
        return found


class ServiceState:
    """The loaded models and pipelines; ``ready`` once every model loaded and ran a warm-up.
    ``reload`` builds a new generation beside the serving one and switches to it atomically."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.error: str | None = None
        self.retryable = False
        """True when loading failed only because the backend was unreachable (worth retrying)."""
        self._ready = threading.Event()
        self._generation: Generation | None = None
        self._lock = threading.Lock()
        self.last_refused: dict[str, str] = {}
        """Fingerprints of the last repository state a reload refused (not tried again unchanged)."""
        self.last_error = ""
        """Why the last reload was refused."""
        metrics.cache_bytes.labels("embedding").set_function(lambda: self.cache_bytes()[0])
        metrics.cache_bytes.labels("cam").set_function(lambda: self.cache_bytes()[1])

    def cache_bytes(self) -> tuple[int, int]:
        """Bytes in the serving generation's embedding caches and its CAM cache (0, 0 before a load)."""
        g = self._generation
        if g is None:
            return 0, 0
        return sum(e.size_bytes for e in g.encoders.values()), g.cam_cache.size_bytes if g.cam_cache is not None else 0

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def generation(self) -> Generation | None:
        return self._generation

    @property
    def segmenter(self) -> Segmenter | None:
        """The default set's Segment pipeline as served now (None before a load or without one)."""
        g = self._generation
        return g.sets[""].segmenter if g is not None and "" in g.sets else None

    def load(self) -> None:
        """Load, validate and warm up every model of the repository (blocking).

        On failure ``error`` says why (naming the model) and the state stays not ready.
        """
        try:
            generation = self._build(None)
        except Exception as exc:  # any failure leaves the server up, NOT_SERVING, with the reason logged
            self.error = str(exc)
            self.retryable = isinstance(exc, ModelNotReady)
            log.error("model loading failed: %s", exc)
            return
        self._generation = generation
        self.error = None
        self._ready.set()
        log.info("models loaded and warmed up: %s", ", ".join(f"{n} v{v}" for n, v in sorted(generation.versions().items())))

    def reload(self, only: str | None = None, unload: str | None = None, fingerprints: dict[str, str] | None = None) -> bool:
        """Build a generation from the repository as it is now (models whose files did not change
        are taken over, not loaded again), warm it up, switch to it; the old one is closed when
        its last request leaves. ``only``: (re)load that model alone, every other one kept as it
        is served; ``unload``: the same generation without that model. A failure is logged
        (naming the model and file) and the serving generation stays. ``fingerprints``: the
        repository's, when the caller has just taken them. Returns whether it switched."""
        current = self._generation
        try:
            if fingerprints is None:
                fingerprints = repository_fingerprints(self.settings.model_repo)
            allowed = None
            if only is not None or unload is not None:
                serving = dict(current.fingerprints) if current is not None else {}
                keep = {n: f for n, f in serving.items() if n not in (only, unload)}
                fingerprints = {**{n: f for n, f in fingerprints.items() if n == only}, **keep}
                allowed = set(fingerprints)
            generation = self._build(current, fingerprints, allowed)
        except Exception as exc:
            self.last_refused = fingerprints or {}
            self.last_error = str(exc)
            log.error("new model version refused, the serving one stays: %s", exc)
            self.metrics.reloads.labels("refused").inc()
            return False
        with self._lock:
            self._generation = generation
            if current is not None:
                current.retired = True
                idle = current.users == 0
        if current is not None and idle:
            self._close(current.backend)
        self.error = None
        self._ready.set()
        self.metrics.reloads.labels("switched").inc()
        log.info("switched to models %s", ", ".join(f"{n} v{v}" for n, v in sorted(generation.versions().items())))
        return True

    @contextmanager
    def acquire(self) -> Iterator[Generation]:
        """The serving generation, held until the block ends (raises ModelNotReady before the first load)."""
        with self._lock:
            generation = self._generation
            if generation is None or not self.ready:
                raise ModelNotReady(self._not_ready_message())
            generation.users += 1
        try:
            yield generation
        finally:
            with self._lock:
                generation.users -= 1
                close = generation.retired and generation.users == 0
            if close:
                self._close(generation.backend)

    def _build(self, previous: Generation | None, fingerprints: dict[str, str] | None = None, allowed: set[str] | None = None) -> Generation:
        """A loaded and warmed-up generation of the repository (taking over ``previous``'s models
        whose files are unchanged; only the ``allowed`` models when given)."""
        backend: InferenceBackend | None = None
        try:
            repo = ModelRepository(self.settings.model_repo)
            fingerprints = fingerprints if fingerprints is not None else repository_fingerprints(self.settings.model_repo)
            names = [n for n in sorted(repo.configs) if model_set_of(n) is not None and (allowed is None or n in allowed)]
            if not names and previous is None:
                raise ModelNotFound(f"model repository {repo.root} has none of the models this service serves ({', '.join(SERVED_MODELS)}, "
                                    "or <set>.<model>)")
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
                batched = {n for n in names if model_set_of(n)[1] in BATCHED_MODELS}  # type: ignore[index]
                backend = BatchingBackend(backend, batched, self.settings.batch_max_size, self.settings.batch_max_delay_ms / 1000, self.metrics.observe_batch)
            keys = [k for n in names for k in version_keys(repo, n)]  # every version each model's version_policy serves
            same = [] if previous is None else [n for n in names if n in previous.fingerprints and previous.fingerprints[n] == fingerprints.get(n)]
            same_keys = [k for k in keys if k.partition("@")[0] in same]
            unchanged = adopt(backend, previous.backend, same_keys) if previous is not None and same_keys else []
            backend.load([k for k in keys if k not in unchanged])
            generation = Generation(backend, {n: fingerprints[n] for n in names if n in fingerprints},
                                    cam_cache=CamCache(self.settings.cam_cache_bytes, self.metrics.observe_cam_cache,
                                                       self.metrics.observe_cam_walk_cache))
            roles: dict[str, dict[str, str]] = {}
            for n in names:
                set_name, role = model_set_of(n)  # type: ignore[misc]
                roles.setdefault(set_name, {})[role] = n
            shared_sam = roles.get("", {})
            for set_name, own in sorted(roles.items()):
                generation.sets[set_name] = self._model_set(set_name, own, shared_sam, generation, previous, unchanged, repo)
            return generation
        except BaseException:
            if backend is not None:  # release this attempt's sessions, channel and threads (taken-over sessions stay with their owner)
                self._close(backend)
            raise

    def _model_set(self, name: str, own: dict[str, str], shared: dict[str, str], generation: Generation, previous: Generation | None,
                   unchanged: list[str], repo: ModelRepository) -> ModelSet:
        """A set's pipelines, warmed up: its own SAM when it has both halves, else the repository's."""
        backend = generation.backend
        sam = own if "sam_encoder" in own and "sam_decoder" in own else shared
        models = dict(own)
        encoder = decoder = None
        if "sam_encoder" in sam and "sam_decoder" in sam:
            models.update(sam_encoder=sam["sam_encoder"], sam_decoder=sam["sam_decoder"])
            enc_name = sam["sam_encoder"]
            encoder = generation.encoders.get(enc_name)
            if encoder is None:  # one cached encoder per SAM: sets sharing it share its embedding cache
                encoder = CachedEncoder(SamEncoder(backend, enc_name), self.settings.embedding_cache_bytes, self.metrics.observe_cache,
                                        self._shared_cache(repo.get(enc_name).model_path, backend.models()[enc_name].version))
                if previous is not None and enc_name in previous.encoders and enc_name in unchanged:
                    encoder.take_entries(previous.encoders[enc_name])
                generation.encoders[enc_name] = encoder
            decoder = SamDecoder(backend, sam["sam_decoder"])
        result = ModelSet(name, models=models)
        label = name or DEFAULT_SET
        if encoder is not None and decoder is not None and (name == "" or "cam_classifier" in own or "deeplab" in own):
            result.everything = EverythingGenerator(encoder, decoder, self.settings.max_work_side, self.settings.max_request_bytes)
        if "cam_classifier" in own:
            if encoder is None:
                log.warning("model set %s has no SAM model: Segment serves boxes only, by GrabCut", label)
            for key in version_keys(repo, own["cam_classifier"]):
                segmenter = Segmenter(CamClassifier(backend, key), encoder, decoder, pipeline_config(self.settings), generation.cam_cache)
                if {key, sam.get("sam_encoder"), sam.get("sam_decoder")} - {None, *unchanged}:  # else all taken over warm
                    segmenter.warmup()
                result.segmenters[segmenter.classifier.version] = segmenter
                result.segmenter = result.segmenter or segmenter  # the newest
        else:
            log.warning("model set %s: Segment is unavailable (no %scam_classifier in %s)", label, f"{name}." if name else "", repo.root)
        if encoder is not None and encoder.encoder.measured_bytes is None:
            encoder.warmup()  # no Segment warm-up ran it: SegmentEverything's estimate needs its measured run
        if "deeplab" in own:
            for key in version_keys(repo, own["deeplab"]):
                predictor = Predictor(DeepLab(backend, key), self.settings.max_work_side, self.settings.max_request_bytes,
                                      self.settings.predict_scales, self.settings.predict_flip)
                if key not in unchanged:  # a session taken over is warm already
                    predictor.warmup()
                result.predictors[predictor.deeplab.version] = predictor
                result.predictor = result.predictor or predictor
        else:
            log.warning("model set %s: Predict is unavailable (no %sdeeplab in %s)", label, f"{name}." if name else "", repo.root)
        return result

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
        """Release the serving generation's backend (sessions, Triton channel and client loop)."""
        generation, self._generation = self._generation, None
        if generation is not None:
            self._close(generation.backend)

    @staticmethod
    def _close(backend: InferenceBackend) -> None:
        try:
            backend.close()
        except Exception:  # closing is best effort at shutdown
            log.exception("closing the inference backend failed")

    def _set(self, generation: Generation | None, model_set: str) -> ModelSet:
        if not self.ready:
            raise ModelNotReady(self._not_ready_message())
        g = generation or self._generation
        if g is None:
            raise ModelNotReady(self._not_ready_message())
        return g.model_set(model_set)

    def require_segmenter(self, generation: Generation | None = None, model_set: str = "", version: str = "") -> Segmenter:
        """The set's Segment pipeline, with its classifier at ``version`` ("" = the newest served)."""
        found = self._set(generation, model_set)
        if found.segmenter is None:
            prefix = f"{found.name}." if found.name else ""
            raise ModelNotFound(f"Segment needs model {prefix}cam_classifier (and sam_encoder + sam_decoder for all but boxes) in the model repository")
        return _pinned(found.segmenters, version, found.segmenter, "cam_classifier", found.label)

    def require_predictor(self, generation: Generation | None = None, model_set: str = "", version: str = "") -> Predictor:
        """The set's Predict pipeline, with its DeepLab at ``version`` ("" = the newest served)."""
        found = self._set(generation, model_set)
        if found.predictor is None:
            prefix = f"{found.name}." if found.name else ""
            raise ModelNotFound(f"Predict needs model '{prefix}deeplab' in the model repository")
        return _pinned(found.predictors, version, found.predictor, "deeplab", found.label)

    def require_everything(self, generation: Generation | None = None, model_set: str = "") -> EverythingGenerator:
        found = self._set(generation, model_set)
        if found.everything is None:
            raise ModelNotFound("SegmentEverything needs models 'sam_encoder' and 'sam_decoder' in the model repository")
        return found.everything

    def _not_ready_message(self) -> str:
        if self.error:
            return f"models failed to load: {self.error}"
        return "models are still loading; retry shortly"
