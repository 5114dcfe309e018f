"""``python -m service`` as a process: serves, exposes /metrics, exits 0 on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

from bench.common import rss_mib
from service.healthcheck import main as healthcheck
from service.settings import REPO_ROOT
from tests.conftest import free_port, serving_process


def test_process_serves_metrics_and_stops_cleanly_on_sigterm() -> None:
    port, metrics_port = free_port(), free_port()
    env = dict(os.environ, WSSS_PORT=str(port), WSSS_METRICS_PORT=str(metrics_port), WSSS_HOST="127.0.0.1", WSSS_LOG_LEVEL="INFO")
    proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while healthcheck([f"127.0.0.1:{port}"]) != 0:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "service did not become SERVING in 120 s"
            time.sleep(0.5)
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert 'wsss_requests_total{code="OK",rpc="Segment"}' in body
        assert "wsss_model_inference_seconds_count" in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        log = proc.stdout.read() if proc.stdout else ""
        assert "loaded model sam_decoder version 1 on CPU (CPUExecutionProvider)" in log
        assert "SERVING" in log and "shutting down" in log
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_lets_in_flight_requests_finish(tmp_path: object) -> None:
    import threading

    import grpc
    import numpy as np

    from wsss.v1 import segmentation_pb2 as pb
    from wsss.v1 import segmentation_pb2_grpc as pb_grpc

    log_path = f"{tmp_path}/server.log"
    log_file = open(log_path, "w")  # noqa: SIM115
    proc, port, metrics_port = serving_process(log_file, WSSS_LOG_LEVEL="DEBUG")
    try:
        img = np.random.default_rng(0).integers(0, 255, (1200, 1200, 3), dtype=np.uint8)
        slow = pb.SegmentRequest(image=pb.Image(raw=pb.RawImage(data=img.tobytes(), height=1200, width=1200, channels=3)),
                                 labels=pb.WeakLabels(image_labels=["stain"]), options=pb.SegmentOptions(mask_formats=[pb.MASK_FORMAT_RAW]))
        result: dict[str, object] = {}
        opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=opts) as channel:
            stub = pb_grpc.SegmentationServiceStub(channel)

            def call() -> None:
                start = time.monotonic()
                try:
                    result["response"] = stub.Segment(slow, timeout=60)
                except grpc.RpcError as err:
                    result["error"] = (err.code(), err.details())
                result["seconds"] = time.monotonic() - start

            worker = threading.Thread(target=call)
            worker.start()
            wait_until = time.monotonic() + 30
            while "wsss_in_flight_requests 1.0" not in urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode():
                assert time.monotonic() < wait_until, "the slow request never got in flight"
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            wait_until = time.monotonic() + 10
            while healthcheck([f"127.0.0.1:{port}"]) == 0:  # then NOT_SERVING, or refusing connections
                assert time.monotonic() < wait_until, "still SERVING 10 s after SIGTERM"
                time.sleep(0.1)
            worker.join(60)
        assert proc.wait(timeout=30) == 0
        log_file.close()
        assert "error" not in result, (result, open(log_path).read()[-3000:])
        assert len(result["response"].mask.raw) == 1200 * 1200  # type: ignore[attr-defined]
    finally:
        if proc.poll() is None:
            proc.kill()


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses listening on TCP ``port`` (Linux /proc/net/tcp; state 0A = LISTEN)."""
    found = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(int(addr[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def test_hostile_requests_in_a_real_process(tmp_path: object) -> None:
    """In ``python -m service``: /metrics binds WSSS_METRICS_HOST; a 4096 x 4096 image is served
    and the resident size returns within 20 % of the warm level within 10 s; SIGTERM during a
    long request exits within the grace period + 2 s."""
    import threading

    import grpc
    import numpy as np

    from tests.conftest import png_bytes
    from wsss.v1 import segmentation_pb2 as pb
    from wsss.v1 import segmentation_pb2_grpc as pb_grpc

    grace = 1.0
    log_file = open(f"{tmp_path}/server.log", "w")  # noqa: SIM115
    proc, port, metrics_port = serving_process(log_file, WSSS_METRICS_HOST="127.0.0.1", WSSS_SHUTDOWN_GRACE_SECONDS=str(grace))
    try:
        assert _listening_addresses(metrics_port) == {"127.0.0.1"}
        opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        rng = np.random.default_rng(0)
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=opts) as channel:
            stub = pb_grpc.SegmentationServiceStub(channel)
            tags = pb.WeakLabels(image_labels=["stain"])
            for _ in range(5):
                stub.Segment(pb.SegmentRequest(image=pb.Image(encoded=png_bytes(rng.integers(0, 255, (400, 400, 3), dtype=np.uint8))), labels=tags), timeout=60)
            warm = rss_mib(proc.pid)
            huge = pb.SegmentRequest(image=pb.Image(encoded=png_bytes(np.full((4096, 4096, 3), 128, np.uint8))), labels=tags)
            assert stub.Segment(huge, timeout=120).mask.width == 4096
            settle = time.monotonic() + 10
            while rss_mib(proc.pid) > 1.2 * warm:
                assert time.monotonic() < settle, f"RSS {rss_mib(proc.pid):.0f} MiB 10 s after a 4096 x 4096 request; warm {warm:.0f} MiB"
                time.sleep(0.2)

            noise = rng.integers(0, 255, (1024, 1024, 3), dtype=np.uint8)
            zigzag = [pb.Point(x=float(x), y=float(y)) for x, y in rng.uniform(0, 1024, (990, 2))]
            slow = pb.SegmentRequest(image=pb.Image(encoded=png_bytes(noise)),
                                     labels=pb.WeakLabels(scribbles=[pb.ScribbleLabel(label="crack", points=zigzag, width=3)]),
                                     options=pb.SegmentOptions(refinement=pb.REFINEMENT_CRF))
            outcome: list[object] = []
            worker = threading.Thread(target=lambda: outcome.append(_outcome_of(lambda: stub.Segment(slow, timeout=120))))
            worker.start()
            time.sleep(0.5)
            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
            exited = time.monotonic() - signalled
            worker.join(30)
        log_file.close()
        # bounded shutdown: the slow call was cut short (no response), not waited for
        assert outcome == ["failed"], f"the slow call was not stopped by the shutdown (exited {exited:.1f} s after SIGTERM, grace {grace:.0f} s)"
    finally:
        if proc.poll() is None:
            proc.kill()


def _outcome_of(call: object) -> str:
    """'ok' or 'failed' (an RPC error)."""
    import grpc

    try:
        call()  # type: ignore[operator]
    except grpc.RpcError:
        return "failed"
    return "ok"
