"""Load test: N concurrent clients for a fixed time against a local WeakSeg server.

Starts the service as its own process on a free loopback port with the default models, runs N client threads for --seconds, each sending Segment requests (held-out generator
images with their tags) back to back, and reports successes, every status code, latency
percentiles and the server's RSS before, during (samples) and after: growth in the second half of
the run, once the embedding cache and ONNX Runtime's arenas are warm, is what a leak would show.
Bounded in requests and time; loopback only.

    .venv/bin/python bench/load_test.py --clients 8 --seconds 30 --max-in-flight 4 --out bench/results/load_test.json

``--hostile`` runs a hostile mix instead, at the server's default settings: one client sends good
requests back to back (their p50 alone first, then during the mix) while hostile clients send
huge images (4096 x 4096 and 6000 x 6000 PNGs, a raw 4000 x 2500), thin ones (8192 x 2, 1 x 4096),
requests that expire (0.05 s deadline) or are cancelled mid-way, bytes that are not protobuf and
a 20,000-character class name. Reported: status codes per kind (no INTERNAL or UNKNOWN allowed),
the slowest admitted request, the server's peak RSS (VmHWM), the good requests' p50 ratio and the
RSS warm, 10 s after one request of each kind (the models and code only those kinds use now
counted) and 10 s after the mix.

    .venv/bin/python bench/load_test.py --hostile --seconds 60 --out bench/results/load_test_hostile.json
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

from bench.common import png_bytes, reset_peak, rss_mib, start_server, write_report  # noqa: E402
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


def hostile_kinds() -> dict[str, tuple[str, bytes, float | None, float | None]]:
    """kind -> (method, serialized request, deadline seconds, cancel after seconds)."""
    rng = np.random.default_rng(7)
    tags = pb.WeakLabels(image_labels=["stain", "scratch"])

    def seg(image: np.ndarray, labels: pb.WeakLabels = tags) -> bytes:
        return pb.SegmentRequest(image=pb.Image(encoded=png_bytes(image)), labels=labels).SerializeToString()

    noise = rng.integers(0, 255, (1024, 1024, 3), dtype=np.uint8)
    raw = rng.integers(0, 255, (2500, 4000, 3), dtype=np.uint8)
    zigzag = [pb.Point(x=float(x), y=float(y)) for x, y in rng.uniform(0, 1024, (990, 2))]
    return {
        "huge_4096_png": ("Segment", seg(np.full((4096, 4096, 3), 128, np.uint8)), 60.0, None),
        "huge_6000_png": ("Segment", seg(np.broadcast_to(np.arange(6000, dtype=np.uint16)[None, :, None] % 256, (6000, 6000, 3)).astype(np.uint8)), 60.0, None),
        "huge_raw_4000x2500": ("Segment", pb.SegmentRequest(image=pb.Image(raw=pb.RawImage(data=raw.tobytes(), height=2500, width=4000, channels=3)),
                                                            labels=tags).SerializeToString(), 60.0, None),
        "predict_6000_png": ("Predict", pb.PredictRequest(image=pb.Image(encoded=png_bytes(np.full((6000, 6000, 3), 90, np.uint8)))).SerializeToString(), 60.0, None),
        "scribble_990_vertices": ("Segment", seg(noise, pb.WeakLabels(scribbles=[pb.ScribbleLabel(label="crack", points=zigzag, width=3)])), 60.0, None),
        "thin_8192x2": ("Segment", seg(np.full((2, 8192, 3), 200, np.uint8)), 60.0, None),
        "thin_1x4096_box": ("Segment", seg(np.full((4096, 1, 3), 200, np.uint8), pb.WeakLabels(boxes=[pb.BoxLabel(label="spot", x0=0, y0=5, x1=1, y1=900)])), 60.0, None),
        "expired": ("Segment", seg(noise), 0.05, None),
        "cancelled": ("Segment", seg(noise), 60.0, 0.1),
        "not_protobuf": ("Segment", b"\xff\xff\xff\xff", 10.0, None),
        "long_class_name": ("Segment", seg(noise[:64, :64], pb.WeakLabels(image_labels=["x" * 20000])), 10.0, None),
    }


def hostile(args: argparse.Namespace) -> None:
    """The hostile mix (see the module docstring)."""
    proc, port = start_server()
    opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    target = f"127.0.0.1:{port}"
    good = requests(16)
    kinds = hostile_kinds()
    try:
        with grpc.insecure_channel(target, options=opts) as channel:
            stub = pb_grpc.SegmentationServiceStub(channel)

            def good_latencies(n: int) -> list[float]:
                out = []
                for i in range(n):
                    start = time.perf_counter()
                    stub.Segment(good[i % len(good)], timeout=60)
                    out.append(time.perf_counter() - start)
                return out

            good_latencies(4)
            alone = good_latencies(30)
            rss_warm = rss_mib(proc.pid)
            alone_kind: dict[str, dict[str, object]] = {}
            for name, (method, body, deadline, cancel_after) in kinds.items():
                reset_peak(proc.pid)
                code, seconds = _send(channel, method, body, deadline, cancel_after)
                alone_kind[name] = {"code": code, "seconds": round(seconds, 2), "peak_rss_mib": round(rss_mib(proc.pid, "VmHWM"), 0)}
                print(name, alone_kind[name], flush=True)
            time.sleep(10)  # idle: the server trims its heap (server.py _trim_when_idle)
            rss_each_kind = rss_mib(proc.pid)
            reset_peak(proc.pid)
            codes: dict[str, Counter[str]] = {k: Counter() for k in kinds}
            slowest: dict[str, float] = dict.fromkeys(kinds, 0.0)
            stop_at = time.monotonic() + args.seconds
            lock = threading.Lock()

            def attacker(offset: int) -> None:
                names = list(kinds)
                i = offset
                with grpc.insecure_channel(target, options=opts) as own:
                    while time.monotonic() < stop_at:
                        name = names[i % len(names)]
                        method, body, deadline, cancel_after = kinds[name]
                        code, seconds = _send(own, method, body, deadline, cancel_after)
                        with lock:
                            codes[name][code] += 1
                            if code == "OK":
                                slowest[name] = max(slowest[name], seconds)
                        i += 1

            attackers = [threading.Thread(target=attacker, args=(k * 5,)) for k in range(args.attackers)]
            for t in attackers:
                t.start()
            during: list[float] = []
            while time.monotonic() < stop_at:
                during += good_latencies(1)
            for t in attackers:
                t.join()
            peak = rss_mib(proc.pid, "VmHWM")
            time.sleep(10)
            rss_settled = rss_mib(proc.pid)
            after = good_latencies(10)
        alive = proc.poll() is None and healthcheck([target]) == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(timeout=60)
    bad = {k: dict(c) for k, c in codes.items() if c["INTERNAL"] or c["UNKNOWN"]}
    p50_alone, p50_during = float(np.median(alone)) * 1000, float(np.median(during)) * 1000
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "mode": "hostile",
        "seconds": args.seconds,
        "attackers": len(attackers),
        "each_kind_alone": alone_kind,
        "mix_status_codes": {k: dict(c) for k, c in codes.items()},
        "internal_or_unknown": bad,
        "slowest_admitted_in_mix_s": {k: round(v, 2) for k, v in slowest.items() if v},
        "good_requests": {"p50_alone_ms": round(p50_alone, 1), "p50_during_mix_ms": round(p50_during, 1), "during_mix": len(during),
                          "p50_ratio": round(p50_during / p50_alone, 2), "p50_after_ms": round(float(np.median(after)) * 1000, 1)},
        "server_rss_mib": {"warm": round(rss_warm, 1), "10_s_after_each_kind_once": round(rss_each_kind, 1), "peak_during_mix": round(peak, 1),
                           "10_s_after_mix": round(rss_settled, 1)},
        "server_alive_and_serving_after": alive,
        "server_exit_code_on_sigterm": exit_code,
    }
    write_report(report, args.out)


def _send(channel: grpc.Channel, method: str, body: bytes, deadline: float | None, cancel_after: float | None) -> tuple[str, float]:
    call = channel.unary_unary(f"/wsss.v1.SegmentationService/{method}", request_serializer=lambda b: b, response_deserializer=lambda b: b)
    start = time.perf_counter()
    try:
        if cancel_after is not None:
            future = call.future(body, timeout=deadline)
            time.sleep(cancel_after)
            future.cancel()
            future.result()
        else:
            call(body, timeout=deadline)
        code = "OK"
    except grpc.FutureCancelledError:
        code = "CANCELLED"
    except grpc.RpcError as err:
        code = err.code().name
    return code, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-requests", type=int, default=20000, help="stop after this many requests in all")
    parser.add_argument("--max-in-flight", type=int, default=4, help="the server's WSSS_MAX_IN_FLIGHT")
    parser.add_argument("--timeout", type=float, default=10.0, help="client deadline per request, seconds")
    parser.add_argument("--out", default="bench/results/load_test.json")
    parser.add_argument("--hostile", action="store_true", help="the hostile mix at default settings")
    parser.add_argument("--attackers", type=int, default=3, help="with --hostile: clients sending hostile requests")
    args = parser.parse_args()
    if args.hostile:
        hostile(args)
        return

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
