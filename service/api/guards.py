"""What keeps one caller from taking the service down: admission by work in progress, requests
that could not be decoded, and a health watch that gives up on a process that can no longer serve."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message

from service.errors import InvalidInput, ModelRepositoryError, Overloaded, WsssError
from service.metrics import Metrics

log = logging.getLogger(__name__)


class InFlight:
    """Bounded count of requests whose work has not stopped: beyond ``limit`` a new one fails at
    once. A slot is
    released when the work stops, not when the call ends (a cancelled call's worker may run on
    until its next stage boundary)."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit = limit
        self.count = 0
        self.metrics = metrics

    def acquire(self) -> None:
        """Take a slot (call on the event loop).

        Raises:
            Overloaded: ``limit`` requests are in progress.
        """
        if self.count >= self.limit:
            raise Overloaded(f"server is at its limit of {self.limit} requests in flight; retry with backoff")
        self.count += 1
        self.metrics.in_flight.inc()

    def release(self) -> None:
        self.count -= 1
        self.metrics.in_flight.dec()


@dataclass(frozen=True)
class Undecodable:
    """A request message whose bytes are not a valid protobuf of ``message_type``."""

    message_type: str
    reason: str

    def error(self) -> InvalidInput:
        return InvalidInput(f"request is not a valid {self.message_type} protobuf message: {self.reason}")


def tolerant_deserializer(message_class: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    """A request deserializer that returns ``Undecodable`` instead of raising, so the servicer can
    answer INVALID_ARGUMENT (grpc answers UNKNOWN for a deserializer's exception, and one bad item
    would end a whole stream)."""
    full_name = message_class.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Message | Undecodable:
        try:
            return message_class.FromString(data)
        except (DecodeError, RuntimeWarning, ValueError) as exc:
            return Undecodable(full_name, str(exc)[:200] or type(exc).__name__)

    return deserialize


class HealthWatch:
    """Counts failures that are not the caller's; calls ``on_unhealthy`` once, with the reason,
    after ``limit`` of them in a row (no success between) or at once on MemoryError.

    ``on_unhealthy`` turns health NOT_SERVING so the orchestrator restarts the process instead of
    it answering INTERNAL forever while SERVING.
    """

    def __init__(self, limit: int, on_unhealthy: Callable[[str], None] | None = None) -> None:
        self.limit = limit
        self.on_unhealthy = on_unhealthy
        self.failures = 0
        self.unhealthy_reason: str | None = None

    @staticmethod
    def counts(exc: BaseException) -> bool:
        """Whether ``exc`` says something about the process rather than the request."""
        return isinstance(exc, ModelRepositoryError) or not isinstance(exc, WsssError)

    def success(self) -> None:
        self.failures = 0

    def failure(self, exc: BaseException) -> None:
        if not self.counts(exc):
            return
        self.failures += 1
        if isinstance(exc, MemoryError):
            self._give_up(f"out of memory ({type(exc).__name__})")
        elif self.failures >= self.limit:
            self._give_up(f"{self.failures} internal errors in a row, the last {type(exc).__name__}: {str(exc)[:200]}")

    def _give_up(self, reason: str) -> None:
        if self.unhealthy_reason is not None:
            return
        self.unhealthy_reason = reason
        log.error("health NOT_SERVING: this process can no longer serve (%s); the orchestrator should restart it", reason)
        if self.on_unhealthy is not None:
            self.on_unhealthy(reason)


class MemoryBudget:
    """The estimated working memory of the requests whose work has not stopped, bounded by
    ``limit`` bytes: a request that does not fit waits (on the event loop) until earlier ones
    stop. Small requests run side by side and pass large ones that wait (a small request never
    queues behind a large one); large ones take turns, in order, so concurrent large images cannot
    add up past what the process may use. Under a steady load of small requests a large one may
    wait until its deadline: it is the large one that is refused, never the small ones."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, nbytes: int) -> int:
        """Wait until ``nbytes`` (at most ``limit``) fit; returns the bytes taken, for ``release``."""
        nbytes = min(max(nbytes, 0), self.limit)
        if self.used + nbytes <= self.limit:
            self.used += nbytes
            return nbytes
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((nbytes, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(nbytes)  # granted just as the caller left
            else:  # leaving frees no budget: nothing else to grant
                self._waiters = deque(w for w in self._waiters if w[1] is not granted)
            raise
        return nbytes

    def release(self, nbytes: int) -> None:
        self.used -= nbytes
        self._grant()

    def _grant(self) -> None:
        waiting: deque[tuple[int, asyncio.Future[None]]] = deque()
        for nbytes, granted in self._waiters:
            if granted.done():
                continue
            if self.used + nbytes <= self.limit:
                self.used += nbytes
                granted.set_result(None)
            else:
                waiting.append((nbytes, granted))
        self._waiters = waiting
