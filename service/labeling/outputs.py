"""One finished image -> its files in the output folder and its journal entry.

Files: ``masks/<name>.png`` (the label map as a VOC-palette PNG: its pixel values are the class
ids, so the folder is a ``train-deeplab --labels`` folder and the colours show in any viewer),
``confidence/<name>.png`` (8-bit confidence in each pixel's label, MASK_FORMAT_CONFIDENCE),
``overlays/<name>.jpg`` (for the review page). The entry holds what annotations.json and
review.html are built from: one annotation per instance (COCO RLE, bbox, area, score, the weak
label it came from).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from service.labeling.inputs import Item
from service.labeling.journal import Entry, file_hash, write_atomic
from service.pipeline.encoding import decode_rle
from service.render import overlay, palette
from wsss.v1 import segmentation_pb2 as pb

OVERLAY_MAX_SIDE = 512


def _png(array: npt.NDArray[np.uint8], with_palette: bool) -> bytes:
    img = Image.fromarray(array, mode="L")
    if with_palette:
        img = img.convert("P")
        img.putpalette(palette().reshape(-1).tolist())
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _overlay_jpeg(path: Path, label_map: npt.NDArray[np.uint8]) -> bytes:
    with Image.open(path) as img:
        image = np.asarray(img.convert("RGB"))
    shown = Image.fromarray(overlay(image, label_map))
    shown.thumbnail((OVERLAY_MAX_SIDE, OVERLAY_MAX_SIDE))
    buf = io.BytesIO()
    shown.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _bbox(mask: npt.NDArray[np.bool_]) -> list[float]:
    """COCO bbox [x, y, width, height] of a non-empty mask (pixel edges, as pycocotools' toBbox)."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def _weak_label(inst: pb.InstanceResult) -> dict[str, object]:
    """The weak label an instance came from: a box (x0, y0, x1, y1), or the points that prompted it."""
    corners = {p.label: (p.x, p.y) for p in inst.prompts if p.label in (2, 3)}
    if inst.kind == "box" and len(corners) == 2:
        return {"kind": "box", "box": [*corners[2], *corners[3]]}
    return {
        "kind": {"cam": "tags"}.get(inst.kind, inst.kind),
        "sources": sorted({p.source for p in inst.prompts}),
        "points": [[round(p.x, 2), round(p.y, 2), int(p.label)] for p in inst.prompts],
    }


def _files(out: Path, item: Item, label_map: npt.NDArray[np.uint8], confidence_png: bytes) -> dict[str, str]:
    files = {"mask": f"masks/{item.name}.png", "confidence": f"confidence/{item.name}.png", "overlay": f"overlays/{item.name}.jpg"}
    write_atomic(out / files["overlay"], _overlay_jpeg(item.path, label_map))
    write_atomic(out / files["confidence"], confidence_png)
    write_atomic(out / files["mask"], _png(label_map, with_palette=True))
    return files


def _base(out: Path, item: Item, input_hash: str, files: dict[str, str], height: int, width: int) -> Entry:
    return {
        "image": item.name, "file_name": str(item.path.name), "path": str(item.path), "width": width, "height": height,
        "status": "ok", "input_sha256": input_hash, **files, "mask_sha256": file_hash(out / files["mask"]),
    }


def ok_entry(out: Path, item: Item, input_hash: str, resp: pb.SegmentResponse) -> Entry:
    """Write a response's files; return its journal entry."""
    label_map = np.asarray(Image.open(io.BytesIO(resp.mask.png)))
    h, w = label_map.shape
    files = _files(out, item, label_map, resp.mask.confidence)
    annotations = []
    for c in resp.classes:
        for inst in c.instances:
            region = decode_rle(inst.rle.counts, h, w) if inst.rle.counts else np.zeros((h, w), bool)
            if not region.any():
                continue  # an instance whose pixels all went to other instances or classes
            annotations.append({
                "category_id": int(c.class_id), "segmentation": {"size": [h, w], "counts": inst.rle.counts},
                "bbox": _bbox(region), "area": int(region.sum()), "iscrowd": 0,
                "score": round(float(inst.sam_iou) * float(inst.stability_score), 4),
                "weak_label": _weak_label(inst),
            })
    return {
        **_base(out, item, input_hash, files, h, w),
        "review_score": round(float(resp.review_score), 4),
        "uncertain_fraction": round(float(resp.uncertain_fraction), 4),
        "labels_source": pb.LabelsSource.Name(resp.labels_source),
        "classes": [
            {"id": int(c.class_id), "name": c.class_name, "area": int(c.area), "confidence": round(float(c.confidence), 4),
             "sam_iou": round(float(c.sam_iou), 4), "stability": round(float(c.stability_score), 4)}
            for c in resp.classes
        ],
        "annotations": annotations,
    }


def empty_entry(out: Path, item: Item, input_hash: str) -> Entry:
    """An image the input says holds none of the classes: all background, nothing sent."""
    with Image.open(item.path) as img:
        w, h = img.size
    label_map = np.zeros((h, w), np.uint8)
    files = _files(out, item, label_map, _png(np.full((h, w), 255, np.uint8), with_palette=False))
    return {**_base(out, item, input_hash, files, h, w), "review_score": 0.0, "uncertain_fraction": 0.0,
            "labels_source": "KNOWN_EMPTY", "classes": [], "annotations": []}


def error_entry(item: Item, input_hash: str, code_name: str, message: str) -> Entry:
    """A per-item failure the server reported (a re-run tries the image again)."""
    return {"image": item.name, "file_name": item.path.name, "path": str(item.path), "status": "error",
            "input_sha256": input_hash, "code": code_name, "message": message}
