"""Latency and throughput at concurrency 1, 4 and 16 through gRPC, next to the raw model compute
of the same requests, with and without micro-batching.

Raw: each request's model calls are recorded once (the pipeline run in process through a
recording backend), then replayed on plain ONNX Runtime sessions (same providers and session
options as the service; no pipeline, no gRPC) by the same number of client threads. A request's
raw latency is the time of its own ``session.run`` calls in order; Segment makes 6 of them
(classifier at 4 scales, encoder, decoder), Predict one. The service runs as its own process
(``python -m service``, default models and settings, embedding cache off), so the clients do not
share its GIL; one discarded pass over the requests warms it before anything is measured.

    .venv/bin/python bench/concurrency.py --n 48 --out bench/results/concurrency.json
    .venv/bin/python bench/concurrency.py --input raw   # pixels sent raw: no PNG decode on the server
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_seconds, png_bytes, start_server, write_report  # noqa: E402
from service.malloc import keep_freed_memory, limit_arenas  # noqa: E402
from service.models.cam_classifier import CamClassifier  # noqa: E402
from service.models.deeplab import DeepLab  # noqa: E402
from service.models.sam import SamDecoder, SamEncoder  # noqa: E402
from service.pipeline.segment import PipelineConfig, Segmenter  # noqa: E402
from service.pipeline.types import SegmentInput, WeakLabels  # noqa: E402
from service.runtime import ModelRepository  # noqa: E402
from service.runtime.backend import LoadedModel, Tensor, checked_inputs, host_arrays  # noqa: E402
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend, session_options  # noqa: E402
from service.settings import Settings  # noqa: E402
from training.synthetic import HELD_OUT_SEED, generate  # noqa: E402
from wsss.v1 import segmentation_pb2 as pb  # noqa: E402
from wsss.v1 import segmentation_pb2_grpc as pb_grpc  # noqa: E402

Feeds = dict[str, npt.NDArray[np.generic]]
Calls = list[tuple[str, Feeds, Sequence[str] | None]]
"""Per model call: model, feeds, the outputs asked for (None: all)."""
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

    def infer(
        self, model: str, inputs: Mapping[str, Tensor], keep_on_device: frozenset[str] = frozenset(), outputs: Sequence[str] | None = None
    ) -> dict[str, Tensor]:
        self.calls.append((model, host_arrays(checked_inputs(model, self.inner.models()[model].inputs, inputs)), outputs))
        return self.inner.infer(model, inputs, outputs=outputs)

    def close(self) -> None:
        self.inner.close()

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


class RawModels:
    """The recorded calls replayed on plain ONNX Runtime sessions (the service's session options)."""

    def __init__(self, settings: Settings, calls: dict[str, list[Calls]]) -> None:
        repo = ModelRepository(settings.model_repo)
        providers = OnnxRuntimeBackend(repo, settings.providers).providers
        options = session_options(settings.intra_op_threads, settings.inter_op_threads, settings.ort_allow_spinning)
        names = {m for requests in calls.values() for request in requests for m, _, _ in request}
        self.sessions = {name: ort.InferenceSession(str(repo.get(name).model_path), options, providers=providers) for name in names}
        self.calls = calls
        for rpc in calls:
            for i in range(min(3, len(calls[rpc]))):
                self.replay(rpc, i)

    def replay(self, rpc: str, i: int) -> None:
        for model, feeds, outputs in self.calls[rpc][i]:
            self.sessions[model].run(None if outputs is None else list(outputs), feeds)

    def figures(self, rpc: str, concurrency: int) -> dict[str, float]:
        n = len(self.calls[rpc])
        cpu = time.process_time()
        got = measure(lambda i: self.replay(rpc, i), n, concurrency)
        got["cpu_ms_per_request"] = round((time.process_time() - cpu) / n * 1000, 2)
        return got


def service_figures(stub: pb_grpc.SegmentationServiceStub, server_pid: int, requests: list[object], rpc: str, concurrency: int) -> dict[str, float]:
    """Client-side latency and throughput, and the CPU time each side spent per request (both
    share this machine's cores: the clients' CPU is CPU the server did not get)."""
    method = stub.Predict if rpc == "Predict" else stub.Segment
    n = len(requests)
    server_cpu, client_cpu = cpu_seconds(server_pid), time.process_time()
    got = measure(lambda i: method(requests[i], timeout=120), n, concurrency)
    got["server_cpu_ms_per_request"] = round((cpu_seconds(server_pid) - server_cpu) / n * 1000, 2)
    got["client_cpu_ms_per_request"] = round((time.process_time() - client_cpu) / n * 1000, 2)
    return got


def merge(runs: list[dict[str, float]]) -> dict[str, float]:
    """Median of each figure over rounds."""
    return {k: round(float(np.median([r[k] for r in runs])), 2) for k in runs[0]}


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
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY), help="client threads to measure at")
    parser.add_argument("--rpc", nargs="+", choices=("Predict", "Segment"), default=["Predict", "Segment"])
    parser.add_argument("--rounds", type=int, default=3, help="alternating raw/service rounds per concurrency")
    parser.add_argument("--out", default="bench/results/concurrency.json")
    args = parser.parse_args()
    settings = Settings()
    if settings.keep_freed_memory:  # the raw replay gets the allocator settings the server gets
        keep_freed_memory()
    limit_arenas(settings.malloc_arenas)
    samples = [generate(HELD_OUT_SEED, i) for i in range(args.n)]
    images = [s.image for s in samples]
    predict_calls, segment_calls = record_calls(settings, images, [list(s.labels) for s in samples])
    requests: dict[str, list[object]] = {
        "Predict": [pb.PredictRequest(image=image_message(im, args.input)) for im in images],
        "Segment": [pb.SegmentRequest(image=image_message(s.image, args.input), labels=pb.WeakLabels(image_labels=s.labels))
                    for s in samples if s.labels],
    }
    report: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, onnxruntime {ort.__version__}",
        "date": time.strftime("%Y-%m-%d"),
        "requests": {rpc: f"{len(r)} held-out generator images, 256x256, image sent as {args.input}" for rpc, r in requests.items()},
        "method": f"per concurrency: raw then service, {args.rounds} rounds alternating; each figure the median over rounds",
    }
    raw = RawModels(settings, {"Predict": predict_calls, "Segment": segment_calls})
    opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    for batch in args.batch:
        # embedding cache off: the rounds send the same images again, and a cache hit would skip
        # the encoder the raw replay runs (its effect is measured by bench/cache_and_memory.py)
        proc, port = start_server(WSSS_BATCH_MAX_SIZE=str(batch), WSSS_EMBEDDING_CACHE_BYTES="0", WSSS_CAM_CACHE_BYTES="0")
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}", options=opts) as channel:
                stub = pb_grpc.SegmentationServiceStub(channel)
                block: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
                for rpc in args.rpc:
                    reqs = requests[rpc]
                    block[rpc] = {}
                    service_figures(stub, proc.pid, reqs, rpc, 4)  # one discarded warm-up pass
                    for c in args.concurrency:
                        raw_runs, service_runs = [], []
                        for _ in range(args.rounds):  # alternate, so drifts in machine speed hit both alike
                            raw_runs.append(raw.figures(rpc, c))
                            service_runs.append(service_figures(stub, proc.pid, reqs, rpc, c))
                        got = {"raw": merge(raw_runs), "service": merge(service_runs)}
                        got["service"]["p50_vs_raw"] = round(got["service"]["p50_ms"] / got["raw"]["p50_ms"], 3)
                        got["service"]["throughput_vs_raw"] = round(got["service"]["requests_per_second"] / got["raw"]["requests_per_second"], 3)
                        block[rpc][f"c{c}"] = got
                        print(f"batch {batch} {rpc} c{c}", got, flush=True)
            report[f"batch{batch}"] = block
        finally:
            proc.terminate()
            proc.wait(30)
    write_report(report, args.out)


if __name__ == "__main__":
    main()
