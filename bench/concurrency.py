"""Throughput and latency at concurrency 1, 4 and 16 through gRPC, with and without micro-batching,
next to the raw model compute of the same requests (ONNX Runtime sessions called directly, one
request at a time, no service): DeepLab for Predict; for Segment, the sum of the model inference
times of the pipeline run in process.

    .venv/bin/python bench/concurrency.py --n 48 --out bench/results/concurrency.json
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import png_bytes, write_report  # noqa: E402
from service.api.background import BackgroundServer  # noqa: E402
from service.models.deeplab import DeepLab  # noqa: E402
from service.runtime import ModelRepository  # noqa: E402
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from service.settings import Settings  # noqa: E402
from training.synthetic import HELD_OUT_SEED, generate  # noqa: E402
from wsss.v1 import segmentation_pb2 as pb  # noqa: E402
from wsss.v1 import segmentation_pb2_grpc as pb_grpc  # noqa: E402


def raw_predict_seconds(images: list[np.ndarray]) -> float:
    """DeepLab alone, in process, one image after another: the limit for Predict."""
    backend = OnnxRuntimeBackend(ModelRepository(Settings().model_repo))
    backend.load(["deeplab"])
    model = DeepLab(backend)
    model.predict(images[0])
    start = time.perf_counter()
    for im in images:
        model.predict(im)
    return time.perf_counter() - start


def raw_segment_model_seconds(samples: list[object]) -> float:
    """Model inference time alone of Segment on each sample (tags), in process, one after another."""
    from service.models.cam_classifier import CamClassifier
    from service.models.sam import SamDecoder, SamEncoder
    from service.pipeline.segment import PipelineConfig, Segmenter
    from service.pipeline.types import SegmentInput, WeakLabels

    spent = [0.0]
    backend = OnnxRuntimeBackend(ModelRepository(Settings().model_repo), observer=lambda m, p, sec: spent.__setitem__(0, spent[0] + sec))
    backend.load(["cam_classifier", "sam_encoder", "sam_decoder"])
    seg = Segmenter(CamClassifier(backend), SamEncoder(backend), SamDecoder(backend), PipelineConfig())
    seg.segment(SegmentInput(image=samples[0].image, labels=WeakLabels(image_labels=tuple(samples[0].labels))))  # type: ignore[attr-defined]
    spent[0] = 0.0
    for s in samples:
        seg.segment(SegmentInput(image=s.image, labels=WeakLabels(image_labels=tuple(s.labels))))  # type: ignore[attr-defined]
    return spent[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48, help="requests per measurement")
    parser.add_argument("--out", default="bench/results/concurrency.json")
    args = parser.parse_args()
    samples = [generate(HELD_OUT_SEED, i) for i in range(args.n)]
    predict_reqs = [pb.PredictRequest(image=pb.Image(encoded=png_bytes(s.image))) for s in samples]
    report: dict[str, object] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
                                 "images": f"{args.n} held-out generator images, 256x256"}
    raw = raw_predict_seconds([s.image for s in samples])
    report["raw_deeplab_images_per_second"] = round(args.n / raw, 1)
    segment_samples = [s for s in samples if s.labels]
    segment_reqs = [pb.SegmentRequest(image=pb.Image(encoded=png_bytes(s.image)), labels=pb.WeakLabels(image_labels=s.labels)) for s in segment_samples]
    raw_segment = raw_segment_model_seconds(segment_samples)
    report["raw_segment_model_images_per_second"] = round(len(segment_samples) / raw_segment, 2)
    for batch in (1, 8):
        server = BackgroundServer(Settings(host="127.0.0.1", port=0, metrics_enabled=False, batch_max_size=batch, worker_threads=16, max_in_flight=64))
        try:
            with server.channel() as channel:
                stub = pb_grpc.SegmentationServiceStub(channel)
                stub.Predict(predict_reqs[0], timeout=60)
                stub.Segment(segment_reqs[0], timeout=60)
                runs = [(rpc, reqs, raw_s, c) for rpc, reqs, raw_s in (("predict", predict_reqs, raw), ("segment", segment_reqs, raw_segment))
                        for c in (1, 4, 16)]
                for rpc, reqs, raw_seconds, concurrency in runs:
                    lat: list[float] = []
                    method = stub.Predict if rpc == "predict" else stub.Segment

                    def call(r: object, method: object = method, lat: list[float] = lat) -> None:
                        t = time.perf_counter()
                        method(r, timeout=120)  # type: ignore[operator]
                        lat.append(time.perf_counter() - t)

                    start = time.perf_counter()
                    with ThreadPoolExecutor(concurrency) as pool:
                        list(pool.map(call, reqs))
                    wall = time.perf_counter() - start
                    ms = np.array(lat) * 1000
                    key = f"{rpc}_batch{batch}_c{concurrency}"
                    report[key] = {
                        "images_per_second": round(len(reqs) / wall, 2),
                        "vs_raw": round((len(reqs) / wall) / (len(reqs) / raw_seconds), 3),
                        "p50_ms": round(float(np.percentile(ms, 50)), 1),
                        "p95_ms": round(float(np.percentile(ms, 95)), 1),
                        "p99_ms": round(float(np.percentile(ms, 99)), 1),
                    }
                    print(key, report[key], flush=True)
        finally:
            server.stop()
    write_report(report, args.out)


if __name__ == "__main__":
    main()
