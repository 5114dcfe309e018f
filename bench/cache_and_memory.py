"""Embedding-cache effect and memory over many requests, against a server process on loopback.

1. Cache: for each image, Segment with its tags (encoder runs), then again with a click on the
   same pixels (embedding from the cache): mean latency of the second / the first.
2. Memory: the server's RSS before and after N Predict requests (4 concurrent clients).

    .venv/bin/python bench/cache_and_memory.py --images 20 --requests 2000 --out bench/results/cache_and_memory.json
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import png_bytes, rss_mib, start_server, write_report  # noqa: E402
from training import derive_labels  # noqa: E402
from training.synthetic import CLASSES, HELD_OUT_SEED, generate  # noqa: E402
from wsss.v1 import segmentation_pb2 as pb  # noqa: E402
from wsss.v1 import segmentation_pb2_grpc as pb_grpc  # noqa: E402


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
            reqs = [pb.PredictRequest(image=pb.Image(encoded=png_bytes(generate(HELD_OUT_SEED, i).image))) for i in range(50)]
            stub.Predict(reqs[0], timeout=60)
            rss_before = rss_mib(proc.pid)
            t = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda i: stub.Predict(reqs[i % len(reqs)], timeout=60), range(args.requests)))
            wall = time.perf_counter() - t
            rss_after = rss_mib(proc.pid)
            report["memory"] = {"requests": args.requests, "seconds": round(wall, 1), "rss_before_mib": round(rss_before, 1),
                                "rss_after_mib": round(rss_after, 1), "growth_mib": round(rss_after - rss_before, 1)}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    write_report(report, args.out)


if __name__ == "__main__":
    main()
