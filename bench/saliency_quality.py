"""How well a salient-object model (cam_saliency's one-class DeepLab) finds the objects of a folder
with class-agnostic object masks (ecssd: never trained on, validation only).

Per image the model's saliency (``training.saliency.SaliencyModel.probability``, as cam_saliency
runs it) against the mask's object pixels (every label above 0; 255 ignored): the object IoU at
0.5 over the whole folder and per image, the mean absolute error of the probability (MAE, the
salient-object literature's figure) and the seconds per image.

    python bench/saliency_quality.py work/real/shared/saliency [--data ../shared/data/ecssd] [--n 1000] [--out F.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.datasets import DatasetFolder  # noqa: E402
from training.saliency import SaliencyModel  # noqa: E402


def score(model: SaliencyModel, folder: DatasetFolder, ids: list[str]) -> dict[str, float | int]:
    """Object IoU (data set and mean per image), MAE and seconds per image of ``model`` on ``ids``."""
    inter = union = 0
    ious, errors, seconds = [], [], 0.0
    for image_id in ids:
        image, mask = folder.image(image_id), folder.mask(image_id)
        start = time.perf_counter()
        p = model.probability(image)
        seconds += time.perf_counter() - start
        valid = mask != 255
        obj, pred = (mask > 0) & valid, (p >= 0.5) & valid
        i, u = int((obj & pred).sum()), int((obj | pred).sum())
        inter, union = inter + i, union + u
        ious.append(i / u if u else 1.0)
        errors.append(float(np.abs(p[valid] - obj[valid]).mean()) if valid.any() else 0.0)
    return {"images": len(ids), "object_iou": round(inter / max(union, 1), 4), "mean_image_iou": round(float(np.mean(ious)), 4),
            "mae": round(float(np.mean(errors)), 4), "seconds_per_image": round(seconds / max(len(ids), 1), 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo", help="the salient-object model's repository (its deeplab: background and one class)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ecssd"))
    parser.add_argument("--n", type=int, default=0, help="the first N images (0: all)")
    parser.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    folder = DatasetFolder(Path(args.data))
    ids = folder.select(None)
    ids = ids[: args.n] if args.n else ids
    result = {"repo": args.repo, "data": folder.name, **score(SaliencyModel(Path(args.repo)), folder, ids)}
    print(json.dumps(result))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
