"""Latency of Segment and Predict through gRPC, per stage, against the raw model time of the same requests.

Starts the service as its own process on a free port with the default models (or WSSS_MODEL_REPO)
and the embedding cache off, sends N held-out generator images one at a time, and reports client
latency percentiles, the server's per-stage times, and the models' own inference time read from
the server's Prometheus endpoint (the limit: what the service would cost with zero overhead).
Prints a table and writes JSON.

    .venv/bin/python bench/segment_latency.py --n 30 --out bench/results/segment_latency.json
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import grpc
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port, png_bytes, start_server, write_report  # noqa: E402
from training.synthetic import HELD_OUT_SEED, generate  # noqa: E402
from wsss.v1 import segmentation_pb2 as pb  # noqa: E402
from wsss.v1 import segmentation_pb2_grpc as pb_grpc  # noqa: E402

MODELS = ("cam_classifier", "sam_encoder", "sam_decoder", "deeplab")


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.array(values) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2), "mean_ms": round(float(a.mean()), 2)}


def model_seconds(metrics_port: int) -> dict[str, float]:
    """Seconds each model has spent in inference so far, from the server's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    out = dict.fromkeys(MODELS, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "wsss_model_inference_seconds_sum" and sample.labels.get("model") in out:
                out[sample.labels["model"]] += sample.value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="requests per RPC")
    parser.add_argument("--out", default="bench/results/segment_latency.json")
    args = parser.parse_args()
    metrics_port = free_port()
    proc, port = start_server(WSSS_METRICS_ENABLED="true", WSSS_METRICS_PORT=str(metrics_port), WSSS_EMBEDDING_CACHE_BYTES="0",
                              WSSS_CAM_CACHE_BYTES="0")
    samples = [generate(HELD_OUT_SEED, i) for i in range(args.n)]
    report: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "images": f"{args.n} held-out generator images, 256x256",
    }
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.SegmentationServiceStub(channel)
            encoded = [png_bytes(s.image) for s in samples]
            segment = [pb.SegmentRequest(image=pb.Image(encoded=e), labels=pb.WeakLabels(image_labels=s.labels or ["scratch"]))
                       for e, s in zip(encoded, samples)]
            predict = [pb.PredictRequest(image=pb.Image(encoded=e)) for e in encoded]
            for name, call, requests in (
                ("Segment", lambda r: stub.Segment(r, timeout=60), segment),
                ("Predict", lambda r: stub.Predict(r, timeout=60), predict),
            ):
                call(requests[0])  # warm (the embedding cache is off for this run: every request encodes)
                before = model_seconds(metrics_port)
                latencies: list[float] = []
                stages: dict[str, list[float]] = defaultdict(list)
                for r in requests:
                    start = time.perf_counter()
                    resp = call(r)
                    latencies.append(time.perf_counter() - start)
                    for t in resp.timings:
                        stages[t.stage].append(t.seconds)
                after = model_seconds(metrics_port)
                model_total = sum(after[m] - before[m] for m in MODELS) / args.n
                lat = percentiles(latencies)
                report[name] = {
                    "latency": lat,
                    "stages_mean_ms": {k: round(1000 * float(np.mean(v)), 2) for k, v in stages.items()},
                    "raw_model_ms_per_request": round(1000 * model_total, 2),
                    "model_ms_per_request": {m: round(1000 * (after[m] - before[m]) / args.n, 2) for m in MODELS if after[m] > before[m]},
                    "overhead_vs_raw_model_mean": round(lat["mean_ms"] / (1000 * model_total) - 1, 3) if model_total else None,
                }
    finally:
        proc.terminate()
        proc.wait(30)
    write_report(report, args.out)


if __name__ == "__main__":
    main()
