"""Embedding-cache effect and memory over many requests, against a server process on loopback.

1. Cache: for each image, Segment with its tags (encoder runs), then again with a click on the
   same pixels (embedding from the cache): mean latency of the second / the first. After the
   memory run (2.), an interactive round at 512 x 512 (the images upscaled): tags, then the same tags and a click;
   the second skips the classifier, the encoder and the CAM random walk of the tagged classes
   (the CAM cache keeps the walk at its own grid): the rounds' latency and their ``cam`` / ``cam_walk`` stages.
2. Memory: Segment (image tags) on 50 images round robin from 4 concurrent clients; the server's
   RSS after request 250 (caches full, allocator warm) and after the last, and its peak (VmHWM)
   over the run, beside what the settings allow to be resident: the caches' byte limits and 4
   requests' estimated working memory.

    .venv/bin/python bench/cache_and_memory.py --images 20 --requests 2000 --out bench/results/cache_and_memory.json
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import png_bytes, reset_peak, rss_mib, start_server, write_report  # noqa: E402
from training import derive_labels  # noqa: E402
from training.synthetic import CLASSES, HELD_OUT_SEED, Sample, generate  # noqa: E402
from wsss.v1 import segmentation_pb2 as pb  # noqa: E402
from wsss.v1 import segmentation_pb2_grpc as pb_grpc  # noqa: E402


def memory(stub: pb_grpc.SegmentationServiceStub, pid: int, requests: int, concurrency: int = 4) -> dict[str, object]:
    """RSS of the server over ``requests`` Segment calls (see the module docstring)."""
    from service.settings import Settings

    samples = [s for s in (generate(HELD_OUT_SEED, 1000 + i) for i in range(120)) if s.labels][:50]
    reqs = [pb.SegmentRequest(image=pb.Image(encoded=png_bytes(s.image)), labels=pb.WeakLabels(image_labels=s.labels)) for s in samples]
    stub.Segment(reqs[0], timeout=60)
    start_rss = rss_mib(pid)
    reset_peak(pid)
    marks: dict[int, float] = {}
    done = [0]
    lock = threading.Lock()

    def call(i: int) -> None:
        stub.Segment(reqs[i % len(reqs)], timeout=60)
        with lock:
            done[0] += 1
            if done[0] in (250, requests):
                marks[done[0]] = rss_mib(pid)

    t = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(call, range(requests)))
    wall = time.perf_counter() - t
    peak = rss_mib(pid, "VmHWM")
    settings = Settings()
    per_request = segment_working_bytes(256, 256)
    return {
        "rpc": "Segment (image tags), 256 x 256 PNG, 50 images round robin", "requests": requests, "concurrency": concurrency,
        "seconds": round(wall, 1), "rss_after_warmup_request_mib": round(start_rss, 1),
        "rss_at_250_mib": round(marks[250], 1), f"rss_at_{requests}_mib": round(marks[requests], 1),
        "growth_250_to_end_percent": round(100 * (marks[requests] - marks[250]) / marks[250], 2),
        "peak_rss_mib": round(peak, 1),
        "allowed": {
            "embedding_cache_limit_mib": round(settings.embedding_cache_bytes / 2**20, 1),
            "cam_cache_limit_mib": round(settings.cam_cache_bytes / 2**20, 1),
            "embedding_cache_used_mib": round(50 * 256 * 64 * 64 * 4 / 2**20, 1),
            "working_memory_estimate_per_request_mib": round(per_request / 2**20, 1),
        },
    }


def interactive_rounds(stub: pb_grpc.SegmentationServiceStub, samples: list[Sample], side: int = 512) -> dict[str, object]:
    """Round 1: Segment with the image's tags; round 2: the same tags and a click (see the module docstring)."""
    import cv2

    rounds: dict[str, list[float]] = {"first": [], "second": []}
    stages: dict[str, dict[str, list[float]]] = {r: {"cam": [], "cam_walk": []} for r in rounds}
    for s in samples:
        image = cv2.resize(s.image, (side, side), interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(s.mask, (side, side), interpolation=cv2.INTER_NEAREST).astype(np.uint8)
        c = derive_labels.points(mask, CLASSES)[0]
        msg = pb.Image(encoded=png_bytes(image))
        tags = pb.WeakLabels(image_labels=s.labels)
        with_click = pb.WeakLabels(image_labels=s.labels, points=[pb.PointLabel(label=c.label, x=c.x, y=c.y)])
        for name, labels in (("first", tags), ("second", with_click)):
            t = time.perf_counter()
            reply = stub.Segment(pb.SegmentRequest(image=msg, labels=labels), timeout=60)
            rounds[name].append(time.perf_counter() - t)
            timings = {x.stage: x.seconds for x in reply.timings}
            for stage in ("cam", "cam_walk"):
                stages[name][stage].append(timings.get(stage, 0.0))
    return {
        "image": f"{side} x {side}",
        **{f"{r}_round_ms": round(1000 * float(np.mean(v)), 1) for r, v in rounds.items()},
        **{f"{r}_round_{st}_ms": round(1000 * float(np.mean(v)), 1) for r, d in stages.items() for st, v in d.items()},
        "note": "round 1: the image's tags; round 2: the same tags and a click, which takes the CAMs, the embedding and the tagged classes' walked CAMs from the caches",
    }


def segment_working_bytes(height: int, width: int) -> int:
    """The service's own estimate of a Segment request's working memory (default models)."""
    from service.models.cam_classifier import CamClassifier
    from service.models.sam import SamDecoder, SamEncoder
    from service.pipeline.segment import PipelineConfig, Segmenter
    from service.runtime import ModelRepository
    from service.runtime.onnxruntime_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(ModelRepository(ROOT / "model_repo"), "CPUExecutionProvider")
    backend.load(["cam_classifier", "sam_encoder", "sam_decoder"])
    seg = Segmenter(CamClassifier(backend), SamEncoder(backend), SamDecoder(backend), PipelineConfig())
    return seg.working_bytes(height, width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--out", default="bench/results/cache_and_memory.json")
    args = parser.parse_args()
    proc, port = start_server()
    report: dict[str, object] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d")}
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.SegmentationServiceStub(channel)
            samples = [s for s in (generate(HELD_OUT_SEED, 300 + i) for i in range(3 * args.images)) if s.labels][: args.images]
            first, second = [], []
            for s in samples:
                image = pb.Image(encoded=png_bytes(s.image))
                t = time.perf_counter()
                stub.Segment(pb.SegmentRequest(image=image, labels=pb.WeakLabels(image_labels=s.labels)), timeout=60)
                first.append(time.perf_counter() - t)
                c = derive_labels.points(s.mask, CLASSES)[0]
                t = time.perf_counter()
                stub.Segment(pb.SegmentRequest(image=image, labels=pb.WeakLabels(points=[pb.PointLabel(label=c.label, x=c.x, y=c.y)])), timeout=60)
                second.append(time.perf_counter() - t)
            report["cache"] = {
                "first_request_ms": round(1000 * float(np.mean(first)), 1),
                "second_request_same_image_ms": round(1000 * float(np.mean(second)), 1),
                "second_over_first": round(float(np.mean(second) / np.mean(first)), 3),
                "note": "the second request skips the SAM encoder (cached embedding) and the classifier (cached CAMs); it also sends clicks instead of tags",
            }
            report["memory"] = memory(stub, proc.pid, args.requests)
            report["interactive_512"] = interactive_rounds(stub, samples)  # after the memory run, whose start it would change
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    write_report(report, args.out)


if __name__ == "__main__":
    main()
