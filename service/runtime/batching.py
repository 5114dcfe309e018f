"""Micro-batching across concurrent requests, in front of any inference backend.

Calls to a batched model wait up to ``max_delay`` seconds for others with the same input shapes
(apart from the batch axis); up to ``max_batch`` items run as one inference, and each caller gets
its own slice of the outputs. A call that is alone (no other call of the model under way) does
not wait, so a lone request pays no delay. Calls to other models pass straight through.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from service.runtime.backend import InferenceBackend, LoadedModel, Tensor, host_arrays

Arrays = dict[str, npt.NDArray[np.generic]]


@dataclass
class _Pending:
    inputs: Mapping[str, npt.NDArray[np.generic]]
    size: int
    done: threading.Event = field(default_factory=threading.Event)
    result: Arrays | None = None
    error: BaseException | None = None


def _key(model: str, inputs: Mapping[str, npt.NDArray[np.generic]], wanted: tuple[str, ...] | None) -> tuple[object, ...]:
    """Calls that can share a batch: same model, same item shapes and dtypes, same outputs wanted."""
    return (model, wanted) + tuple(sorted((k, v.shape[1:], v.dtype.str) for k, v in inputs.items()))


class BatchingBackend:
    """Wraps ``backend``; ``models`` are micro-batched (their first input axis must be the batch).

    Args:
        backend: the backend doing the work.
        models: names of the models to batch (the classifier and DeepLab).
        max_batch: most items in one inference.
        max_delay: seconds the first call of a batch waits for company.
        observer: called with each executed batch's (model, number of items).
    """

    def __init__(self, backend: InferenceBackend, models: set[str], max_batch: int = 8, max_delay: float = 0.004,
                 observer: Callable[[str, int], None] | None = None) -> None:
        self.backend = backend
        self.batched = set(models)
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.observer = observer
        self._lock = threading.Lock()
        self._queues: dict[tuple[object, ...], list[_Pending]] = {}
        self._active: dict[str, int] = {}

    def load(self, names: list[str]) -> None:
        self.backend.load(names)

    def models(self) -> dict[str, LoadedModel]:
        return self.backend.models()

    def close(self) -> None:
        self.backend.close()

    def infer(
        self, model: str, inputs: Mapping[str, Tensor], keep_on_device: frozenset[str] = frozenset(), outputs: Sequence[str] | None = None
    ) -> dict[str, Tensor]:
        if model not in self.batched or self.max_batch <= 1 or keep_on_device:
            return self.backend.infer(model, inputs, keep_on_device, outputs)
        arrays = host_arrays(inputs)
        sizes = {v.shape[0] for v in arrays.values() if v.ndim > 0}
        if len(sizes) != 1:
            return self.backend.infer(model, arrays, outputs=outputs)
        item = _Pending(arrays, sizes.pop())
        wanted = None if outputs is None else tuple(outputs)
        key = _key(model, arrays, wanted)
        with self._lock:
            queue = self._queues.setdefault(key, [])
            queue.append(item)
            leader = len(queue) == 1
            self._active[model] = self._active.get(model, 0) + 1
            alone = self._active[model] == 1
        try:
            return self._infer_batched(model, key, item, leader, alone, wanted)
        finally:
            with self._lock:
                self._active[model] -= 1

    def _infer_batched(
        self, model: str, key: tuple[object, ...], item: _Pending, leader: bool, alone: bool, wanted: tuple[str, ...] | None
    ) -> dict[str, Tensor]:
        if leader:
            deadline = time.monotonic() + (0.0 if alone else self.max_delay)
            while time.monotonic() < deadline:
                with self._lock:
                    if sum(p.size for p in self._queues[key]) >= self.max_batch:
                        break
                time.sleep(self.max_delay / 8)
            while True:  # the leader runs batches until its queue is empty
                with self._lock:
                    queue = self._queues[key]
                    batch: list[_Pending] = []
                    total = 0
                    for p in queue:
                        if batch and total + p.size > self.max_batch:
                            break
                        batch.append(p)
                        total += p.size
                    del queue[: len(batch)]
                    if not queue:
                        del self._queues[key]
                self._run(model, batch, wanted)
                if not queue:
                    break
        item.done.wait()
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return dict(item.result)

    def _run(self, model: str, batch: list[_Pending], wanted: tuple[str, ...] | None) -> None:
        if not batch:
            return
        try:
            if len(batch) == 1:
                results = [host_arrays(self.backend.infer(model, batch[0].inputs, outputs=wanted))]
            else:
                names = list(batch[0].inputs)
                merged = {n: np.concatenate([p.inputs[n] for p in batch], axis=0) for n in names}
                out = host_arrays(self.backend.infer(model, merged, outputs=wanted))
                results, start = [], 0
                for p in batch:
                    results.append({k: v[start : start + p.size] for k, v in out.items()})
                    start += p.size
            if self.observer is not None:
                self.observer(model, sum(p.size for p in batch))
            for p, res in zip(batch, results):
                p.result = res
        except BaseException as exc:  # every waiting caller gets the failure
            for p in batch:
                p.error = exc
        finally:
            for p in batch:
                p.done.set()
