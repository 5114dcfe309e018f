"""Prometheus metrics, on a registry passed in (tests read an isolated one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

RPCS = ("Segment", "SegmentStream", "Predict", "ListModels")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The service's metrics.

    - ``wsss_requests_total{rpc, code}``: finished requests (stream items count one each).
    - ``wsss_request_duration_seconds{rpc}``: latency per RPC (per item for SegmentStream).
    - ``wsss_stage_duration_seconds{stage}``: latency per pipeline stage.
    - ``wsss_model_inference_seconds{model, provider}``: one backend inference.
    - ``wsss_in_flight_requests``: requests being processed now.
    - ``wsss_embedding_cache_total{result}``: SAM embedding cache hits and misses.
    - ``wsss_cam_cache_total{result}``, ``wsss_cam_walk_cache_total{result}``: the CAM cache's
      lookups of CAMs and of CAM random walks.
    - ``wsss_cache_bytes{cache}``: bytes held now by the serving models' caches (``embedding``,
      ``cam``; read at scrape time, ``ServiceState``).
    - ``wsss_batch_size{model}``: items per micro-batched inference.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter("wsss_requests", "Finished requests by RPC and gRPC status code.", ["rpc", "code"], registry=registry)
        self.latency = Histogram(
            "wsss_request_duration_seconds", "Request latency by RPC.", ["rpc"], buckets=LATENCY_BUCKETS, registry=registry
        )
        self.stage = Histogram(
            "wsss_stage_duration_seconds", "Pipeline stage latency.", ["stage"], buckets=LATENCY_BUCKETS, registry=registry
        )
        self.inference = Histogram(
            "wsss_model_inference_seconds", "Model inference time by model and provider.", ["model", "provider"],
            buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.in_flight = Gauge("wsss_in_flight_requests", "Requests being processed.", registry=registry)
        self.batch = Histogram(
            "wsss_batch_size", "Items per micro-batched inference.", ["model"], buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32), registry=registry
        )
        self.cache = Counter("wsss_embedding_cache", "SAM embedding cache lookups by result.", ["result"], registry=registry)
        self.cache.labels("hit")
        self.cache.labels("miss")
        self.set_requests = Counter("wsss_model_set_requests", "Successful requests by RPC, model set and the version of the set's "
                                    "main model (Segment: its classifier, Predict: its DeepLab, SegmentEverything: its SAM encoder).",
                                    ["rpc", "model_set", "version"], registry=registry)
        self.cam_cache = Counter("wsss_cam_cache", "Per-image CAM cache lookups by result.", ["result"], registry=registry)
        self.cam_walk_cache = Counter("wsss_cam_walk_cache", "CAM cache lookups of a CAM random walk (an image's tagged classes) by result.",
                                      ["result"], registry=registry)
        self.cache_bytes = Gauge("wsss_cache_bytes", "Bytes held by the serving models' caches (embedding: SAM embeddings; cam: CAMs "
                                 "and walks).", ["cache"], registry=registry)
        self.reloads = Counter("wsss_model_reloads", "Repository reloads by outcome: switched to a new generation, or refused "
                               "(the serving models stay).", ["outcome"], registry=registry)
        self.shared_cache = Counter("wsss_shared_embedding_cache", "Shared (Redis) embedding cache calls by result: hit, miss, store, "
                                    "error, skipped (Redis left alone after an error).", ["result"], registry=registry)
        for rpc in RPCS:
            self.requests.labels(rpc, "OK")
            self.latency.labels(rpc)

    def observe_inference(self, model: str, provider: str, seconds: float) -> None:
        """The backend's InferenceObserver."""
        self.inference.labels(model, provider).observe(seconds)

    def observe_batch(self, model: str, size: int) -> None:
        """The micro-batcher's observer."""
        self.batch.labels(model).observe(size)

    def observe_cache(self, hit: bool) -> None:
        """The embedding cache's observer."""
        self.cache.labels("hit" if hit else "miss").inc()

    def observe_cam_cache(self, hit: bool) -> None:
        self.cam_cache.labels("hit" if hit else "miss").inc()

    def observe_cam_walk_cache(self, hit: bool) -> None:
        self.cam_walk_cache.labels("hit" if hit else "miss").inc()

    def observe_shared_cache(self, result: str) -> None:
        """The shared embedding cache's observer."""
        self.shared_cache.labels(result).inc()

    def observe_stages(self, timings: tuple[tuple[str, float], ...]) -> None:
        for stage, seconds in timings:
            self.stage.labels(stage).observe(seconds)
