"""``wsss.v1.SegmentationService``: each method converts, hands off to the pipeline off the event loop, converts back."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import TypeVar

import grpc

from service.api import converters
from service.api.errors import status_of
from service.api.state import ServiceState
from service.errors import ModelNotReady, Overloaded
from service.metrics import Metrics
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")


class InFlight:
    """Bounded count of requests in progress: beyond ``limit`` a new one fails at once; while
    ``draining`` (shutting down) every new one fails with UNAVAILABLE."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit = limit
        self.count = 0
        self.metrics = metrics
        self.draining = False

    def __enter__(self) -> None:
        if self.draining:
            raise ModelNotReady("server is shutting down; retry on another replica")
        if self.count >= self.limit:
            raise Overloaded(f"server is at its limit of {self.limit} requests in flight; retry with backoff")
        self.count += 1
        self.metrics.in_flight.inc()

    def __exit__(self, *exc: object) -> None:
        self.count -= 1
        self.metrics.in_flight.dec()


class SegmentationServicer(pb_grpc.SegmentationServiceServicer):
    """The API. Work runs in ``executor``; a cancelled call or a passed deadline stops it between stages."""

    def __init__(self, state: ServiceState, metrics: Metrics, executor: Executor) -> None:
        self.state = state
        self.metrics = metrics
        self.executor = executor
        self.in_flight = InFlight(state.settings.max_in_flight, metrics)

    async def _run(self, context: grpc.aio.ServicerContext, work: Callable[[Callable[[], bool]], T]) -> T:
        """Run ``work(should_stop)`` in the executor; should_stop turns True on cancel or deadline."""
        stop = threading.Event()
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining

        def should_stop() -> bool:
            return stop.is_set() or (deadline is not None and time.monotonic() > deadline)

        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, work, should_stop)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            stop.set()
            raise

    async def _unary(self, rpc: str, context: grpc.aio.ServicerContext, work: Callable[[Callable[[], bool]], T]) -> T:
        start = time.perf_counter()

        def record(code: grpc.StatusCode) -> None:
            self.metrics.requests.labels(rpc, code.name).inc()
            self.metrics.latency.labels(rpc).observe(time.perf_counter() - start)

        try:
            with self.in_flight:
                result = await self._run(context, work)
        except asyncio.CancelledError:
            record(grpc.StatusCode.CANCELLED)
            raise
        except Exception as exc:
            code, message = status_of(exc)
            record(code)  # before abort, so the metric is there when the caller sees the status
            await context.abort(code, message)
            raise  # abort raises; keeps type checkers content
        record(grpc.StatusCode.OK)
        return result

    def _segment(self, request: pb.SegmentRequest, should_stop: Callable[[], bool]) -> pb.SegmentResponse:
        """Decode, run the pipeline, encode (in a worker thread)."""
        segmenter = self.state.require_segmenter()
        settings = self.state.settings
        data = converters.segment_input(request, len(segmenter.classes), settings.max_image_pixels, settings.max_image_side)
        result = segmenter.segment(data, should_stop)
        self.metrics.observe_stages(result.timings)
        return converters.segment_response(request.id, result, segmenter.classes)

    def _predict(self, request: pb.PredictRequest, should_stop: Callable[[], bool]) -> pb.PredictResponse:
        predictor = self.state.require_predictor()
        settings = self.state.settings
        image = converters.decode_image(request.image, settings.max_image_pixels, settings.max_image_side)
        result = predictor.predict(image, converters.mask_formats(request.mask_formats), should_stop)
        self.metrics.observe_stages(result.timings)
        return converters.predict_response(request.id, result)

    async def Segment(self, request: pb.SegmentRequest, context: grpc.aio.ServicerContext) -> pb.SegmentResponse:
        return await self._unary("Segment", context, lambda stop: self._segment(request, stop))

    async def Predict(self, request: pb.PredictRequest, context: grpc.aio.ServicerContext) -> pb.PredictResponse:
        return await self._unary("Predict", context, lambda stop: self._predict(request, stop))

    async def ListModels(self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
        def work(_: Callable[[], bool]) -> pb.ListModelsResponse:
            models = self.state.require_backend().models()
            return pb.ListModelsResponse(models=[converters.model_info(m) for _, m in sorted(models.items())])

        return await self._unary("ListModels", context, work)

    async def SegmentStream(
        self, request_iterator: AsyncIterator[pb.SegmentRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SegmentResponse]:
        """One response per request, in order; a failed item carries ``error`` and the stream goes on."""
        async for request in request_iterator:
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                with self.in_flight:
                    response = await self._run(context, functools.partial(self._segment, request))
            except asyncio.CancelledError:
                self.metrics.requests.labels("SegmentStream", "CANCELLED").inc()
                raise
            except Exception as exc:
                code, message = status_of(exc)
                response = pb.SegmentResponse(id=request.id, error=pb.ItemError(code=code.value[0], code_name=code.name, message=message))
            self.metrics.requests.labels("SegmentStream", code.name).inc()
            self.metrics.latency.labels("SegmentStream").observe(time.perf_counter() - start)
            yield response
