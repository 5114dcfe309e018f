"""Latency and throughput at concurrency 1, 4 and 16 through gRPC, next to the raw model compute
of the same requests, with and without micro-batching.

Raw: each request's model calls are recorded once (the pipeline run in process through a
recording backend), then replayed on plain ONNX Runtime sessions (same providers and session
options as the service; no pipeline, no gRPC) by the same number of client threads. A request's
raw latency is the time of its own ``session.run`` calls in order; Segment makes 6 of them
(classifier at 4 scales, encoder, decoder), Predict one. The service runs as its own process
(``python -m service``, default models and settings), so the clients do not share its GIL.

    .venv/bin/python bench/concurrency.py --n 48 --out bench/results/concurrency.json
    .venv/bin/python bench/concurrency.py --input raw   # pixels sent raw: no PNG decode on the server
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import png_bytes, start_server, write_report  # noqa: E402
from service.models.cam_classifier import CamClassifier  # noqa: E402
from service.models.deeplab import DeepLab  # noqa: E402
from service.models.sam import SamDecoder, SamEncoder  # noqa: E402
from service.pipeline.segment import PipelineConfig, Segmenter  # noqa: E402
from service.pipeline.types import SegmentInput, WeakLabels  # noqa: E402
from service.runtime import ModelRepository  # noqa: E402
from service.runtime.backend import LoadedModel, checked_inputs  # noqa: E402
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend, session_options  # noqa: E402
from service.settings import Settings  # noqa: E402
from training.synthetic import HELD_OUT_SEED, generate  # noqa: E402
from wsss.v1 import segmentation_pb2 as pb  # noqa: E402
from wsss.v1 import segmentation_pb2_grpc as pb_grpc  # noqa: E402

Feeds = dict[str, npt.NDArray[np.generic]]
Calls = list[tuple[str, Feeds]]
CONCURRENCY = (1, 4, 16)


class RecordingBackend:
    """An ONNX Runtime backend that also keeps every call's model name and feeds."""

    def __init__(self, inner: OnnxRuntimeBackend) -> None:
        self.inner = inner
        self.calls: Calls = []

    def load(self, names: list[str]) -> None:
        self.inner.load(names)

    def models(self) -> dict[str, LoadedModel]:
        return self.inner.models()

    def infer(self, model: str, inputs: Mapping[str, npt.NDArray[np.generic]]) -> dict[str, npt.NDArray[np.generic]]:
        self.calls.append((model, checked_inputs(model, self.inner.models()[model].inputs, inputs)))
        return self.inner.infer(model, inputs)

    def take(self) -> Calls:
        calls, self.calls = self.calls, []
        return calls


def record_calls(settings: Settings, images: list[np.ndarray], labels: list[list[str]]) -> tuple[list[Calls], list[Calls]]:
    """The model calls of Predict on each image and of Segment (image tags) on each labelled one."""
    backend = RecordingBackend(OnnxRuntimeBackend(ModelRepository(settings.model_repo), settings.providers))
    backend.load(["deeplab", "cam_classifier", "sam_encoder", "sam_decoder"])
    deeplab = DeepLab(backend)
    predict = []
    for im in images:
        deeplab.predict(im)
        predict.append(backend.take())
    segmenter = Segmenter(CamClassifier(backend), SamEncoder(backend), SamDecoder(backend), PipelineConfig())
    segment = []
    for im, tags in zip(images, labels):
        if tags:
            segmenter.segment(SegmentInput(image=im, labels=WeakLabels(image_labels=tuple(tags))))
            segment.append(backend.take())
    return predict, segment


def measure(call: Callable[[int], None], n: int, concurrency: int) -> dict[str, float]:
    """``call(i)`` for i in 0..n-1 from ``concurrency`` threads: latency percentiles and throughput."""
    latencies = [0.0] * n

    def timed(i: int) -> None:
        start = time.perf_counter()
        call(i)
        latencies[i] = time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(timed, range(n)))
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {
        "requests_per_second": round(n / wall, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def raw_figures(settings: Settings, calls: list[Calls], concurrency: int) -> dict[str, float]:
    """Replay the recorded calls on plain sessions (the service's session options)."""
    repo = ModelRepository(settings.model_repo)
    providers = OnnxRuntimeBackend(repo, settings.providers).providers
    options = session_options(settings.intra_op_threads, settings.inter_op_threads, settings.ort_allow_spinning)
    sessions = {name: ort.InferenceSession(str(repo.get(name).model_path), options, providers=providers)
                for name in {m for request in calls for m, _ in request}}

    def replay(i: int) -> None:
        for model, feeds in calls[i]:
            sessions[model].run(None, feeds)

    for i in range(min(3, len(calls))):
        replay(i)
    return measure(replay, len(calls), concurrency)


def service_figures(port: int, requests: list[object], rpc: str, concurrency: int) -> dict[str, float]:
    opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=opts) as channel:
        stub = pb_grpc.SegmentationServiceStub(channel)
        method = stub.Predict if rpc == "Predict" else stub.Segment
        for r in requests[:3]:
            method(r, timeout=120)
        return measure(lambda i: method(requests[i], timeout=120), len(requests), concurrency)


def image_message(image: np.ndarray, kind: str) -> pb.Image:
    if kind == "raw":
        h, w, c = image.shape
        return pb.Image(raw=pb.RawImage(data=image.tobytes(), height=h, width=w, channels=c))
    return pb.Image(encoded=png_bytes(image))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48, help="requests per measurement")
    parser.add_argument("--input", choices=("png", "raw"), default="png", help="how requests carry the image")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="WSSS_BATCH_MAX_SIZE values to run the service with")
    parser.add_argument("--out", default="bench/results/concurrency.json")
    args = parser.parse_args()
    settings = Settings()
    samples = [generate(HELD_OUT_SEED, i) for i in range(args.n)]
    images = [s.image for s in samples]
    predict_calls, segment_calls = record_calls(settings, images, [list(s.labels) for s in samples])
    requests: dict[str, list[object]] = {
        "Predict": [pb.PredictRequest(image=image_message(im, args.input)) for im in images],
        "Segment": [pb.SegmentRequest(image=image_message(s.image, args.input), labels=pb.WeakLabels(image_labels=s.labels))
                    for s in samples if s.labels],
    }
    calls = {"Predict": predict_calls, "Segment": segment_calls}
    report: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, onnxruntime {ort.__version__}",
        "date": time.strftime("%Y-%m-%d"),
        "requests": {rpc: f"{len(r)} held-out generator images, 256x256, image sent as {args.input}" for rpc, r in requests.items()},
        "raw": {rpc: {f"c{c}": raw_figures(settings, calls[rpc], c) for c in CONCURRENCY} for rpc in calls},
    }
    print("raw", report["raw"], flush=True)
    for batch in args.batch:
        proc, port = start_server(WSSS_BATCH_MAX_SIZE=str(batch))
        try:
            figures: dict[str, dict[str, dict[str, float]]] = {}
            for rpc, reqs in requests.items():
                figures[rpc] = {}
                for c in CONCURRENCY:
                    got = service_figures(port, reqs, rpc, c)
                    raw = report["raw"][rpc][f"c{c}"]  # type: ignore[index]
                    got["p50_vs_raw"] = round(got["p50_ms"] / raw["p50_ms"], 3)
                    got["throughput_vs_raw"] = round(got["requests_per_second"] / raw["requests_per_second"], 3)
                    figures[rpc][f"c{c}"] = got
                    print(f"batch {batch} {rpc} c{c}", got, flush=True)
            report[f"service_batch{batch}"] = figures
        finally:
            proc.terminate()
            proc.wait(30)
    write_report(report, args.out)


if __name__ == "__main__":
    main()
