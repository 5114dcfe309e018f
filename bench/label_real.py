"""``weakseg label`` on real data through a live server, killed and restarted mid-run (issue 15).

Per data set (its evaluation split, the models bench/real_data.py trained on its training split):
- msrc_v2: a data-set folder of the split (images linked, labels.json's tags) -> ``s2c``;
- magnetic_tile: the split's images + a COCO detection file of boxes derived from the masks
  (``training/derive_labels.py``, as ``evaluate`` derives them) -> ``boxes``.
The server (``python -m service``) is SIGKILLed once a third of the images to segment are done; the client
stops after its retries; the server is restarted on the same port and the same command is run
again. Reported: images/s of each run, requests the restarted server answered (its /metrics) vs
images left, and the COCO file's mIoU (``score-coco``) against ``evaluate``'s method on the same
images and models. Writes bench/results/label_real.json.

    python bench/label_real.py [--datasets msrc_v2,magnetic_tile] [--work work/label_real]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port, scraped  # noqa: E402
from bench.real_data import CONFIGS, DATA  # noqa: E402
from service.healthcheck import main as healthcheck  # noqa: E402
from training.derive_labels import boxes as derive_boxes  # noqa: E402

METHOD = {"msrc_v2": "s2c", "magnetic_tile": "boxes"}


def split_ids(name: str) -> list[str]:
    rx = re.compile(CONFIGS[name].eval)
    return sorted(p.stem for p in (DATA / name / "images").iterdir() if rx.fullmatch(p.stem))


def make_input(name: str, ids: list[str], work: Path) -> tuple[list[str], int]:
    """The label command's input for the split; returns its arguments after ``label`` and how many
    images will be sent (the others are known empty: no tags, or no boxes)."""
    src = DATA / name
    folder = work / "input"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for i in ids:
        image = next((src / "images").glob(f"{i}.*"))
        link = folder / "images" / image.name
        if not link.exists():
            link.symlink_to(image.resolve())
    classes = [c.strip() for c in (src / "labels.txt").read_text().splitlines() if c.strip()]
    if METHOD[name] == "s2c":
        labels = json.loads((src / "labels.json").read_text())
        (folder / "labels.json").write_text(json.dumps({i: labels[i] for i in ids if i in labels}))
        return [str(folder)], sum(1 for i in ids if labels.get(i, {"missing": True}) != {"image_labels": []})
    images, anns = [], []
    for n, i in enumerate(ids, start=1):
        mask = np.asarray(Image.open(src / "masks" / f"{i}.png"))
        image = next((folder / "images").glob(f"{i}.*"))
        images.append({"id": n, "file_name": image.name, "height": int(mask.shape[0]), "width": int(mask.shape[1])})
        for b in derive_boxes(mask, classes):
            anns.append({"id": len(anns) + 1, "image_id": n, "category_id": classes.index(b.label) + 1,
                         "bbox": [b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0]})
    det = work / "detections.json"
    det.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": k + 1, "name": c} for k, c in enumerate(classes)]}))
    return [str(folder / "images"), "--coco", str(det)], len({a["image_id"] for a in anns})


def start_server(repo: Path, port: int, metrics_port: int, log: Path, stuff: float) -> subprocess.Popen[bytes]:
    env = dict(os.environ, WSSS_MODEL_REPO=str(repo), WSSS_PORT=str(port), WSSS_HOST="127.0.0.1", WSSS_METRICS_PORT=str(metrics_port),
               WSSS_METRICS_HOST="127.0.0.1", WSSS_STUFF_AGREEMENT=str(stuff))
    proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while healthcheck([f"127.0.0.1:{port}"]) != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start; see {log}")
        time.sleep(0.5)
    return proc


def stream_items(metrics_port: int) -> int:
    """SegmentStream items the server answered (its Prometheus counter)."""
    return int(scraped(metrics_port, "wsss_requests_total{", 'rpc="SegmentStream"'))


def journal_ok(out: Path, sent_only: bool = False) -> int:
    """Images done (``sent_only``: those the server answered, not the known-empty ones written without a request)."""
    path = out / "journal.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return sum(1 for line in lines if '"status":"ok"' in line and not (sent_only and '"KNOWN_EMPTY"' in line))


def run_dataset(name: str, work: Path) -> dict[str, object]:
    repo = ROOT / "work" / "real" / name / "repo_ssc_cpm"
    if not repo.is_dir():
        raise SystemExit(f"{repo} is missing: run bench/real_data.py first (it trains the models on the training split)")
    work.mkdir(parents=True, exist_ok=True)
    ids = split_ids(name)
    label_args, to_send = make_input(name, ids, work)
    out = work / "out"
    stuff = CONFIGS[name].stuff_agreement
    port, m1, m2 = free_port(), free_port(), free_port()
    client = [sys.executable, "-m", "service.client", "--address", f"127.0.0.1:{port}", "label", *label_args, "--out", str(out),
              "--retries", "2", "--backoff", "0.5"]
    server = start_server(repo, port, m1, work / "server1.log", stuff)
    start = time.perf_counter()
    first = subprocess.Popen(client, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while journal_ok(out, sent_only=True) < to_send // 3:
        if first.poll() is not None:
            raise RuntimeError(f"the first run ended before the kill: {first.stdout.read() if first.stdout else ''}")
        time.sleep(0.1)
    done_at_kill, sent_at_kill = journal_ok(out), journal_ok(out, sent_only=True)
    first_seconds = time.perf_counter() - start
    server.send_signal(signal.SIGKILL)
    server.wait()
    first_out = first.communicate(timeout=120)[0]
    done_first = journal_ok(out)
    server = start_server(repo, port, m2, work / "server2.log", stuff)
    try:
        start = time.perf_counter()
        second = subprocess.run(client, cwd=ROOT, capture_output=True, text=True)
        second_seconds = time.perf_counter() - start
        answered = stream_items(m2)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    score_path = work / "score_coco.json"
    subprocess.run([sys.executable, "-m", "training", "score-coco", "--data", str(DATA / name), "--ids", CONFIGS[name].eval,
                    "--coco", str(out / "annotations.json"), "--out", str(score_path)], cwd=ROOT, check=True, capture_output=True)
    eval_path = work / "evaluate.json"
    subprocess.run([sys.executable, "-m", "training", "evaluate", "--data", str(DATA / name), "--ids", CONFIGS[name].eval,
                    "--model-repo", str(repo), "--methods", METHOD[name], "--overlays", "0", "--stuff-agreement", str(stuff),
                    "--out", str(eval_path)], cwd=ROOT, check=True, capture_output=True)
    coco_miou = json.loads(score_path.read_text())["miou"]
    eval_miou = json.loads(eval_path.read_text())["methods"][METHOD[name]]["miou"]
    coco = json.loads((out / "annotations.json").read_text())
    result = {
        "dataset": name, "split": f"evaluation split ({CONFIGS[name].eval}), {len(ids)} images", "method": METHOD[name],
        "models": str(repo.relative_to(ROOT)), "first_run": {"exit": first.returncode, "images_done": done_first, "done_at_kill": done_at_kill,
                                                              "seconds_to_kill": round(first_seconds, 1), "tail": first_out.strip().splitlines()[-2:]},
        "second_run": {"exit": second.returncode, "seconds": round(second_seconds, 1), "tail": second.stdout.strip().splitlines()[-2:]},
        "images_to_segment": to_send, "images_left_after_kill": len(ids) - done_first, "restarted_server_answered": answered,
        "images_per_second": {"note": "images the server segmented per second of the run (known-empty images are written without a request)",
                              "first_run": round(sent_at_kill / first_seconds, 2), "second_run": round((len(ids) - done_first) / second_seconds, 2)},
        "coco_images": len(coco["images"]), "coco_annotations": len(coco["annotations"]),
        "miou": {"coco_file": coco_miou, f"evaluate_{METHOD[name]}": eval_miou, "difference": round(coco_miou - eval_miou, 4)},
    }
    print(json.dumps(result, indent=2), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="msrc_v2,magnetic_tile")
    parser.add_argument("--work", default=str(ROOT / "work" / "label_real"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "label_real.json"))
    args = parser.parse_args()
    results = [run_dataset(n, Path(args.work) / n) for n in args.datasets.split(",")]
    report = {"machine": f"{platform.machine()} x{os.cpu_count()} cores", "command": "python bench/label_real.py", "runs": results}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
