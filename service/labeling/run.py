"""Send a run's items through SegmentStream: a bounded window in flight, retries with backoff,
every finished image journaled, the outputs rebuilt from the journal however the run ends.

Per item: an answer with error UNAVAILABLE or RESOURCE_EXHAUSTED is sent again later (up to
``retries`` times, backoff doubling from ``backoff`` seconds, at most 8 s); any other error is
recorded and the run goes on. Per stream: when the stream itself fails (server gone, restarting,
overloaded) the unanswered items go back to the head of the queue and a new stream starts after a
backoff; after ``retries`` failures in a row without an answer in between the run stops, keeping
what is done. Ctrl-C cancels the stream and keeps what is done. A re-run sends only what is not
done (``journal``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from tqdm import tqdm

from service.labeling import coco_out, review_page
from service.labeling.inputs import Item
from service.labeling.journal import Journal
from service.labeling.outputs import empty_entry, error_entry, ok_entry
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc

RETRIABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
RETRIABLE_NAMES = {c.name for c in RETRIABLE}
MAX_BACKOFF_S = 8.0
OPTIONS = pb.SegmentOptions(mask_formats=[pb.MASK_FORMAT_PNG, pb.MASK_FORMAT_COCO_RLE, pb.MASK_FORMAT_CONFIDENCE])


class ServerLost(RuntimeError):
    """The stream failed ``retries`` times in a row without an answer."""


@dataclass
class Report:
    """How a run went. ``sent``: requests the server received in this run (retries included)."""

    total: int
    skipped: int = 0
    ok: int = 0
    known_empty: int = 0
    failed: int = 0
    sent: int = 0
    seconds: float = 0.0
    stopped: str = ""
    outputs: list[str] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return (self.ok + self.failed) / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Task:
    item: Item
    input_hash: str
    attempts: int = 0
    not_before: float = 0.0


class _Window:
    """Items waiting to be sent and items sent whose answer has not come (in sending order)."""

    def __init__(self, tasks: Sequence[_Task], size: int, options: pb.SegmentOptions = OPTIONS, model_set: str = "") -> None:
        self.options = options
        self.model_set = model_set
        self.cond = threading.Condition()
        self.waiting: deque[_Task] = deque(tasks)
        self.in_flight: deque[_Task] = deque()
        self.size = max(1, size)
        self.closed = False
        self.sent = 0

    def pending(self) -> bool:
        with self.cond:
            return bool(self.waiting or self.in_flight)

    def _next_ready(self) -> _Task | None:
        now = time.monotonic()
        for i, task in enumerate(self.waiting):
            if task.not_before <= now:
                del self.waiting[i]
                return task
        return None

    def requests(self, stream_seconds: float = 0.0) -> Iterator[pb.SegmentRequest]:
        """One stream's requests: at most ``size`` unanswered; ends when everything is answered
        (the stream half-closes), when ``stream_seconds`` have passed and its answers are in (the
        next stream starts on a fresh connection: it follows the server's connection age and
        spreads a long run over replicas), or when the window is closed (the stream failed or was
        cancelled)."""
        until = time.monotonic() + stream_seconds if stream_seconds > 0 else float("inf")
        while True:
            with self.cond:
                while True:
                    rotate = time.monotonic() >= until
                    if self.closed or not (self.waiting or self.in_flight) or (rotate and not self.in_flight):
                        return
                    task = self._next_ready() if len(self.in_flight) < self.size and not rotate else None
                    if task is not None:
                        self.in_flight.append(task)
                        self.sent += 1
                        break
                    self.cond.wait(timeout=0.2)
            item = task.item
            yield pb.SegmentRequest(id=item.name, image=pb.Image(encoded=item.path.read_bytes()),
                                    labels=item.labels if item.labels is not None else pb.WeakLabels(), options=self.options,
                                    model_set=self.model_set)

    def answered(self) -> _Task:
        with self.cond:
            task = self.in_flight.popleft()
            self.cond.notify_all()
            return task

    def retry_later(self, task: _Task, backoff: float) -> None:
        with self.cond:
            task.attempts += 1
            task.not_before = time.monotonic() + min(MAX_BACKOFF_S, backoff * 2 ** (task.attempts - 1))
            self.waiting.append(task)
            self.cond.notify_all()

    def open(self) -> None:
        with self.cond:
            self.closed = False

    def close(self) -> None:
        """Stop the current stream's requests; unanswered items go back to the head of the queue."""
        with self.cond:
            self.closed = True
            self.waiting.extendleft(reversed(self.in_flight))
            self.in_flight.clear()
            self.cond.notify_all()


def _finish(out: Path, journal: Journal, items: Sequence[Item], hashes: dict[str, str], classes: Sequence[str], title: str) -> list[str]:
    """annotations.json and review.html from the journal entries of this input (current hashes only).

    The journal is read back from disk: a Ctrl-C can land after an entry's line is on disk but
    before ``Journal.append`` records it in memory, and the outputs must agree with the file a
    re-run reads."""
    journal = Journal(journal.out)
    entries = [e for e in journal.finished([i.name for i in items]) if e.get("input_sha256") == hashes[e["image"]]]
    return [str(coco_out.write(out, entries, classes)), str(review_page.write(out, entries, classes, title))]


def label(
    stub: pb_grpc.SegmentationServiceStub, items: Sequence[Item], out: Path, classes: Sequence[str], *, window: int = 4,
    retries: int = 5, backoff: float = 0.5, title: str = "", progress: bool = True, stream_seconds: float = 20.0, model_set: str = "",
) -> Report:
    """Label ``items`` into ``out``; returns the report (``stopped`` says why a run ended early).

    ``stream_seconds``: a stream is ended (once its answers are in) and a new one opened after this
    long, below the server's WSSS_MAX_CONNECTION_AGE_GRACE_SECONDS, so an aged connection never
    cuts a stream short; 0 = one stream for the whole run.

    Raises:
        KeyboardInterrupt: after the outputs are written (Ctrl-C).
        grpc.RpcError: a stream error no retry can mend (e.g. UNAUTHENTICATED), after the outputs are written.
    """
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    journal = Journal(out)
    hashes = {i.name: i.input_hash(OPTIONS, model_set) for i in items}
    report = Report(total=len(items))
    todo = [i for i in items if not journal.done(i.name, hashes[i.name])]
    report.skipped = len(items) - len(todo)
    bar = tqdm(total=len(todo), unit="img", desc="label", disable=not progress or not todo)
    try:
        for item in (i for i in todo if i.known_empty):
            journal.append(empty_entry(out, item, hashes[item.name]))
            report.known_empty += 1
            bar.update()
        win = _Window([_Task(i, hashes[i.name]) for i in todo if not i.known_empty], window, OPTIONS, model_set)
        failures_in_a_row = 0
        while win.pending():
            win.open()
            call = stub.SegmentStream(win.requests(stream_seconds))
            try:
                for resp in call:
                    task = win.answered()
                    failures_in_a_row = 0
                    if resp.id != task.item.name:
                        raise RuntimeError(f"answer for {resp.id!r} where {task.item.name!r} was expected (the stream answers in order)")
                    if resp.HasField("error"):
                        if resp.error.code_name in RETRIABLE_NAMES and task.attempts < retries:
                            win.retry_later(task, backoff)
                            continue
                        journal.append(error_entry(task.item, task.input_hash, resp.error.code_name, resp.error.message))
                        report.failed += 1
                        tqdm.write(f"{task.item.name}: {resp.error.code_name}: {resp.error.message}")
                    else:
                        journal.append(ok_entry(out, task.item, task.input_hash, resp))
                        report.ok += 1
                    bar.update()
                if win.in_flight:  # the server ended the stream without answering everything
                    failures_in_a_row += 1
                    if failures_in_a_row > retries:
                        report.stopped = f"the server ended {retries + 1} streams in a row without answering"
                        break
            except grpc.RpcError as err:
                win.close()
                code = err.code()  # type: ignore[attr-defined]
                if code not in RETRIABLE + (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                    raise
                failures_in_a_row += 1
                if failures_in_a_row > retries:
                    report.stopped = f"the server did not answer after {retries} retries ({code.name}: {err.details()})"  # type: ignore[attr-defined]
                    break
                wait = min(MAX_BACKOFF_S, backoff * 2 ** (failures_in_a_row - 1))
                tqdm.write(f"stream failed ({code.name}: {err.details()}); retrying in {wait:.1f} s")  # type: ignore[attr-defined]
                time.sleep(wait)
            except BaseException:
                call.cancel()
                win.close()
                raise
            finally:
                win.close()
                report.sent = win.sent
    finally:
        bar.close()
        report.seconds = time.perf_counter() - start
        report.outputs = _finish(out, journal, items, hashes, classes, title or str(out))
    return report
