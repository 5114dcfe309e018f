"""Several replicas behaving like one service: real ``python -m service`` processes on 127.0.0.x.

``churn``: three replicas behind one client channel (round_robin, the documented channel
configuration *without* its retry policy); the third starts late and the first is sent SIGTERM
mid-run while workers send Predict without pause. Reports failed calls and each replica's share
(from the ``wsss-replica`` metadata every answer carries), before and after the late one is up.

``reresolution``: a client connected through a DNS name (a DNS server of our own answering for
it) that first resolves to replica A only; then the name also resolves to replica B. Reports how
long after the change the client's first call lands on B (the server's max connection age closes
the connection, the client re-resolves).

    python bench/scale_out.py [--age 2] [--seconds 20]      # writes bench/results/scale_out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port  # noqa: E402
from service.channel_config import channel_options  # noqa: E402
from service.healthcheck import main as healthcheck  # noqa: E402
from wsss.v1 import segmentation_pb2 as pb  # noqa: E402
from wsss.v1 import segmentation_pb2_grpc as pb_grpc  # noqa: E402


def start_replica(name: str, host: str, port: int, age: float, log: IO[str], **env: str) -> subprocess.Popen[str]:
    """``python -m service`` as replica ``name`` on host:port (not waiting for it)."""
    full = dict(os.environ, WSSS_HOST=host, WSSS_PORT=str(port), WSSS_METRICS_ENABLED="false", WSSS_REPLICA_NAME=name,
                WSSS_MAX_CONNECTION_AGE_SECONDS=str(age), WSSS_MAX_CONNECTION_AGE_GRACE_SECONDS="10", WSSS_SHUTDOWN_GRACE_SECONDS="10",
                WSSS_INTRA_OP_THREADS="1", WSSS_LOG_LEVEL="INFO", **env)
    return subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=full, stdout=log, stderr=subprocess.STDOUT, text=True)


def wait_serving(proc: subprocess.Popen[str], address: str, timeout: float = 180.0) -> float:
    """Block until ``address`` reports SERVING; returns time.monotonic() then."""
    deadline = time.monotonic() + timeout
    while healthcheck([address]) != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"replica at {address} did not become SERVING (exit {proc.poll()})")
        time.sleep(0.2)
    return time.monotonic()


def _request() -> pb.PredictRequest:
    image = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    return pb.PredictRequest(image=pb.Image(raw=pb.RawImage(data=image.tobytes(), height=96, width=96, channels=3)))


def answering_replica(response: pb.PredictResponse, call: grpc.Call) -> str:
    return str(dict(call.trailing_metadata() or ()).get("wsss-replica", "?"))


class Load:
    """Workers sending Predict in a loop on one channel; every outcome is (time, ``label`` of the
    answer: by default the replica that answered) or (time, error)."""

    def __init__(self, channel: grpc.Channel, workers: int,
                 label: Callable[[pb.PredictResponse, grpc.Call], str] = answering_replica) -> None:
        self.label = label
        self.stub = pb_grpc.SegmentationServiceStub(channel)
        self.request = _request()
        self.outcomes: list[tuple[float, str]] = []
        self.errors: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                response, call = self.stub.Predict.with_call(self.request, timeout=30)
                with self._lock:
                    self.outcomes.append((time.monotonic(), self.label(response, call)))
            except grpc.RpcError as err:
                with self._lock:
                    self.errors.append((time.monotonic(), f"{err.code().name}: {err.details()}"))  # type: ignore[attr-defined]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def spread(self, since: float = 0.0, until: float = float("inf")) -> dict[str, int]:
        with self._lock:
            return dict(Counter(r for t, r in self.outcomes if since <= t < until))


def churn(age: float = 2.0, seconds: float = 20.0, workers: int = 3, logs: Path | None = None) -> dict[str, object]:
    """Three replicas, one late, one sent SIGTERM mid-run, under round_robin without retries."""
    logs = logs or Path("/tmp")
    ports = [free_port() for _ in range(3)]
    files = [open(logs / f"replica{i}.log", "w") for i in range(3)]  # noqa: SIM115
    procs: list[subprocess.Popen[str] | None] = [None, None, None]
    try:
        for i in (0, 1):
            procs[i] = start_replica(f"r{i}", "127.0.0.1", ports[i], age, files[i])
        for i in (0, 1):
            wait_serving(procs[i], f"127.0.0.1:{ports[i]}")  # type: ignore[arg-type]
        target = "ipv4:" + ",".join(f"127.0.0.1:{p}" for p in ports)
        with grpc.insecure_channel(target, options=channel_options(retry=False)) as channel:
            load = Load(channel, workers)
            t0 = time.monotonic()
            load.start()
            time.sleep(1.0)
            t_launch = time.monotonic()
            procs[2] = start_replica("r2", "127.0.0.1", ports[2], age, files[2])
            t_late = wait_serving(procs[2], f"127.0.0.1:{ports[2]}")
            time.sleep(max(0.0, t0 + seconds / 2 - time.monotonic()))
            t_term = time.monotonic()
            procs[0].send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            end = max(t0 + seconds, t_late + 2 * age + 4.0)
            time.sleep(max(0.0, end - time.monotonic()))
            load.stop()
            term_exit = procs[0].wait(timeout=60)  # type: ignore[union-attr]
        after = load.spread(since=t_late + 2 * age)
        total_after = sum(after.values())
        return {
            "replicas": 3, "workers": workers, "max_connection_age_s": age, "seconds": round(time.monotonic() - t0, 1),
            # SERVING as our 0.2 s health polling saw it (clients watching health may see it first)
            "late_replica_serving_at_s": round(t_late - t0, 1), "sigterm_at_s": round(t_term - t0, 1), "sigterm_exit_code": term_exit,
            "calls": len(load.outcomes), "failed": len(load.errors), "errors": [e for _, e in load.errors[:5]],
            "late_replica_started_at_s": round(t_launch - t0, 1),
            "spread_before_late": load.spread(until=t_launch), "spread_late_to_sigterm": load.spread(since=t_launch, until=t_term),
            "spread_after_sigterm": load.spread(since=t_term),
            "late_share_from_2x_age_after_start": round(after.get("r2", 0) / total_after, 3) if total_after else 0.0,
        }
    finally:
        for p in procs:
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        for f in files:
            f.close()


def reresolution(age: float = 2.0, workers: int = 2, logs: Path | None = None) -> dict[str, object]:
    """A name that resolves to A, then to A and B: seconds until the connected client reaches B."""
    from tests.dns_server import DnsServer

    logs = logs or Path("/tmp")
    port = free_port()
    hosts = {"A": "127.0.0.2", "B": "127.0.0.3"}
    files = {k: open(logs / f"replica_{k}.log", "w") for k in hosts}  # noqa: SIM115
    procs = {k: start_replica(k, h, port, age, files[k]) for k, h in hosts.items()}
    dns = DnsServer({"replicas.wsss.test": [hosts["A"]]})
    try:
        for k, h in hosts.items():
            wait_serving(procs[k], f"{h}:{port}")
        target = f"dns://127.0.0.1:{dns.port}/replicas.wsss.test:{port}"
        with grpc.insecure_channel(target, options=channel_options(retry=False)) as channel:
            load = Load(channel, workers)
            load.start()
            time.sleep(max(3.0, 1.5 * age))
            before = load.spread()
            t_change = time.monotonic()
            dns.records["replicas.wsss.test"] = [hosts["A"], hosts["B"]]
            deadline = t_change + 6 * age + 10
            while "B" not in load.spread(since=t_change) and time.monotonic() < deadline:
                time.sleep(0.05)
            first_b = min((t for t, r in load.outcomes if r == "B"), default=None)
            time.sleep(2 * age)
            load.stop()
        return {
            "max_connection_age_s": age, "spread_before_change": before, "spread_after_change": load.spread(since=t_change),
            "seconds_to_first_call_on_new_replica": None if first_b is None else round(first_b - t_change, 2),
            "failed": len(load.errors), "errors": [e for _, e in load.errors[:5]], "dns_queries": dns.queries,
        }
    finally:
        dns.close()
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        for f in files.values():
            f.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--age", type=float, default=2.0, help="WSSS_MAX_CONNECTION_AGE_SECONDS of the replicas")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "scale_out.json"))
    args = parser.parse_args()
    report = {"machine": f"{platform.machine()} x{os.cpu_count()} cores", "command": "python bench/scale_out.py",
              "churn": churn(args.age, args.seconds), "reresolution": reresolution(args.age)}
    print(json.dumps(report, indent=2))
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
