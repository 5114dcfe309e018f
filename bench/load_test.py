"""Load test: N concurrent clients for a fixed time against a local WeakSeg server.

Starts the service as its own process on a free loopback port with the default models, runs N client threads for --seconds, each sending Segment requests (held-out generator
images with their tags) back to back, and reports successes, every status code, latency
percentiles and the server's RSS before, during (samples) and after: growth in the second half of
the run, once the embedding cache and ONNX Runtime's arenas are warm, is what a leak would show.
Bounded in requests and time; loopback only.

    .venv/bin/python bench/load_test.py --clients 8 --seconds 30 --max-in-flight 4 --out bench/results/load_test.json
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import png_bytes, rss_mib, start_server, write_report  # noqa: E402
from service.healthcheck import main as healthcheck  # noqa: E402
from training.synthetic import HELD_OUT_SEED, generate  # noqa: E402
from wsss.v1 import segmentation_pb2 as pb  # noqa: E402
from wsss.v1 import segmentation_pb2_grpc as pb_grpc  # noqa: E402


def requests(n: int) -> list[pb.SegmentRequest]:
    out = []
    for i in range(n):
        s = generate(HELD_OUT_SEED, i)
        out.append(pb.SegmentRequest(id=str(i), image=pb.Image(encoded=png_bytes(s.image)), labels=pb.WeakLabels(image_labels=s.labels or ["spot"])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-requests", type=int, default=20000, help="stop after this many requests in all")
    parser.add_argument("--max-in-flight", type=int, default=4, help="the server's WSSS_MAX_IN_FLIGHT")
    parser.add_argument("--timeout", type=float, default=10.0, help="client deadline per request, seconds")
    parser.add_argument("--out", default="bench/results/load_test.json")
    args = parser.parse_args()

    proc, port = start_server(WSSS_MAX_IN_FLIGHT=str(args.max_in_flight))
    try:
        reqs = requests(32)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            pb_grpc.SegmentationServiceStub(channel).Segment(reqs[0], timeout=60)  # warm
        rss_before = rss_mib(proc.pid)
        codes: Counter[str] = Counter()
        latencies: list[float] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds
        sent = [0]

        def client(k: int) -> None:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.SegmentationServiceStub(channel)
                i = k
                while time.monotonic() < stop_at:
                    with lock:
                        if sent[0] >= args.max_requests:
                            return
                        sent[0] += 1
                    start = time.perf_counter()
                    try:
                        stub.Segment(reqs[i % len(reqs)], timeout=args.timeout)
                        code = "OK"
                    except grpc.RpcError as err:
                        code = err.code().name
                    elapsed = time.perf_counter() - start
                    with lock:
                        codes[code] += 1
                        if code == "OK":
                            latencies.append(elapsed)
                    if code == "RESOURCE_EXHAUSTED":
                        time.sleep(0.02)  # a polite client backs off
                    i += args.clients

        start = time.monotonic()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        samples: list[tuple[float, float]] = []
        while any(t.is_alive() for t in threads):
            samples.append((round(time.monotonic() - start, 1), round(rss_mib(proc.pid), 1)))
            time.sleep(min(5.0, args.seconds / 6))
        for t in threads:
            t.join()
        wall = time.monotonic() - start
        rss_after = rss_mib(proc.pid)
        alive = proc.poll() is None and healthcheck([f"127.0.0.1:{port}"]) == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(timeout=60)
    lat = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "clients": args.clients,
        "seconds": round(wall, 1),
        "server_max_in_flight": args.max_in_flight,
        "requests": sum(codes.values()),
        "status_codes": dict(codes),
        "ok_per_second": round(codes["OK"] / wall, 2),
        "latency_ok_ms": {p: round(float(np.percentile(lat, q)), 1) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))},
        "server_rss_mib": {"before": round(rss_before, 1), "after": round(rss_after, 1), "growth": round(rss_after - rss_before, 1),
                           "samples_s_mib": samples,
                           "growth_second_half": round(rss_after - samples[len(samples) // 2][1], 1) if samples else None},
        "server_alive_and_serving_after": alive,
        "server_exit_code_on_sigterm": exit_code,
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
