"""What to label: a data-set folder (images/ + labels.json) or images + a COCO detection file.

Each item is one image with its weak labels as the API's ``WeakLabels``. ``labels`` None means
the image has no labels at all (the server's classifier decides); ``known_empty`` means the input
says the image holds none of the classes (an empty labels.json entry, an image of a COCO file
without annotations): it becomes all background without a request, as ``evaluate`` scores it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.json_format import ParseDict, ParseError

from wsss.v1 import segmentation_pb2 as pb

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


class LabelingError(ValueError):
    """An input that cannot be labelled, with what to fix."""


@dataclass(frozen=True)
class Item:
    """One image to label. ``name``: the output stem (unique in a run)."""

    name: str
    path: Path
    labels: pb.WeakLabels | None
    known_empty: bool = False

    def input_hash(self, options: pb.SegmentOptions, model_set: str = "") -> str:
        """sha256 of what decides the output: the image bytes, the weak labels, the options and the model set."""
        h = hashlib.sha256(self.path.read_bytes())
        h.update(b"\0labels\0" + (self.labels.SerializeToString(deterministic=True) if self.labels is not None else b"none"))
        h.update(b"\0empty\0" + bytes([self.known_empty]))
        h.update(b"\0options\0" + options.SerializeToString(deterministic=True))
        if model_set:
            h.update(b"\0set\0" + model_set.encode())
        return h.hexdigest()


def _unique(items: list[Item]) -> list[Item]:
    seen = Counter(i.name for i in items)
    twice = sorted(n for n, c in seen.items() if c > 1)
    if twice:
        raise LabelingError(f"several images share the output name(s) {twice[:5]} (e.g. a.jpg and a.png): rename them")
    return items


def from_dataset(folder: Path) -> list[Item]:
    """``folder/images/*`` with ``folder/labels.json`` (``{"<id>": <WeakLabels as JSON>}``; an image
    without an entry is sent without labels, an empty entry is known empty)."""
    images_dir = folder / "images"
    if not images_dir.is_dir():
        raise LabelingError(f"{folder}: no images/ folder; give a data-set folder (images/ + labels.json) or images with --coco FILE")
    labels_path = folder / "labels.json"
    try:
        entries: dict[str, dict[str, object]] = json.loads(labels_path.read_text()) if labels_path.is_file() else {}
    except json.JSONDecodeError as exc:
        raise LabelingError(f"{labels_path}: not JSON ({exc})") from None
    items = []
    for path in sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        entry = entries.get(path.stem)
        if entry is None:
            items.append(Item(path.stem, path, None))
            continue
        try:
            labels = ParseDict(entry, pb.WeakLabels())
        except ParseError as exc:
            raise LabelingError(f"{labels_path}[{path.stem}]: {exc}") from None
        empty = not (labels.image_labels or labels.boxes or labels.points or labels.scribbles or labels.mask_inputs)
        items.append(Item(path.stem, path, labels, known_empty=empty))
    if not items:
        raise LabelingError(f"{images_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return _unique(items)


def class_mapping(names: Sequence[str], served: Sequence[str], renames: dict[str, str]) -> dict[str, str]:
    """Input class name -> served class name: ``renames`` first, then the same name (case-insensitive).

    Raises:
        LabelingError: listing every name that maps to no served class.
    """
    by_lower = {s.lower(): s for s in served}
    mapping, unmapped = {}, []
    for name in names:
        target = renames.get(name, name)
        if target.lower() in by_lower:
            mapping[name] = by_lower[target.lower()]
        else:
            unmapped.append(name)
    if unmapped:
        raise LabelingError(
            f"categor{'y' if len(unmapped) == 1 else 'ies'} {sorted(unmapped)} match no served class {list(served)}; "
            "map them with --map NAME=CLASS (repeatable)"
        )
    return mapping


def from_coco(images_dir: Path, coco_file: Path, served: Sequence[str], renames: dict[str, str]) -> list[Item]:
    """Images of a COCO detection file (``images``, ``annotations`` with ``bbox`` [x, y, w, h],
    ``categories``) as box labels; an image without annotations is known empty."""
    try:
        coco = json.loads(coco_file.read_text())
        images = {int(im["id"]): str(im["file_name"]) for im in coco["images"]}
        categories = {int(c["id"]): str(c["name"]) for c in coco["categories"]}
        annotations = coco.get("annotations", [])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise LabelingError(f"{coco_file}: not a COCO detection file ({exc!r}): needs images[{{id, file_name}}], categories[{{id, name}}]") from None
    used = sorted({categories.get(int(a.get("category_id", -1)), f"<category id {a.get('category_id')}>") for a in annotations})
    mapping = class_mapping(used, served, renames)
    boxes: dict[int, list[pb.BoxLabel]] = {i: [] for i in images}
    for n, a in enumerate(annotations):
        try:
            image_id = int(a["image_id"])
            x, y, w, h = (float(v) for v in a["bbox"])
        except (KeyError, TypeError, ValueError):
            raise LabelingError(f"{coco_file}: annotation {n} needs image_id and bbox [x, y, w, h]") from None
        if image_id not in boxes:
            raise LabelingError(f"{coco_file}: annotation {n} refers to image id {image_id}, which images[] does not list")
        if w <= 0 or h <= 0:
            raise LabelingError(f"{coco_file}: annotation {n} has an empty bbox {a['bbox']}")
        boxes[image_id].append(pb.BoxLabel(label=mapping[categories[int(a["category_id"])]], x0=x, y0=y, x1=x + w, y1=y + h))
    missing = sorted(name for name in images.values() if not (images_dir / name).is_file())
    if missing:
        raise LabelingError(f"{len(missing)} image(s) of {coco_file} are not in {images_dir}, e.g. {missing[:3]}")
    items = [
        Item(Path(name).stem, images_dir / name, pb.WeakLabels(boxes=boxes[i]), known_empty=not boxes[i])
        for i, name in sorted(images.items(), key=lambda kv: kv[1])
    ]
    return _unique(items)
