"""annotations.json: the run's masks as a COCO instance-segmentation file (pycocotools loads it;
with ``score`` on each annotation, its ``annotations`` list is also a COCO results list for COCOeval)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.labeling.journal import Entry, write_atomic


def build(entries: Sequence[Entry], classes: Sequence[str]) -> dict[str, Any]:
    """COCO dict of the OK entries: images (ids 1..N in entry order), categories (the served
    classes, id = class id), one annotation per instance."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, e in enumerate((e for e in entries if e.get("status") == "ok"), start=1):
        images.append({"id": image_id, "file_name": e["file_name"], "width": e["width"], "height": e["height"],
                       "review_score": e["review_score"], "labels_source": e["labels_source"]})
        for a in e["annotations"]:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **a})
    return {
        "info": {"description": "WeakSeg bulk labeling (weakseg label)", "date_created": datetime.now(UTC).isoformat(timespec="seconds")},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k, "name": name, "supercategory": ""} for k, name in enumerate(classes, start=1)],
    }


def write(out: Path, entries: Sequence[Entry], classes: Sequence[str]) -> Path:
    path = out / "annotations.json"
    write_atomic(path, json.dumps(build(entries, classes), separators=(",", ":")).encode())
    return path
