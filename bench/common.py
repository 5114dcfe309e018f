"""Helpers the benchmark scripts share: request images, a server process on loopback, reports."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 [H, W, 3] -> PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scraped(metrics_port: int, prefix: str, contains: str = "") -> float:
    """Sum of a server's Prometheus samples (its /metrics on 127.0.0.1) whose line starts with
    ``prefix`` and contains ``contains`` (e.g. ``wsss_requests_total{``, ``rpc="SegmentStream"``)."""
    import urllib.request

    body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(prefix) and contains in line)


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of process ``pid`` in MiB (Linux /proc); ``field="VmHWM"`` gives its peak
    since start or the last ``reset_peak``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid: int) -> None:
    """Start ``rss_mib(pid, "VmHWM")`` afresh from the current resident size (Linux)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` in seconds, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(code: Path = ROOT, log: Path | None = None, start_seconds: float = 120.0,
                 **env_overrides: str) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m service`` of the checkout ``code`` (default: this one) on a free loopback port,
    the default models unless ``WSSS_MODEL_REPO`` says otherwise; its output goes to ``log`` when
    given (else this process's). Returns once SERVING, or exits when it has not in ``start_seconds``."""
    from service.healthcheck import main as healthcheck

    port = free_port()
    env = dict(os.environ, WSSS_PORT=str(port), WSSS_HOST="127.0.0.1", WSSS_METRICS_ENABLED="false", WSSS_LOG_LEVEL="WARNING")
    env.update(env_overrides)
    if log is None:
        proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=code, env=env)
    else:
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=code, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + start_seconds
    while healthcheck([f"127.0.0.1:{port}"]) != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("server did not start" + (f": {log.read_text()[-2000:]}" if log is not None else ""))
        time.sleep(0.5)
    return proc, port


def write_report(report: dict[str, object], out: str) -> None:
    """Print the report and write it as JSON to ``out`` (relative to the repository root)."""
    print(json.dumps(report, indent=2))
    path = ROOT / out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
