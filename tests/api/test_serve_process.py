"""``python -m service`` as a process: serves, exposes /metrics, exits 0 on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from service.healthcheck import main as healthcheck
from service.settings import REPO_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_process_serves_metrics_and_stops_cleanly_on_sigterm() -> None:
    port, metrics_port = _free_port(), _free_port()
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
