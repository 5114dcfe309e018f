"""Concurrent Segment requests on new images with a large SAM encoder: the server's peak memory
and wall time, with the encoder's measured run counted in the memory budget (this checkout) or
not (``--code`` an older checkout, whose estimate scaled with the image only).

A server process (``python -m service`` run from ``--code``) serves ``--repo`` with
``--workers`` worker threads. One request runs alone first (its seconds: the floor of each
request, mostly the encoder's run on these cores); then ``--concurrency`` requests on as many
different images (no embedding-cache hits) are sent at once. The report gives each request's
status and seconds, the wall time against ``concurrency`` x the lone request's (the raw model
time, if the encoder runs could not overlap at all), the server's peak resident memory over its
level before the burst (VmHWM), and what the server's log says one encoder run takes.

    python bench/encoder_budget.py --repo work/vitb/full --out bench/results/encoder_budget.json
    python bench/encoder_budget.py --repo work/vitb/full --code ../old-checkout --out bench/results/encoder_budget_previous_code.json

``work/vitb/full``: the default repository with segment-anything's ViT-B (random weights, the
architecture's memory) as ``sam_encoder`` / ``sam_decoder`` (``python -m training export-sam``).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import png_bytes, reset_peak, rss_mib, start_server, write_report  # noqa: E402
from wsss.v1 import segmentation_pb2 as pb  # noqa: E402
from wsss.v1 import segmentation_pb2_grpc as pb_grpc  # noqa: E402


def request(i: int, size: int) -> pb.SegmentRequest:
    image = np.random.default_rng(i).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return pb.SegmentRequest(id=str(i), image=pb.Image(encoded=png_bytes(image)), labels=pb.WeakLabels(image_labels=["spot"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="model repository served (with a large SAM encoder)")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose service runs (default: this one)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", default="bench/results/encoder_budget.json")
    args = parser.parse_args()
    log = Path(tempfile.mkdtemp()) / "server.log"
    proc, port = start_server(args.code.resolve(), log, 600.0, WSSS_LOG_LEVEL="INFO", WSSS_MODEL_REPO=str(args.repo.resolve()),
                              WSSS_WORKER_THREADS=str(args.workers))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 << 20)]) as channel:
            stub = pb_grpc.SegmentationServiceStub(channel)
            start = time.perf_counter()
            stub.Segment(request(0, args.size), timeout=600)
            alone = time.perf_counter() - start
            time.sleep(3)  # the server trims its heap when idle
            before = rss_mib(proc.pid)
            reset_peak(proc.pid)

            def one(i: int) -> tuple[str, float]:
                t = time.perf_counter()
                try:
                    stub.Segment(request(i, args.size), timeout=600)
                    code = "OK"
                except grpc.RpcError as e:
                    code = e.code().name  # type: ignore[attr-defined]
                return code, round(time.perf_counter() - t, 2)

            start = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                results = list(pool.map(one, range(1, args.concurrency + 1)))
            wall = time.perf_counter() - start
            peak = rss_mib(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(30)
    measured = re.findall(r"one encoder run takes ([^\n]+)", log.read_text())
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(sys.argv), "code": str(args.code.resolve()), "repo": str(args.repo), "workers": args.workers,
        "concurrency": args.concurrency, "size": args.size,
        "alone_seconds": round(alone, 2), "requests": [{"status": c, "seconds": s} for c, s in results],
        "wall_seconds": round(wall, 2), "raw_model_floor_seconds": round(args.concurrency * alone, 2),
        "rss_before_mib": round(before), "peak_over_before_mib": round(peak - before),
        "server_log_encoder_run": measured[0] if measured else "not measured (code before the encoder's run was counted)",
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
