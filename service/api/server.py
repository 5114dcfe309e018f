"""The gRPC server: API, health, reflection, Prometheus metrics; ``serve()`` runs it until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server

from service import malloc
from service.api.admin import ModelRepositoryServicer
from service.api.security import BearerTokenInterceptor, server_credentials
from service.api.servicer import SegmentationServicer, add_to_server
from service.api.state import ServiceState, model_set_of
from service.metrics import Metrics
from service.runtime.model_repo import repository_fingerprints
from service.settings import Settings
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SegmentationService"].full_name
ADMIN_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ModelRepositoryService"].full_name


@dataclass
class Server:
    """A created (not yet started) server and what it is made of."""

    grpc_server: grpc.aio.Server
    port: int
    state: ServiceState
    health: health.aio.HealthServicer
    metrics: Metrics
    executor: ThreadPoolExecutor
    servicer: SegmentationServicer

    async def start(self) -> None:
        """Start serving (health NOT_SERVING), load the models off the loop, then SERVING."""
        self.servicer.health_watch.on_unhealthy = self._unhealthy
        await self.set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.grpc_server.start()
        log.info("gRPC server listening on port %d; loading models", self.port)
        await asyncio.get_running_loop().run_in_executor(self.executor, self.state.load)
        self._keep(asyncio.get_running_loop().create_task(self._trim_when_idle()))
        if self.state.settings.model_control_mode == "poll":
            self._keep(asyncio.get_running_loop().create_task(self._poll_repository()))
        if self.state.ready:
            await self.set_health(health_pb2.HealthCheckResponse.SERVING)
            log.info("SERVING")
        elif self.state.retryable:
            log.error("NOT_SERVING until the backend answers: %s", self.state.error)
            self._retry = asyncio.get_running_loop().create_task(self._load_until_ready())
        else:
            log.error("NOT_SERVING: %s", self.state.error)

    async def _load_until_ready(self) -> None:
        while not self.state.ready and self.state.retryable:
            await asyncio.sleep(self.state.settings.load_retry_seconds)
            await asyncio.get_running_loop().run_in_executor(self.executor, self.state.load)
        if self.state.ready:
            await self.set_health(health_pb2.HealthCheckResponse.SERVING)
            log.info("SERVING (the backend answered)")

    async def _poll_repository(self) -> None:
        """``WSSS_MODEL_CONTROL_MODE=poll``: reload when the repository changed and then held still
        for a quarter period (at most 1 s: a file being copied is not loaded half-written); a
        state that was refused is not tried again until it changes."""
        loop = asyncio.get_running_loop()
        period = self.state.settings.repository_poll_seconds
        settle = min(1.0, period / 4)
        root = self.state.settings.model_repo

        def changed(now: dict[str, str]) -> bool:
            generation = self.state.generation
            serving = generation.fingerprints if generation is not None else {}
            return {k: v for k, v in now.items() if model_set_of(k) is not None} != serving and now != self.state.last_refused

        while True:
            await asyncio.sleep(period)
            try:
                now = await loop.run_in_executor(self.executor, repository_fingerprints, root)
                if not changed(now):
                    continue
                await asyncio.sleep(settle)  # still being written? then the next poll will see it again
                if await loop.run_in_executor(self.executor, repository_fingerprints, root) != now:
                    continue
                if await loop.run_in_executor(self.executor, functools.partial(self.state.reload, fingerprints=now)):
                    await self.set_health(health_pb2.HealthCheckResponse.SERVING)  # also after a first load that had failed
            except Exception:  # the watch must outlive anything a repository can do (a folder vanishing mid-scan...)
                log.exception("repository poll failed; polling on")

    def _unhealthy(self, reason: str) -> None:
        """The health watch gave up on this process (called on the event loop): NOT_SERVING for good."""
        self._keep(asyncio.get_running_loop().create_task(self.set_health(health_pb2.HealthCheckResponse.NOT_SERVING)))

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _trim_when_idle(self, period: float = 2.0) -> None:
        """Once per busy period, when no request has run for ``period`` seconds, give free heap back
        to the kernel: the resident size returns near its warm level after large or many requests,
        and requests in a busy period keep reusing the memory (``WSSS_KEEP_FREED_MEMORY``)."""
        trimmed_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            last = self.servicer.last_finished
            if self.servicer.in_flight.count == 0 and last > trimmed_at and time.monotonic() - last >= period:
                trimmed_at = last
                await loop.run_in_executor(self.executor, malloc.trim)

    async def set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        await self.health.set("", status)
        await self.health.set(SERVICE_NAME, status)

    _retry: asyncio.Task[None] | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def stop(self, grace: float = 5.0, drain: float = 0.0) -> None:
        """Graceful stop, the gRPC way: health NOT_SERVING, then the gRPC server stops, which
        sends every connection a GOAWAY at once (clients move new calls to other replicas; a call
        that crossed the GOAWAY was never started here and is retried transparently by the client)
        and stops listening, while calls already started run on, for at most ``grace`` seconds.
        Work still running then stops at its next stage boundary. ``drain``: seconds between
        NOT_SERVING and the GOAWAY, still serving (clients watching health move away first)."""
        if self._retry is not None:
            self._retry.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self.set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        if drain > 0:
            await asyncio.sleep(drain)
        stopped = asyncio.ensure_future(self.grpc_server.stop(grace))
        deadline = asyncio.get_running_loop().time() + grace
        while self.servicer.in_flight.count and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        if self.servicer.in_flight.count:
            log.warning("%d request(s) still in flight after the %.0f s grace period; stopping them", self.servicer.in_flight.count, grace)
            self.servicer.stopping.set()  # their work stops at its next stage boundary or loop check
        await stopped
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.state.close()


def connection_options(settings: Settings) -> list[tuple[str, int]]:
    """gRPC core channel arguments for connection age and keepalive (README, Scaling)."""
    ms = lambda seconds: int(round(seconds * 1000))  # noqa: E731
    options = [
        ("grpc.keepalive_time_ms", ms(settings.keepalive_time_seconds)),
        ("grpc.keepalive_timeout_ms", ms(settings.keepalive_timeout_seconds)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", ms(settings.min_client_ping_interval_seconds)),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    if settings.max_connection_age_seconds > 0:
        options += [
            ("grpc.max_connection_age_ms", ms(settings.max_connection_age_seconds)),
            ("grpc.max_connection_age_grace_ms", ms(settings.max_connection_age_grace_seconds)),
        ]
    return options


def create_server(settings: Settings, registry: CollectorRegistry | None = None) -> Server:
    """Build the server bound to ``settings.host:settings.port`` (port 0 = a free one)."""
    metrics = Metrics(registry if registry is not None else CollectorRegistry())
    state = ServiceState(settings, metrics)
    executor = ThreadPoolExecutor(settings.worker_threads, thread_name_prefix="wsss-worker")
    limits = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        *connection_options(settings),
    ]
    tokens = settings.bearer_tokens()
    interceptors = [BearerTokenInterceptor(tokens, admin_tokens=settings.admin_token_set())]  # also guards the admin service
    server = grpc.aio.server(options=limits, interceptors=interceptors)
    servicer = SegmentationServicer(state, metrics, executor)
    add_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()

    async def after_admin_load() -> None:  # SERVING, also when the first load had failed
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    pb_grpc.add_ModelRepositoryServiceServicer_to_server(ModelRepositoryServicer(state, executor, after_admin_load), server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, ADMIN_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    credentials = server_credentials(settings)
    address = f"{settings.host}:{settings.port}"
    port = server.add_secure_port(address, credentials) if credentials is not None else server.add_insecure_port(address)
    log.info("gRPC on %s: %s, authentication %s, admin %s", address, "mutual TLS" if settings.tls_client_ca else "TLS" if credentials else "plaintext",
             f"on ({len(tokens)} token(s))" if tokens else "off", f"on ({len(settings.admin_token_set())} token(s))" if settings.admin_token_set() else "off")
    if port == 0:
        raise RuntimeError(f"could not bind {settings.host}:{settings.port}")
    return Server(server, port, state, health_servicer, metrics, executor, servicer)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT: health goes NOT_SERVING, in-flight calls get a grace period."""
    registry = CollectorRegistry()
    server = create_server(settings, registry)
    if settings.metrics_enabled:
        http, _ = start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
        log.info("Prometheus metrics on http://%s:%d/metrics", settings.metrics_host, http.server_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    await stop.wait()
    log.info("shutting down: in-flight requests get %.0f s", settings.shutdown_grace_seconds)
    await server.stop(grace=settings.shutdown_grace_seconds, drain=settings.shutdown_drain_seconds)
    log.info("stopped")
