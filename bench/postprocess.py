"""Post-processing cost per stage on 512x512 images, next to the model stages of the same runs.

Runs the Segment pipeline in process (no server) on held-out generator images of 512x512 with each
refinement (none, CRF, superpixel) and reports mean milliseconds per stage; post-processing
(the CAM random walk, prompts, aggregation, refinement, encode) must not be the bottleneck next to the models (cam,
sam_encoder, sam_decoder). Prints a table and writes JSON.

    .venv/bin/python bench/postprocess.py --n 10 --out bench/results/postprocess.json
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_report  # noqa: E402
from service.blas import one_blas_thread  # noqa: E402
from service.models.cam_classifier import CamClassifier  # noqa: E402
from service.models.sam import SamDecoder, SamEncoder  # noqa: E402
from service.pipeline.segment import PipelineConfig, Segmenter  # noqa: E402
from service.pipeline.types import MaskFormat, Refinement, SegmentInput, SegmentOptions, WeakLabels  # noqa: E402
from service.runtime import ModelRepository  # noqa: E402
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from service.settings import Settings  # noqa: E402
from training.synthetic import HELD_OUT_SEED, generate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", default="bench/results/postprocess.json")
    args = parser.parse_args()
    one_blas_thread()  # as the server process runs (service/blas.py)
    backend = OnnxRuntimeBackend(ModelRepository(Settings().model_repo))
    backend.load(["cam_classifier", "sam_encoder", "sam_decoder"])
    seg = Segmenter(CamClassifier(backend), SamEncoder(backend), SamDecoder(backend), PipelineConfig())
    samples = [s for s in (generate(HELD_OUT_SEED, i, args.size, args.size) for i in range(3 * args.n)) if s.labels][: args.n]
    report: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "images": f"{len(samples)} held-out generator images, {args.size}x{args.size}, image-level labels",
    }
    formats = frozenset({MaskFormat.PNG, MaskFormat.COCO_RLE})
    for method in (Refinement.NONE, Refinement.CRF, Refinement.SUPERPIXEL):
        stages: dict[str, list[float]] = defaultdict(list)
        opts = SegmentOptions(mask_formats=formats, refinement=method)
        for s in samples:
            result = seg.segment(SegmentInput(image=s.image, labels=WeakLabels(image_labels=tuple(s.labels)), options=opts))
            for stage, sec in result.timings:
                stages[stage].append(sec)
        means = {k: round(1000 * float(np.mean(v)), 2) for k, v in stages.items()}
        post = sum(means.get(k, 0.0) for k in ("cam_walk", "prompts", "aggregation", "refinement", "encode"))
        model = sum(means.get(k, 0.0) for k in ("cam", "sam_encoder", "sam_decoder"))
        report[method.value] = {"stages_mean_ms": means, "post_processing_ms": round(post, 2), "model_stages_ms": round(model, 2)}
        print(f"{method.value:>10}: post-processing {post:7.1f} ms vs model stages {model:7.1f} ms  {means}")
    write_report(report, args.out)


if __name__ == "__main__":
    main()
