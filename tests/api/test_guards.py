"""Admission, undecodable requests and the health watch, without a server."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from service.api.guards import HealthWatch, InFlight, MemoryBudget, Undecodable, tolerant_deserializer
from service.errors import InvalidInput, ModelRepositoryError, Overloaded
from service.metrics import Metrics
from wsss.v1 import segmentation_pb2 as pb


def test_in_flight_counts_until_released() -> None:
    slots = InFlight(2, Metrics(CollectorRegistry()))
    slots.acquire()
    slots.acquire()
    with pytest.raises(Overloaded, match="limit of 2 requests"):
        slots.acquire()
    slots.release()
    slots.acquire()
    assert slots.count == 2


def test_tolerant_deserializer() -> None:
    parse = tolerant_deserializer(pb.SegmentRequest)
    assert parse(pb.SegmentRequest(id="x").SerializeToString()) == pb.SegmentRequest(id="x")
    bad = parse(b"\xff\xff")
    assert isinstance(bad, Undecodable) and bad.message_type == "wsss.v1.SegmentRequest"
    assert isinstance(bad.error(), InvalidInput)


def test_health_watch() -> None:
    reasons: list[str] = []
    watch = HealthWatch(3, reasons.append)
    for _ in range(10):
        watch.failure(InvalidInput("the caller's fault"))  # never counts
    watch.failure(RuntimeError("a"))
    watch.failure(ModelRepositoryError("b"))
    watch.success()
    watch.failure(RuntimeError("c"))
    watch.failure(RuntimeError("d"))
    assert reasons == []
    watch.failure(RuntimeError("e"))
    watch.failure(RuntimeError("f"))
    assert len(reasons) == 1 and "3 internal errors in a row" in reasons[0] and "RuntimeError: e" in reasons[0]
    oom: list[str] = []
    HealthWatch(5, oom.append).failure(MemoryError())
    assert oom == ["out of memory (MemoryError)"]


def test_memory_budget_lets_small_requests_share_and_large_ones_take_turns() -> None:
    async def scenario() -> None:
        budget = MemoryBudget(100)
        assert await budget.acquire(30) == 30 and await budget.acquire(30) == 30
        large = asyncio.ensure_future(budget.acquire(80))
        larger = asyncio.ensure_future(budget.acquire(90))
        await asyncio.sleep(0.01)
        assert not large.done() and budget.used == 60
        assert await budget.acquire(10) == 10  # a small one passes the large ones waiting
        budget.release(10)
        budget.release(30)
        await asyncio.sleep(0.01)
        assert not large.done()
        budget.release(30)
        await asyncio.sleep(0.01)
        assert large.result() == 80 and not larger.done() and budget.used == 80
        budget.release(80)
        await asyncio.sleep(0.01)
        assert larger.result() == 90 and budget.used == 90
        gone = asyncio.ensure_future(budget.acquire(50))
        await asyncio.sleep(0.01)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert budget.used == 90 and not budget._waiters
        budget.release(90)
        assert await budget.acquire(10**9) == 100 and budget.used == 100  # clamped to the limit

    asyncio.run(scenario())
