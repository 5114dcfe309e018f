"""Micro-batching: concurrent calls share inferences, every caller gets exactly its own outputs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from service.runtime import ModelRepository
from service.runtime.batching import BatchingBackend
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend
from tests.onnx_builders import identity_model

CONFIG = """name: "m"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "image" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] } ]
output [ { name: "logits" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] } ]
"""


class Recording(OnnxRuntimeBackend):
    """The real ONNX Runtime backend, recording the batch size of each inference."""

    def __init__(self, repo: ModelRepository) -> None:
        super().__init__(repo, "CPUExecutionProvider")
        self.batches: list[int] = []
        self.fail = False
        self.delay = 0.0

    def infer(self, model, inputs, keep_on_device=frozenset(), outputs=None):  # type: ignore[no-untyped-def]
        self.batches.append(len(next(iter(inputs.values()))))
        if self.fail:
            raise RuntimeError("backend failed")
        time.sleep(self.delay)
        return super().infer(model, inputs, keep_on_device, outputs)


@pytest.fixture()
def recording(tmp_path: Path) -> Recording:
    identity_model(tmp_path / "m" / "1" / "model.onnx")
    (tmp_path / "m" / "config.pbtxt").write_text(CONFIG)
    backend = Recording(ModelRepository(tmp_path))
    backend.load(["m"])
    return backend


def _concurrent(batcher: BatchingBackend, shapes: list[tuple[int, ...]]) -> list[tuple[np.ndarray, dict[str, np.ndarray] | BaseException]]:
    barrier = threading.Barrier(len(shapes))
    results: list[tuple[np.ndarray, dict[str, np.ndarray] | BaseException]] = [None] * len(shapes)  # type: ignore[list-item]

    def call(i: int) -> None:
        x = np.random.default_rng(i).standard_normal(shapes[i]).astype(np.float32)
        barrier.wait()
        try:
            results[i] = (x, batcher.infer("m", {"image": x}))
        except BaseException as exc:  # noqa: BLE001
            results[i] = (x, exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(shapes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_concurrent_calls_are_batched_and_split_back(recording: Recording) -> None:
    sizes: list[tuple[str, int]] = []
    recording.delay = 0.1  # a model slow enough that the calls arriving meanwhile queue up (not a race against microseconds)
    batcher = BatchingBackend(recording, {"m"}, max_batch=8, max_delay=0.05, observer=lambda m, n: sizes.append((m, n)))
    results = _concurrent(batcher, [(1, 3, 8, 8)] * 6 + [(2, 3, 8, 8)] * 2)
    for x, out in results:
        assert isinstance(out, dict)
        np.testing.assert_array_equal(out["logits"], x)
    assert sum(recording.batches) == 10 and len(recording.batches) < 8
    assert max(recording.batches) > 1 and max(recording.batches) <= 8
    assert sum(n for _, n in sizes) == 10


def test_shapes_are_never_mixed(recording: Recording) -> None:
    batcher = BatchingBackend(recording, {"m"}, max_batch=8, max_delay=0.05)
    results = _concurrent(batcher, [(1, 3, 8, 8), (1, 3, 8, 8), (1, 3, 16, 8), (1, 3, 16, 8)])
    for x, out in results:
        assert isinstance(out, dict)
        np.testing.assert_array_equal(out["logits"], x)


def test_a_failure_reaches_every_caller_of_the_batch(recording: Recording) -> None:
    recording.fail = True
    batcher = BatchingBackend(recording, {"m"}, max_batch=8, max_delay=0.05)
    results = _concurrent(batcher, [(1, 3, 4, 4)] * 4)
    assert all(isinstance(out, RuntimeError) for _, out in results)


def test_unbatched_models_and_size_one_pass_through(recording: Recording) -> None:
    x = np.ones((1, 3, 4, 4), np.float32)
    np.testing.assert_array_equal(BatchingBackend(recording, set(), 8).infer("m", {"image": x})["logits"], x)
    np.testing.assert_array_equal(BatchingBackend(recording, {"m"}, 1).infer("m", {"image": x})["logits"], x)
    assert recording.batches == [1, 1]


def test_calls_wanting_other_outputs_get_exactly_theirs() -> None:
    """DeepLab's in-graph labels + confidence and its logits, asked for by concurrent calls: each gets
    only what it asked for, its own rows, and the labels are its logits' argmax."""
    from tests.conftest import DEFAULT_REPO

    inner = OnnxRuntimeBackend(ModelRepository(DEFAULT_REPO), "CPUExecutionProvider")
    inner.load(["deeplab"])
    batcher = BatchingBackend(inner, {"deeplab"}, max_batch=8, max_delay=0.05)
    images = [np.random.default_rng(i).integers(0, 256, (1, 32, 40, 3), dtype=np.uint8) for i in range(6)]
    wanted = [("labels", "confidence") if i % 2 else ("logits",) for i in range(6)]
    results: list[dict[str, np.ndarray]] = [{}] * 6
    barrier = threading.Barrier(6)

    def call(i: int) -> None:
        barrier.wait()
        results[i] = batcher.infer("deeplab", {"image": images[i]}, outputs=wanted[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for image, want, got in zip(images, wanted, results):
        assert set(got) == set(want)
        alone = inner.infer("deeplab", {"image": image})
        for name in want:
            np.testing.assert_allclose(got[name], alone[name], atol=1e-5)
        np.testing.assert_array_equal(alone["labels"], alone["logits"].argmax(1))
