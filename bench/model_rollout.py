"""Rolling out DeepLab versions into a live repository under load (``WSSS_MODEL_CONTROL_MODE=poll``).

A server process on a copy of ``model_repo/`` polls it every ``--poll`` seconds while workers send
Predict without pause. New DeepLab versions are dropped in one after another (each a copy of
version 1, written under a temporary name and renamed into place, as ``export --repo`` does);
then a corrupt version. Reports failed calls, seconds from each drop to the first answer from the
new version (in poll periods), the server's RSS before the first swap and after the last one
(load stopped, idle: the old versions freed), and what the corrupt version did.

    python bench/model_rollout.py [--poll 1] [--swaps 5]    # writes bench/results/model_rollout.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port, rss_mib, scraped  # noqa: E402
from bench.scale_out import Load, wait_serving  # noqa: E402
from service.healthcheck import main as healthcheck  # noqa: E402
from wsss.v1 import segmentation_pb2 as pb  # noqa: E402


def answering_version(response: pb.PredictResponse, call: grpc.Call) -> str:
    return response.model_version


def drop_version(repo: Path, version: int, corrupt: bool = False) -> None:
    """Put deeplab version ``version`` into ``repo`` atomically (a copy of version 1, or garbage)."""
    staging = repo / "deeplab" / f".staging-{version}"
    staging.mkdir()
    if corrupt:
        (staging / "model.onnx").write_bytes(b"this is not an ONNX model" * 100)
    else:
        shutil.copy(repo / "deeplab" / "1" / "model.onnx", staging / "model.onnx")
    os.rename(staging, repo / "deeplab" / str(version))


def idle_rss(pid: int, settle: float = 4.0) -> float:
    """RSS once the server has been idle long enough to hand free heap back (it trims after 2 s)."""
    time.sleep(settle)
    return round(rss_mib(pid), 1)


def rollout(work: Path, poll: float = 1.0, swaps: int = 5, workers: int = 3, warm_seconds: float = 15.0) -> dict[str, object]:
    repo = work / "repo"
    shutil.copytree(ROOT / "model_repo", repo)
    port, metrics_port = free_port(), free_port()
    env = dict(os.environ, WSSS_MODEL_REPO=str(repo), WSSS_PORT=str(port), WSSS_HOST="127.0.0.1", WSSS_METRICS_PORT=str(metrics_port),
               WSSS_METRICS_HOST="127.0.0.1", WSSS_MODEL_CONTROL_MODE="poll", WSSS_REPOSITORY_POLL_SECONDS=str(poll),
               WSSS_INTRA_OP_THREADS="1", WSSS_LOG_LEVEL="INFO")
    log_path = work / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            wait_serving(proc, f"127.0.0.1:{port}")
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                warm = Load(channel, workers, answering_version)
                warm.start()
                time.sleep(warm_seconds)
                warm.stop()
                rss_before = idle_rss(proc.pid)
                load = Load(channel, workers, answering_version)
                load.start()
                switches = []
                for version in range(2, 2 + swaps):
                    t_drop = time.monotonic()
                    drop_version(repo, version)
                    deadline = t_drop + 20 * poll + 60
                    while not any(v == str(version) for t, v in load.outcomes[-50:] if t > t_drop) and time.monotonic() < deadline:
                        time.sleep(0.02)
                    first = min((t for t, v in load.outcomes if v == str(version) and t > t_drop), default=None)
                    switches.append(None if first is None else round((first - t_drop) / poll, 2))
                    time.sleep(poll)
                last = str(1 + swaps)
                t_corrupt = time.monotonic()
                drop_version(repo, 2 + swaps, corrupt=True)
                time.sleep(4 * poll + 2)
                after_corrupt = {v for t, v in load.outcomes if t > t_corrupt + 3 * poll}
                serving = healthcheck([f"127.0.0.1:{port}"]) == 0
                load.stop()
                rss_after = idle_rss(proc.pid)
            refused = scraped(metrics_port, 'wsss_model_reloads_total{outcome="refused"}')
            switched = scraped(metrics_port, 'wsss_model_reloads_total{outcome="switched"}')
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    log_text = log_path.read_text()
    corrupt_file = str(repo / "deeplab" / str(2 + swaps) / "model.onnx")
    return {
        "poll_seconds": poll, "workers": workers, "swaps": swaps, "calls": len(warm.outcomes) + len(load.outcomes),
        "failed": len(warm.errors) + len(load.errors), "errors": [e for _, e in (warm.errors + load.errors)[:5]],
        "poll_periods_from_drop_to_first_answer_of_new_version": switches,
        "reloads": {"switched": switched, "refused": refused},
        "rss_mib": {"before_first_swap_idle": rss_before, "after_last_swap_idle": rss_after,
                    "change_pct": round(100 * (rss_after - rss_before) / rss_before, 1)},
        "corrupt_version": {"versions_answering_after_it": sorted(after_corrupt), "still_serving_last_good": after_corrupt == {last},
                            "health_serving": serving, "log_names_the_file": corrupt_file in log_text},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--poll", type=float, default=1.0)
    parser.add_argument("--swaps", type=int, default=5)
    parser.add_argument("--warm-seconds", type=float, default=15.0, help="load before the first swap (the RSS reference)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "model_rollout.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = rollout(Path(tmp), args.poll, args.swaps, warm_seconds=args.warm_seconds)
    report = {"machine": f"{platform.machine()} x{os.cpu_count()} cores", "command": "python bench/model_rollout.py " + " ".join(sys.argv[1:]),
              **result}
    print(json.dumps(report, indent=2))
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
