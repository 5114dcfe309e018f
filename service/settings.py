"""All settings, read from ``WSSS_*`` environment variables (e.g. ``WSSS_PORT=50051``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Service settings. Every field can be set as ``WSSS_<FIELD NAME IN CAPITALS>``."""

    model_config = SettingsConfigDict(env_prefix="WSSS_", extra="ignore", protected_namespaces=())

    host: str = "[::]"
    """Address the gRPC server binds."""
    port: int = Field(default=50051, ge=0, le=65535)
    """gRPC port; 0 picks a free one (tests)."""
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    """Prometheus ``/metrics`` HTTP port; 0 picks a free one."""
    metrics_host: str = "0.0.0.0"
    """Address the Prometheus ``/metrics`` HTTP server binds (``127.0.0.1`` keeps it local)."""
    metrics_enabled: bool = True
    """Serve Prometheus metrics over HTTP."""
    model_repo: Path = REPO_ROOT / "model_repo"
    """Triton-layout model repository."""
    model_control_mode: Literal["none", "poll", "explicit"] = "none"
    """As Triton names it: ``none`` loads the repository once at start; ``poll`` watches it every
    ``repository_poll_seconds`` and, when a model's files changed and stayed unchanged a quarter
    period later (at most 1 s: a copy has finished), loads the new state beside the serving one, warms it up and
    switches atomically; running requests finish on the models they started on, which are then
    freed. A new state that fails to load is logged (naming the model and file) and refused; the
    serving models stay, health stays SERVING. ``explicit``: the admin service's LoadModel and
    UnloadModel (with an admin token) load or drop one model the same way."""
    repository_poll_seconds: float = Field(default=10.0, gt=0.0)
    """How often ``poll`` looks at the repository."""
    backend: str = "onnxruntime"
    """Inference backend: ``onnxruntime`` (in process) or ``triton`` (a Triton / Open Inference
    Protocol server serving the same model repository, at ``triton_url``)."""
    triton_url: str = ""
    """gRPC ``host:port`` of the Triton server (backend ``triton``)."""
    triton_timeout_seconds: float = Field(default=30.0, gt=0)
    """Seconds per call to the Triton server."""
    load_retry_seconds: float = Field(default=2.0, gt=0)
    """While the backend is unreachable at start, retry loading this often (health stays NOT_SERVING)."""
    providers: str = "auto"
    """ONNX Runtime providers in order of preference, comma-separated, or ``auto``
    (TensorRT, CUDA, CPU: whichever this machine has)."""
    intra_op_threads: int = Field(default=0, ge=0)
    """ONNX Runtime intra-op threads per session; 0 lets ONNX Runtime decide."""
    inter_op_threads: int = Field(default=0, ge=0)
    """ONNX Runtime inter-op threads per session; 0 lets ONNX Runtime decide."""
    ort_allow_spinning: bool = False
    """Let idle ONNX Runtime threads busy-wait for the next inference (ONNX Runtime's own default).
    Off: a Segment request runs three sessions in turn and each one's spinning pool took the cores
    from the next (raw Segment model time 141 ms spinning, 61-66 ms not; README, Scaling)."""
    ort_io_binding: Literal["auto", "on", "off"] = "auto"
    """ONNX Runtime I/O binding: SAM's image embedding stays in GPU memory between the encoder,
    the embedding cache and the decoder (4 MiB per image not copied out and back in per decoder
    call). ``auto``: on for sessions on a GPU; ``on`` forces it on a CPU too (same numbers)."""
    keep_freed_memory: bool = True
    """Keep freed memory in the process for the next request (glibc mmap/trim thresholds, see
    ``service/malloc.py``) instead of faulting fresh pages in for every request's large arrays;
    applied by ``python -m service`` at start. The free heap goes back to the kernel after a
    request of 1 M pixels or more and once per busy period after 2 s idle."""
    malloc_arenas: int = Field(default=2, ge=0)
    """At most this many glibc malloc arenas (``service/malloc.py`` ``limit_arenas``), set by
    ``python -m service`` at start; 0 = glibc's default, 8 per core. With glibc's default the
    server's RSS 10 s after the hostile mix of bench/load_test.py was 1.27-1.34x its level before
    it; with 2, 0.93-1.18x (README, Reliability)."""
    batch_max_size: int = Field(default=1, ge=1)
    """Micro-batching of the classifier and DeepLab across concurrent requests: most items in one
    inference (1 = off, the default: on the 2-core CPU it was measured on it does not pay; set
    8 on a GPU, as deploy/k8s does)."""
    batch_max_delay_ms: float = Field(default=3.0, ge=0.0)
    """How long the first request of a micro-batch waits for others, in milliseconds."""
    worker_threads: int = Field(default=4, ge=1)
    """Threads that run requests' model work off the event loop."""
    shutdown_grace_seconds: float = Field(default=10.0, ge=0.0)
    """On SIGTERM/SIGINT: seconds in-flight requests get to finish (keep below Kubernetes'
    terminationGracePeriodSeconds)."""
    max_connection_age_seconds: float = Field(default=60.0, ge=0.0)
    """Close each client connection after this many seconds (gRPC's MAX_CONNECTION_AGE: a GOAWAY,
    then ``max_connection_age_grace_seconds`` for calls on it to finish), so clients reconnect,
    re-resolve the service name and spread over replicas that came up since. 0 = never."""
    max_connection_age_grace_seconds: float = Field(default=30.0, ge=0.0)
    """Seconds calls on an aged connection get to finish before it is closed."""
    keepalive_time_seconds: float = Field(default=30.0, gt=0.0)
    """The server pings an idle connection this often, so dead peers (a client gone, a NAT entry
    dropped) are noticed and their resources freed."""
    keepalive_timeout_seconds: float = Field(default=10.0, gt=0.0)
    """A keepalive ping unanswered for this long closes the connection."""
    min_client_ping_interval_seconds: float = Field(default=10.0, gt=0.0)
    """Clients may send keepalive pings (even without calls) this often; faster ones are told
    GOAWAY (too_many_pings). Keep client keepalive_time at or above it."""
    replica_name: str = ""
    """Sent back as ``wsss-replica`` metadata on every call, so a caller can tell which replica
    answered (default: host name and process id)."""
    shutdown_drain_seconds: float = Field(default=1.0, ge=0.0)
    """On SIGTERM/SIGINT: seconds between health NOT_SERVING and the GOAWAY, still serving, so
    clients watching health (and load balancers) move new calls away before connections close."""
    max_in_flight: int = Field(default=64, ge=1)
    """Requests processed or waiting at once; beyond it RESOURCE_EXHAUSTED at once."""
    max_message_bytes: int = Field(default=64 * 1024 * 1024, ge=4 * 1024 * 1024)
    """Largest gRPC message received or sent, in bytes."""
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    """Largest accepted image (height x width); larger declared sizes are refused before decoding."""
    max_image_side: int = Field(default=8192, ge=16)
    """Largest accepted image width or height."""
    max_prompts: int = Field(default=1000, ge=1)
    """Most weak labels (tags + boxes + points + scribble vertices) in one request."""
    max_work_side: int = Field(default=1024, ge=16)
    """Longest side every stage of Segment and Predict works at: a larger image is downscaled on
    entry (coordinates with it) and its label map brought back to the original size (nearest
    neighbour), so a request's work is bounded whatever its size."""
    max_request_bytes: int = Field(default=1536 * 1024 * 1024, ge=16 * 1024 * 1024)
    """Largest estimated working memory of one request's image, in bytes (the part that grows with
    the image; SAM's fixed encoder run is counted in ``max_working_bytes`` only); a request over it
    is refused with RESOURCE_EXHAUSTED before its pixels are decoded (README, Limits)."""
    max_working_bytes: int = Field(default=1536 * 1024 * 1024, ge=16 * 1024 * 1024)
    """Estimated working memory of all requests in progress together, in bytes: a request that
    does not fit waits for earlier ones to stop (small requests run side by side, large ones take
    turns), so concurrent large images cannot add up past it. Segment and SegmentEverything count
    one run of SAM's encoder too, as measured when it loaded; a request estimated above the whole
    budget runs alone."""
    unhealthy_after_errors: int = Field(default=5, ge=1)
    """Health turns NOT_SERVING (so the orchestrator restarts the process) after this many
    internal errors in a row with no success between them; at once on MemoryError."""
    cam_scales: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    """CAM inference scales (multi-scale CAM)."""
    cam_flip: bool = True
    """Also run each CAM scale on the horizontally flipped image."""
    predict_scales: tuple[float, ...] | None = None
    """Predict's test-time augmentation: DeepLab runs on the working image resized by each of these
    scales and averages its probabilities (e.g. ``[0.75, 1, 1.25]``, DeepLab's training scales);
    each scale is one more DeepLab run, and the estimated working memory grows with the largest.
    Unset: each DeepLab's config parameter ``predict_scales`` (``export`` writes the trainer's
    choice), else ``[1]``; set, it is used for every DeepLab served."""
    predict_flip: bool | None = None
    """Predict also runs DeepLab on the mirrored image at each of ``predict_scales`` (twice the runs).
    Unset: each DeepLab's config parameter ``predict_flip``, else false; set, it wins."""
    peak_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    """S2C tau: normalised-CAM value a local peak must exceed to become a prompt."""
    peak_min_distance: int = Field(default=20, ge=1)
    """``peak_local_max`` min_distance in pixels (S2C reference: 20)."""
    max_peaks_per_class: int = Field(default=8, ge=1)
    """Most CAM peaks used as prompts for one class."""
    label_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    """Classifier probability above which a class is present when a request has no labels."""
    confidence_threshold: float = 0.05
    """With the LOGIT_X_CAM score: pixels whose winning confidence is below this become 255."""
    stability_confidence_threshold: float = 0.05
    """With the STABILITY_X_CAM score: pixels whose winning confidence is below this become 255."""
    embedding_cache_bytes: int = Field(default=256 * 1024 * 1024, ge=0)
    """Bytes of SAM image embeddings kept (LRU, keyed by decoded pixels + encoder version); 0 = off.
    One 256x64x64 float32 embedding is 4 MiB. With I/O binding on a GPU they are kept in GPU
    memory, so this is also the GPU memory the cache may take."""
    cam_cache_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    """Bytes of per-image CAMs and classifier outputs kept (LRU, keyed by the working pixels and the
    classifier), so a new round of clicks or boxes on a known image skips the classifier as the
    embedding cache skips the encoder; 0 = off."""
    embedding_cache_url: SecretStr | None = None
    """``redis://[:password@]host:6379/0``: a SAM embedding cache shared by replicas, behind the
    local one (an interactive round on another replica skips the encoder). Unset = local only.
    Redis being down or slow only costs cache hits, never a request."""
    embedding_cache_dtype: Literal["float32", "float16"] = "float16"
    """How embeddings are stored in the shared cache: float16 halves the bytes per hit (2 MiB for
    SAM's 256x64x64) at a measured mask difference of < 0.1 % of pixels (README, Scaling)."""
    embedding_cache_ttl_seconds: int = Field(default=3600, ge=1)
    """Seconds an embedding stays in the shared cache (Redis's own LRU bounds its size)."""
    embedding_cache_timeout_seconds: float = Field(default=0.25, gt=0.0)
    """Connect and read timeout of each shared-cache call; slower counts as a miss."""
    embedding_cache_retry_seconds: float = Field(default=5.0, gt=0.0)
    """After a shared-cache error it is left alone this long (an outage adds no latency per request)."""
    stuff_agreement: float = Field(default=0.0, ge=0.0, le=1.0)
    """A tagged class whose mask covers less than this share of its confident CAM region (CAM >
    ``stuff_cam_threshold``) is amorphous in that image (sky, grass): pixels where its CAM is the
    highest of the tagged classes, that no CAM-supported mask won, take it. 0 = off."""
    stuff_cam_threshold: float = Field(default=0.35, ge=0.0, le=1.0)
    """Normalised CAM value above which a pixel is the class's confident CAM region."""
    cam_walk_steps: int = Field(default=8, ge=0, le=64)
    """Steps of the random walk that spreads each tagged (or predicted) class's CAM over the pixels
    its classifier's features call alike, before the peaks and the aggregation read it (AffinityNet's
    walk without a trained affinity net: ``service/pipeline/cam_random_walk.py``). 0 = off. Needs a
    classifier that exports ``features`` and a CAM scale of 1.0; its dense transition matrix (up to
    4,096 cells, 128 MiB) is in each request's memory estimate."""
    cam_walk_beta: float = Field(default=64.0, gt=0.0, le=1024.0)
    """The walk's affinity power: two cells' affinity is their features' cosine similarity (clipped
    at 0) to this power; higher keeps a CAM within more alike pixels."""
    sam_mask_index: int = Field(default=3, ge=0)
    """Which decoder mask to use from a 4-mask export (S2C reference: third multimask = 3)."""
    log_level: str = "INFO"
    """Python logging level."""
    tls_cert: Path | None = None
    """PEM server certificate (chain); with ``tls_key`` the server speaks TLS only."""
    tls_key: Path | None = None
    """PEM private key of ``tls_cert``."""
    tls_client_ca: Path | None = None
    """PEM CA bundle; when set (with TLS) every client must present a certificate it signed (mutual TLS)."""
    auth_tokens: SecretStr | None = None
    """Comma-separated bearer tokens; when set every call but the health service needs
    ``authorization: Bearer <token>`` metadata (UNAUTHENTICATED otherwise). Never logged."""
    admin_tokens: SecretStr | None = None
    """Comma-separated bearer tokens for the admin service (``ModelRepositoryService``); a caller
    token is never one. Unset = admin calls are refused. Never logged."""
    auth_token_file: Path | None = None
    """A file with one bearer token per line (an alternative to ``auth_tokens``, e.g. a mounted secret)."""

    @field_validator("predict_scales")
    @classmethod
    def _predict_scales(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is not None and (not value or not all(0.0 < s <= 4.0 for s in value)):
            raise ValueError("predict_scales takes one or more scales above 0 and at most 4")
        return value

    @field_validator("embedding_cache_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("embedding_cache_url must be a redis://, rediss:// or unix:// URL")
        return value

    def admin_token_set(self) -> frozenset[str]:
        """Every accepted admin token (empty: admin calls are refused)."""
        if self.admin_tokens is None:
            return frozenset()
        return frozenset(t.strip() for t in self.admin_tokens.get_secret_value().split(",") if t.strip())

    def bearer_tokens(self) -> frozenset[str]:
        """Every accepted token (empty: authentication off)."""
        tokens: set[str] = set()
        if self.auth_tokens is not None:
            tokens |= {t.strip() for t in self.auth_tokens.get_secret_value().split(",") if t.strip()}
        if self.auth_token_file is not None:
            tokens |= {t.strip() for t in self.auth_token_file.read_text().splitlines() if t.strip()}
        return frozenset(tokens)
