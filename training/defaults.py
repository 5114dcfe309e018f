"""``build-defaults``: the default models in model_repo/, from the procedural generator, end to end.

generate -> train CAM classifier (image-level labels) -> train promptable model (class-agnostic
instance masks) -> export -> pseudo-label the training images with the service pipeline ->
train DeepLab on the pseudo-labels -> export -> evaluate every method on held-out samples.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from service.models.cam_classifier import CamClassifier
from service.models.deeplab import DeepLab as DeepLabModel
from service.models.sam import SamDecoder, SamEncoder
from service.pipeline.predict import Predictor
from service.pipeline.segment import PipelineConfig, Segmenter
from service.pipeline.types import SegmentInput, WeakLabels
from service.runtime import ModelRepository
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend
from training.common import log, synthetic_set
from training.evaluate import cam_threshold_method, deeplab_method, evaluate, s2c_method
from training.export import check_repo, export_classifier, export_deeplab, export_sam_decoder, export_sam_encoder
from training.synthetic import CLASSES, HELD_OUT_SEED, TRAIN_SEED, generate
from training.train_classifier import train_classifier
from training.train_deeplab import train_deeplab
from training.train_promptable import train_promptable

MODELS = ("cam_classifier", "sam_encoder", "sam_decoder", "deeplab")


def load_segmenter(repo: Path, config: PipelineConfig | None = None) -> tuple[Segmenter, OnnxRuntimeBackend]:
    backend = OnnxRuntimeBackend(ModelRepository(repo), "CPUExecutionProvider")
    backend.load(["cam_classifier", "sam_encoder", "sam_decoder"])
    return Segmenter(CamClassifier(backend), SamEncoder(backend), SamDecoder(backend), config or PipelineConfig()), backend


def evaluate_defaults(repo: Path, n_eval: int = 100) -> dict[str, dict[str, object]]:
    """Every method of the default models' report (CAM threshold, S2C with and without labels,
    DeepLab) on ``n_eval`` held-out generator images: mIoU, per class, seconds per image."""
    segmenter, backend = load_segmenter(repo)
    backend.load(["deeplab"])
    predictor = Predictor(DeepLabModel(backend))
    held_out = []
    for i in range(n_eval):
        s = generate(HELD_OUT_SEED, i)
        held_out.append((s.image, s.mask, tuple(s.labels)))
    methods = {
        "cam_threshold": cam_threshold_method(segmenter),
        "s2c_image_labels": s2c_method(segmenter, use_labels=True),
        "s2c_no_labels": s2c_method(segmenter, use_labels=False),
        "deeplab": deeplab_method(predictor),
    }
    return evaluate(methods, held_out, CLASSES)


def build_defaults(
    repo: Path,
    report_path: Path,
    work: Path,
    n_train: int = 1500,
    n_pseudo: int = 400,
    n_eval: int = 100,
    classifier_steps: int = 1200,
    promptable_steps: int = 1500,
    deeplab_steps: int = 1000,
) -> dict[str, object]:
    """Train, export and evaluate the four default models; returns (and writes) the report."""
    times: dict[str, float] = {}
    t = time.perf_counter()
    data = synthetic_set(TRAIN_SEED, n_train)
    times["generate"] = time.perf_counter() - t

    t = time.perf_counter()
    cls = train_classifier(data, work / "cam_classifier.pt", steps=classifier_steps)
    times["train_classifier"] = time.perf_counter() - t

    t = time.perf_counter()
    enc, dec = train_promptable(data, work / "promptable.pt", steps=promptable_steps)
    times["train_promptable"] = time.perf_counter() - t

    t = time.perf_counter()
    export_classifier(cls, CLASSES, repo)
    export_sam_encoder(enc, repo)
    export_sam_decoder(dec, repo)
    times["export"] = time.perf_counter() - t

    t = time.perf_counter()
    segmenter, _ = load_segmenter(repo)
    pseudo = np.zeros((n_pseudo,) + data.masks.shape[1:], np.uint8)
    for i in range(n_pseudo):
        labels = tuple(CLASSES[c - 1] for c in sorted(set(np.unique(data.masks[i]).tolist()) - {0}))
        pseudo[i] = segmenter.segment(SegmentInput(image=data.images[i], labels=WeakLabels(image_labels=labels))).label_map
        if i % 100 == 0:
            log.info("pseudo-labelled %d/%d", i, n_pseudo)
    times["pseudo_label"] = time.perf_counter() - t

    t = time.perf_counter()
    deeplab = train_deeplab(data.images[:n_pseudo], pseudo, len(CLASSES), work / "deeplab.pt", steps=deeplab_steps, init_from=cls)
    export_deeplab(deeplab, CLASSES, repo)
    check_repo(repo, MODELS)
    times["train_deeplab"] = time.perf_counter() - t

    t = time.perf_counter()
    results = evaluate_defaults(repo, n_eval)
    times["evaluate"] = time.perf_counter() - t

    pseudo_maps = iter(pseudo)
    pseudo_scores = evaluate(
        {"pseudo_labels": lambda _img, _lab: next(pseudo_maps)}, [(data.images[i], data.masks[i], ()) for i in range(n_pseudo)], CLASSES
    )
    report: dict[str, object] = {
        "dataset": f"synthetic held-out (seed {HELD_OUT_SEED}, {n_eval} images, 256x256)",
        "methods": results,
        "pseudo_labels_on_training_images": pseudo_scores["pseudo_labels"],
        "seconds": {k: round(v, 1) for k, v in times.items()},
        "total_seconds": round(sum(times.values()), 1),
        "machine": f"{platform.machine()} {platform.processor() or ''} x{__import__('os').cpu_count()} cores".strip(),
        "settings": {
            "n_train": n_train, "n_pseudo": n_pseudo, "classifier_steps": classifier_steps,
            "promptable_steps": promptable_steps, "deeplab_steps": deeplab_steps,
        },
    }
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    log.info("report: %s", json.dumps(report["methods"], indent=1))
    return report
