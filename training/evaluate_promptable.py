"""``evaluate-promptable``: the promptable (SAM-contract) model alone on a folder's masks, class-agnostic.

Each 8-connected object of the ground truth gets one prompt derived from it
(``training/derive_labels.py``): its bounding box, or one click at its most interior pixel. The
masks of an image's objects are united and scored against the ground truth as object vs background
(one confusion matrix over the split; ground-truth 255 ignored, e.g. DUTS/ECSSD's soft edges).
Mask choice, as segment-anything is used: a box takes the single-mask output (index 0), a click
the multimask output of highest predicted IoU; ``*_index3`` rows take the mask the service's
pipeline takes (``WSSS_SAM_MASK_INDEX`` = 3) for both.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from service.models.sam import SamDecoder, SamEncoder
from service.pipeline.types import IGNORE
from service.runtime import ModelRepository
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend
from training.datasets import DatasetFolder
from training.derive_labels import boxes, points
from training.evaluate import MethodScore

MODES = ("box", "click", "box_index3", "click_index3")
OBJECT = ("object",)


def _choose(mode: str, iou: npt.NDArray[np.float32]) -> int:
    if len(iou) == 1:
        return 0
    if mode.endswith("index3"):
        return 3
    return 0 if mode == "box" else 1 + int(np.argmax(iou[1:4]))


def evaluate_promptable(repo: Path, folder: DatasetFolder, ids: Sequence[str]) -> dict[str, object]:
    """mIoU (object / background) of each prompt mode over ``ids``."""
    backend = OnnxRuntimeBackend(ModelRepository(repo), "CPUExecutionProvider")
    backend.load(["sam_encoder", "sam_decoder"])
    encoder, decoder = SamEncoder(backend), SamDecoder(backend)
    scores = {m: MethodScore(1) for m in MODES}
    objects = 0
    for image_id in tqdm(ids, desc=f"evaluate-promptable {folder.name}", unit="img"):
        image, gt = folder.image(image_id), folder.mask(image_id)
        binary = np.where(gt == IGNORE, IGNORE, (gt > 0).astype(np.uint8)).astype(np.uint8)
        start = time.perf_counter()
        emb = encoder.embed(image)
        encode_s = time.perf_counter() - start
        prompts = {
            "box": [(np.array([[b.x0, b.y0], [b.x1, b.y1]], np.float32), np.array([2.0, 3.0], np.float32)) for b in boxes(binary, OBJECT)],
            "click": [(np.array([[c.x, c.y]], np.float32), np.ones(1, np.float32)) for c in points(binary, OBJECT)],
        }
        objects += len(prompts["box"])
        for mode in MODES:
            start = time.perf_counter()
            pred = np.zeros(gt.shape, np.uint8)
            for coords, labels in prompts[mode.removesuffix("_index3")]:
                out = decoder.predict(emb, coords, labels)
                k = _choose(mode, out.iou_predictions)
                pred |= (decoder.upsample(out.low_res_logits[k : k + 1], emb.geometry)[0] > 0).astype(np.uint8)
            scores[mode].add(pred, binary, encode_s + time.perf_counter() - start)
    return {
        "dataset": folder.name,
        "split": {"images": len(ids), "first": ids[0], "last": ids[-1], "objects": objects},
        "model_repo": str(repo),
        "methods": {m: s.report(("object",)) for m, s in scores.items()},
    }
