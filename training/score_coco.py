"""``score-coco``: the mIoU of a COCO segmentation file (e.g. ``weakseg label``'s annotations.json)
against a data set folder's masks, scored as ``evaluate`` scores its methods: label maps painted
from the annotations (class = category id), a data-set-level confusion over the split, and on a
data set without a background class every 0 / 255 pixel takes the nearest labelled pixel's class
(the first tagged class when none has one)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from service.pipeline.encoding import decode_rle
from training.datasets import DatasetError, DatasetFolder
from training.evaluate import MethodScore
from training.pseudo_label import fill_unlabelled


def label_maps(coco: dict[str, Any]) -> dict[str, npt.NDArray[np.uint8]]:
    """Image file stem -> label map painted from the COCO dict's annotations (compressed RLE)."""
    maps = {}
    by_id = {}
    for im in coco["images"]:
        maps[Path(im["file_name"]).stem] = np.zeros((int(im["height"]), int(im["width"])), np.uint8)
        by_id[im["id"]] = Path(im["file_name"]).stem
    for a in coco["annotations"]:
        lm = maps[by_id[a["image_id"]]]
        seg = a["segmentation"]
        if not isinstance(seg, dict) or not isinstance(seg.get("counts"), str):
            raise DatasetError(f"annotation {a.get('id')}: only compressed RLE segmentations are read here")
        lm[decode_rle(seg["counts"], *lm.shape)] = int(a["category_id"])
    return maps


def score(folder: DatasetFolder, ids: Sequence[str], coco_path: Path) -> dict[str, object]:
    """mIoU of ``coco_path`` on ``ids`` of ``folder`` (every id must be in the file)."""
    coco = json.loads(Path(coco_path).read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    if any(names.get(k + 1) != c for k, c in enumerate(folder.classes)):
        raise DatasetError(f"{coco_path}: categories {names} are not {folder.root}/labels.txt's classes with ids 1..{len(folder.classes)}")
    maps = label_maps(coco)
    missing = [i for i in ids if i not in maps]
    if missing:
        raise DatasetError(f"{coco_path} lacks {len(missing)} image(s) of the split, e.g. {missing[:3]}")
    result = MethodScore(len(folder.classes))
    background = folder.has_background
    for i in ids:
        pred = maps[i]
        if not background:
            tagged = [folder.classes.index(n) + 1 for n in folder.weak_labels(i).image_labels]
            pred = fill_unlabelled(pred, tagged[0] if tagged else 0)
        result.add(pred, folder.mask(i), 0.0)
    return {"dataset": folder.name, "coco": str(coco_path), "split": {"images": len(ids), "first": ids[0], "last": ids[-1]},
            **result.report(folder.classes)}
