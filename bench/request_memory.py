"""One Segment request's own memory peak beside the admission estimate, per image size, with the
CAM random walk on and off; and one SegmentEverything request's beside its own, with segment-anything's
default grid (32 x 32) and its two filters off, so every grid point keeps its 3 masks until NMS (the
case the estimate bounds).

For each size and walk setting a fresh process loads the models, warms them up as the server
does (the encoder's first run measures what a run costs: ``SamEncoder.run_bytes``), runs one
warm-up request of that size, hands freed heap back (``malloc_trim``), resets its peak (VmHWM) and
runs one request (image tags): the peak over the level before it is what one request took; the
estimate is ``Segmenter.working_bytes`` (``EverythingGenerator.working_bytes`` for
SegmentEverything), which the server's memory budget admits requests by: the part that grows
with the image (``image_bytes``, which ``WSSS_MAX_REQUEST_BYTES`` caps) and the encoder's run.
Prints a table and writes JSON.

    .venv/bin/python bench/request_memory.py --out bench/results/request_memory.json

``--repo`` takes another model repository (e.g. the default one with segment-anything's ViT-B in
place of the SAM models: ``python -m training export-sam --model-type vit_b``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_report  # noqa: E402

T = TypeVar("T")


def measured(call: Callable[[], T]) -> tuple[T, float, float]:
    """``call()``'s result, its peak over the level before it (MiB; ``service.memory_peak.growth``,
    as the server measures its encoder: freed heap handed back, VmHWM reset) and its seconds."""
    from service import memory_peak

    start = time.perf_counter()
    result, grown = memory_peak.growth(call)
    seconds = time.perf_counter() - start
    if grown is None:
        raise SystemExit("the peak resident size cannot be read here (needs Linux /proc)")
    return result, round(grown / 2**20, 1), round(seconds, 3)


def one(size: int, steps: int, repo: Path) -> dict[str, float]:
    """Run in the child: the request's peak over the level before it, and the estimate (MiB)."""
    from service.blas import one_blas_thread
    from service.models.cam_classifier import CamClassifier
    from service.models.sam import SamDecoder, SamEncoder
    from service.pipeline.segment import PipelineConfig, Segmenter
    from service.pipeline.types import SegmentInput, WeakLabels
    from service.runtime import ModelRepository
    from service.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from training.synthetic import HELD_OUT_SEED, generate

    one_blas_thread()  # as the server process runs
    backend = OnnxRuntimeBackend(ModelRepository(repo))
    backend.load(["cam_classifier", "sam_encoder", "sam_decoder"])
    seg = Segmenter(CamClassifier(backend), SamEncoder(backend), SamDecoder(backend), PipelineConfig(cam_walk_steps=steps))
    seg.warmup()
    samples = [s for s in (generate(HELD_OUT_SEED, i, size, size) for i in range(10)) if s.labels]
    seg.segment(SegmentInput(image=samples[1].image, labels=WeakLabels(image_labels=tuple(samples[1].labels))))
    request = SegmentInput(image=samples[0].image, labels=WeakLabels(image_labels=tuple(samples[0].labels)))
    result, peak, seconds = measured(lambda: seg.segment(request))
    return {"peak_over_before_mib": peak, "estimate_mib": round(seg.working_bytes(size, size) / 2**20, 1),
            "image_estimate_mib": round(seg.image_bytes(size, size) / 2**20, 1), "encoder_run_mib": round(seg.encoder.run_bytes / 2**20, 1),  # type: ignore[union-attr]
            "seconds": seconds, "cam_walk_ms": round(1000 * dict(result.timings).get("cam_walk", 0.0), 1)}


def everything(size: int, repo: Path) -> dict[str, float]:
    """Run in the child: one SegmentEverything request's peak over the level before it, and its estimate (MiB)."""
    from service.blas import one_blas_thread
    from service.models.sam import SamDecoder, SamEncoder
    from service.pipeline.everything import EverythingGenerator, EverythingOptions
    from service.runtime import ModelRepository
    from service.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from service.settings import Settings
    from training.synthetic import HELD_OUT_SEED, generate

    one_blas_thread()
    settings = Settings()
    backend = OnnxRuntimeBackend(ModelRepository(repo))
    backend.load(["sam_encoder", "sam_decoder"])
    gen = EverythingGenerator(SamEncoder(backend), SamDecoder(backend), settings.max_work_side, settings.max_request_bytes)
    gen.encoder.warmup()
    opts = EverythingOptions(pred_iou_thresh=0.0, stability_score_thresh=0.0)
    gen.run(generate(HELD_OUT_SEED, 1, size, size).image, EverythingOptions(points_per_side=4))
    image = generate(HELD_OUT_SEED, 0, size, size).image
    result, peak, seconds = measured(lambda: gen.run(image, opts))
    return {"peak_over_before_mib": peak, "estimate_mib": round(gen.working_bytes(size, size, opts) / 2**20, 1),
            "encoder_run_mib": round(gen.encoder.run_bytes / 2**20, 1), "seconds": seconds, "proposals": len(result.proposals)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512,1024")
    parser.add_argument("--out", default="bench/results/request_memory.json")
    parser.add_argument("--repo", type=Path, default=None, help="model repository (default: the server's, WSSS_MODEL_REPO)")
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from service.settings import Settings

    repo = (args.repo or Settings().model_repo).resolve()
    if args.child:
        size, steps = args.child
        print(json.dumps(everything(size, repo) if steps < 0 else one(size, steps, repo)))
        return
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for steps in (0, 8):
            out = subprocess.run([sys.executable, __file__, "--child", str(size), str(steps), "--repo", str(repo)], check=True, capture_output=True, text=True)
            row = {"size": size, "cam_walk_steps": steps, **json.loads(out.stdout.strip().splitlines()[-1])}
            rows.append(row)
            print(f"{size:>5}² walk {'on ' if steps else 'off'}: peak +{row['peak_over_before_mib']:7.1f} MiB, estimate {row['estimate_mib']:7.1f} MiB "
                  f"(image {row['image_estimate_mib']}, encoder run {row['encoder_run_mib']}), "
                  f"{1000 * row['seconds']:6.0f} ms (walk {row['cam_walk_ms']} ms)")
    everything_rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--child", str(size), "-1", "--repo", str(repo)], check=True, capture_output=True, text=True)
        row = {"size": size, **json.loads(out.stdout.strip().splitlines()[-1])}
        everything_rows.append(row)
        print(f"{size:>5}² SegmentEverything: peak +{row['peak_over_before_mib']:7.1f} MiB, estimate {row['estimate_mib']:7.1f} MiB, "
              f"{1000 * row['seconds']:6.0f} ms ({row['proposals']} proposals)")
    write_report({"machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"), "repo": str(repo),
                  "request": "one Segment request with image tags, held-out generator image, in process", "rows": rows,
                  "segment_everything": {"request": "one SegmentEverything request, 32 x 32 points, predicted-IoU and stability filters off, "
                                                    "held-out generator image, in process",
                                         "rows": everything_rows}}, args.out)


if __name__ == "__main__":
    main()
