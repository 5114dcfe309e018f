"""``wsss.v1.SegmentationService``: each method converts, hands off to the pipeline off the event loop, converts back."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Executor
from typing import TypeVar

import grpc

from service import malloc
from service.api import converters
from service.api.errors import status_of
from service.api.guards import HealthWatch, InFlight, MemoryBudget, Undecodable, tolerant_deserializer
from service.api.state import DEFAULT_SET, ServiceState
from service.errors import Cancelled, DeadlineExceeded, InvalidInput, WsssError
from service.metrics import Metrics
from service.pipeline.everything import EverythingOptions
from service.runtime.backend import LoadedModel
from service.runtime.model_repo import newest_first
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")


TRIM_AFTER_PIXELS = 1_000_000
"""After a request with an image at least this large, free heap goes back to the kernel
(``malloc.trim``); smaller requests keep it for the next one (``WSSS_KEEP_FREED_MEMORY``)."""


class SegmentationServicer(pb_grpc.SegmentationServiceServicer):
    """The API. Work runs in ``executor``; a cancelled call, a passed deadline or a server that is
    stopping stops it at the next stage boundary or inside a long loop; its admission slot is
    held until then."""

    def __init__(self, state: ServiceState, metrics: Metrics, executor: Executor) -> None:
        self.state = state
        self.metrics = metrics
        self.executor = executor
        self.in_flight = InFlight(state.settings.max_in_flight, metrics)
        self.memory = MemoryBudget(state.settings.max_working_bytes)
        self.health_watch = HealthWatch(state.settings.unhealthy_after_errors)
        self.last_finished = 0.0
        """time.monotonic() when the last request's work stopped."""
        self.stopping = threading.Event()
        """Set when the server gives up on the work still running (after the shutdown grace)."""
        name = state.settings.replica_name or f"{socket.gethostname()}:{os.getpid()}"
        self.replica_metadata = (("wsss-replica", name),)
        """Trailing metadata of every call: which replica answered."""

    async def _run(self, context: grpc.aio.ServicerContext, work: Callable[[Callable[[], bool]], T], working_bytes: int = 0) -> T:
        """Admit, wait for ``working_bytes`` of the memory budget, then run ``work(should_stop)`` in
        the executor; should_stop turns True on cancel, deadline or stop. The slot and the bytes
        are released when the work has stopped, not when the call ends."""
        self.in_flight.acquire()
        try:
            taken = await self.memory.acquire(working_bytes)
        except BaseException:
            self.in_flight.release()
            raise
        stop = threading.Event()
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining

        def should_stop() -> bool:
            return stop.is_set() or self.stopping.is_set() or (deadline is not None and time.monotonic() > deadline)

        def guarded() -> T:
            try:
                if should_stop():  # cancelled or expired while it queued for a worker
                    raise Cancelled("request cancelled or past its deadline before its work started")
                return work(should_stop)
            except Cancelled as exc:
                if deadline is not None and time.monotonic() > deadline and not isinstance(exc, DeadlineExceeded):
                    raise DeadlineExceeded(str(exc)) from exc
                raise

        def finished(fut: asyncio.Future[T]) -> None:
            self.in_flight.release()
            self.memory.release(taken)
            self.last_finished = time.monotonic()
            if not fut.cancelled():
                fut.exception()  # retrieved: an abandoned call's error is not logged as "never retrieved"

        future = asyncio.get_running_loop().run_in_executor(self.executor, guarded)
        future.add_done_callback(finished)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            stop.set()
            raise

    def _outcome(self, exc: BaseException | None) -> tuple[grpc.StatusCode, str]:
        """The status of a finished request, told to the health watch."""
        if exc is None:
            self.health_watch.success()
            return grpc.StatusCode.OK, ""
        self.health_watch.failure(exc)
        return status_of(exc)

    async def _unary(self, rpc: str, context: grpc.aio.ServicerContext, work: Callable[[Callable[[], bool]], T], working_bytes: int = 0) -> T:
        start = time.perf_counter()
        context.set_trailing_metadata(self.replica_metadata)

        def record(code: grpc.StatusCode) -> None:
            self.metrics.requests.labels(rpc, code.name).inc()
            self.metrics.latency.labels(rpc).observe(time.perf_counter() - start)

        try:
            result = await self._run(context, work, working_bytes)
        except asyncio.CancelledError:
            record(grpc.StatusCode.CANCELLED)
            raise
        except Exception as exc:
            code, message = self._outcome(exc)
            record(code)  # before abort, so the metric is there when the caller sees the status
            await context.abort(code, message)
            raise  # abort raises; keeps type checkers content
        self._outcome(None)
        record(grpc.StatusCode.OK)
        return result

    def _segment(self, request: pb.SegmentRequest | Undecodable, should_stop: Callable[[], bool]) -> pb.SegmentResponse:
        """Decode, run the pipeline, encode (in a worker thread)."""
        if isinstance(request, Undecodable):
            raise request.error()
        with self.state.acquire() as generation:  # the models this request started on, whatever a reload does meanwhile
            segmenter = self.state.require_segmenter(generation, request.model_set, request.model_version)
            settings = self.state.settings
            data = converters.segment_input(
                request, len(segmenter.classes), settings.max_image_pixels, settings.max_image_side, check=segmenter.check_budget
            )
            try:
                result = segmenter.segment(data, should_stop)
                self.metrics.observe_stages(result.timings)
                self.metrics.set_requests.labels("Segment", request.model_set or DEFAULT_SET, segmenter.classifier.version).inc()
                return converters.segment_response(request.id, result, segmenter.classes)
            finally:
                _trim_after(data.image.shape[0] * data.image.shape[1])

    def _predict(self, request: pb.PredictRequest | Undecodable, should_stop: Callable[[], bool]) -> pb.PredictResponse:
        if isinstance(request, Undecodable):
            raise request.error()
        with self.state.acquire() as generation:
            predictor = self.state.require_predictor(generation, request.model_set, request.model_version)
            settings = self.state.settings
            image = converters.decode_image(request.image, settings.max_image_pixels, settings.max_image_side, check=predictor.check_budget)
            try:
                result = predictor.predict(image, converters.mask_formats(request.mask_formats), should_stop)
                self.metrics.observe_stages(result.timings)
                self.metrics.set_requests.labels("Predict", request.model_set or DEFAULT_SET, result.model_version).inc()
                return converters.predict_response(request.id, result)
            finally:
                _trim_after(image.shape[0] * image.shape[1])

    def _everything(self, request: pb.SegmentEverythingRequest | Undecodable, should_stop: Callable[[], bool]) -> pb.SegmentEverythingResponse:
        if isinstance(request, Undecodable):
            raise request.error()
        with self.state.acquire() as generation:
            generator = self.state.require_everything(generation, request.model_set)
            settings = self.state.settings
            options = converters.everything_options(request.options, EverythingOptions())
            image = converters.decode_image(
                request.image, settings.max_image_pixels, settings.max_image_side, check=lambda h, w: generator.check_budget(h, w, options)
            )
            try:
                result = generator.run(image, options, should_stop)
                self.metrics.observe_stages(result.timings)
                return converters.everything_response(request.id, result)
            finally:
                _trim_after(image.shape[0] * image.shape[1])

    def _working_bytes(self, request: pb.SegmentRequest | pb.PredictRequest | pb.SegmentEverythingRequest | Undecodable) -> int:
        """The request's estimated working memory from its image's declared size (0 when unknown:
        such a request is refused before any real work)."""
        if isinstance(request, Undecodable) or not self.state.ready:
            return 0
        size = converters.declared_size(request.image)
        settings = self.state.settings
        if size is None or min(size) <= 0 or max(size) > settings.max_image_side or size[0] * size[1] > settings.max_image_pixels:
            return 0
        generation = self.state.generation
        try:
            model_set = generation.model_set(request.model_set) if generation is not None else None
        except WsssError:
            return 0  # refused before any real work
        if model_set is None:
            return 0
        if isinstance(request, pb.SegmentEverythingRequest):
            if model_set.everything is None:
                return 0
            try:
                options = converters.everything_options(request.options, EverythingOptions())
            except InvalidInput:
                return 0  # refused before any real work
            return model_set.everything.working_bytes(*size, options)
        pipeline = model_set.segmenter if isinstance(request, pb.SegmentRequest) else model_set.predictor
        return 0 if pipeline is None else pipeline.working_bytes(*size)

    async def Segment(self, request: pb.SegmentRequest | Undecodable, context: grpc.aio.ServicerContext) -> pb.SegmentResponse:
        return await self._unary("Segment", context, lambda stop: self._segment(request, stop), self._working_bytes(request))

    async def Predict(self, request: pb.PredictRequest | Undecodable, context: grpc.aio.ServicerContext) -> pb.PredictResponse:
        return await self._unary("Predict", context, lambda stop: self._predict(request, stop), self._working_bytes(request))

    async def SegmentEverything(
        self, request: pb.SegmentEverythingRequest | Undecodable, context: grpc.aio.ServicerContext
    ) -> pb.SegmentEverythingResponse:
        return await self._unary("SegmentEverything", context, lambda stop: self._everything(request, stop), self._working_bytes(request))

    async def ListModels(self, request: pb.ListModelsRequest | Undecodable, context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
        def work(_: Callable[[], bool]) -> pb.ListModelsResponse:
            if isinstance(request, Undecodable):
                raise request.error()
            with self.state.acquire() as generation:
                models = generation.backend.models()
                sets = [
                    pb.ModelSetInfo(name=s.label, classes=(s.segmenter or s.predictor).classes if (s.segmenter or s.predictor) else [],  # type: ignore[union-attr]
                                    models=s.models, versions={n: ",".join(served_versions_of(models, n)) for n in s.models.values() if n in models},
                                    predict_scales=s.predictor.scales if s.predictor else (), predict_flip=bool(s.predictor and s.predictor.flip))
                    for _, s in sorted(generation.sets.items())
                ]
                return pb.ListModelsResponse(models=[converters.model_info(m) for _, m in sorted(models.items())], model_sets=sets)

        return await self._unary("ListModels", context, work)

    async def SegmentStream(
        self, request_iterator: AsyncIterator[pb.SegmentRequest | Undecodable], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SegmentResponse]:
        """One response per request, in order; a failed item (an undecodable one too) carries
        ``error`` and the stream goes on."""
        context.set_trailing_metadata(self.replica_metadata)
        async for request in request_iterator:
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                response = await self._run(context, functools.partial(self._segment, request), self._working_bytes(request))
                self._outcome(None)
            except asyncio.CancelledError:
                self.metrics.requests.labels("SegmentStream", "CANCELLED").inc()
                raise
            except Exception as exc:
                code, message = self._outcome(exc)
                item_id = "" if isinstance(request, Undecodable) else request.id
                response = pb.SegmentResponse(id=item_id, error=pb.ItemError(code=code.value[0], code_name=code.name, message=message))
            self.metrics.requests.labels("SegmentStream", code.name).inc()
            self.metrics.latency.labels("SegmentStream").observe(time.perf_counter() - start)
            yield response


def served_versions_of(models: Mapping[str, LoadedModel], name: str) -> list[str]:
    """Versions of model ``name`` loaded (``name`` and its ``name@<v>`` keys), newest first."""
    versions = [m.version for key, m in models.items() if key == name or key.startswith(f"{name}@")]
    return newest_first(versions)


def _trim_after(pixels: int) -> None:
    if pixels >= TRIM_AFTER_PIXELS:
        malloc.trim()


def add_to_server(servicer: SegmentationServicer, server: grpc.aio.Server) -> None:
    """Register ``servicer`` like the generated ``add_SegmentationServiceServicer_to_server``, but
    with request deserializers that hand undecodable bytes to the servicer as ``Undecodable``."""
    handlers = {
        "Segment": grpc.unary_unary_rpc_method_handler(
            servicer.Segment, tolerant_deserializer(pb.SegmentRequest), pb.SegmentResponse.SerializeToString
        ),
        "SegmentStream": grpc.stream_stream_rpc_method_handler(
            servicer.SegmentStream, tolerant_deserializer(pb.SegmentRequest), pb.SegmentResponse.SerializeToString
        ),
        "Predict": grpc.unary_unary_rpc_method_handler(
            servicer.Predict, tolerant_deserializer(pb.PredictRequest), pb.PredictResponse.SerializeToString
        ),
        "SegmentEverything": grpc.unary_unary_rpc_method_handler(
            servicer.SegmentEverything, tolerant_deserializer(pb.SegmentEverythingRequest), pb.SegmentEverythingResponse.SerializeToString
        ),
        "ListModels": grpc.unary_unary_rpc_method_handler(
            servicer.ListModels, tolerant_deserializer(pb.ListModelsRequest), pb.ListModelsResponse.SerializeToString
        ),
    }
    missing = set(pb.DESCRIPTOR.services_by_name["SegmentationService"].methods_by_name) - set(handlers)
    if missing:
        raise RuntimeError(f"no handler for {sorted(missing)}")
    name = pb.DESCRIPTOR.services_by_name["SegmentationService"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
    server.add_registered_method_handlers(name, handlers)
