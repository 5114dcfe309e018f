"""Data set folders (the ../shared/data format) and their training arrays.

A folder holds ``images/<id>.<ext>``, optional ``masks/<id>.png`` (uint8 label map: 0 background,
i = class on line i of ``labels.txt``, 255 void), ``labels.txt`` and ``labels.json``
(``{"<id>": <the API's WeakLabels as JSON>}``, e.g. ``{"image_labels": ["crack"]}``).

Splits select ids by a regular expression (full match) or a file of ids, one per line.
For training, images are letterboxed: the long side resized to ``size``, padded at the bottom and
right (the SAM frame's convention) with the ImageNet mean colour, masks padded with 255 (ignored).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from service.models.imageops import IMAGENET_MEAN
from service.pipeline.types import IGNORE, Box, Click, Scribble, WeakLabels
from training.common import TrainingSet, log
from training.derive_labels import components

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


class DatasetError(ValueError):
    """A data set folder or split that cannot be used, with the reason."""


def _weak_labels(entry: dict[str, object], where: str) -> WeakLabels:
    """The API's WeakLabels JSON (image_labels, boxes, points, scribbles) as pipeline values."""
    unknown = set(entry) - {"image_labels", "boxes", "points", "scribbles"}
    if unknown:
        raise DatasetError(f"{where}: unknown weak-label field(s) {sorted(unknown)}")
    try:
        return WeakLabels(
            image_labels=tuple(str(x) for x in entry.get("image_labels", ())),  # type: ignore[attr-defined]
            boxes=tuple(Box(b["label"], float(b["x0"]), float(b["y0"]), float(b["x1"]), float(b["y1"])) for b in entry.get("boxes", ())),  # type: ignore[attr-defined]
            points=tuple(Click(p["label"], float(p["x"]), float(p["y"]), bool(p.get("negative", False))) for p in entry.get("points", ())),  # type: ignore[attr-defined]
            scribbles=tuple(
                Scribble(s["label"], tuple((float(q["x"]), float(q["y"])) for q in s["points"]), float(s.get("width", 0.0)) or 3.0)
                for s in entry.get("scribbles", ())  # type: ignore[attr-defined]
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: malformed weak labels ({exc!r})") from exc


class DatasetFolder:
    """Read-only access to one data set folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not (self.root / "images").is_dir():
            raise DatasetError(f"{self.root}: no images/ folder (is this a data set folder?)")
        if not (self.root / "labels.txt").is_file():
            raise DatasetError(f"{self.root}: no labels.txt (one foreground class name per line)")
        self.classes = tuple(line.strip() for line in (self.root / "labels.txt").read_text().splitlines() if line.strip())
        self._images = {p.stem: p for p in sorted((self.root / "images").iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
        labels_path = self.root / "labels.json"
        self._labels: dict[str, dict[str, object]] = json.loads(labels_path.read_text()) if labels_path.is_file() else {}

    @property
    def name(self) -> str:
        return self.root.resolve().name

    @property
    def ids(self) -> list[str]:
        return list(self._images)

    @property
    def has_masks(self) -> bool:
        return (self.root / "masks").is_dir()

    def select(self, pattern: str | None = None, ids_file: Path | None = None) -> list[str]:
        """Ids matching ``pattern`` (a regular expression, full match) and listed in ``ids_file``."""
        ids = self.ids
        if pattern:
            rx = re.compile(pattern)
            ids = [i for i in ids if rx.fullmatch(i)]
        if ids_file is not None:
            wanted = [line.strip() for line in Path(ids_file).read_text().splitlines() if line.strip()]
            missing = sorted(set(wanted) - set(self._images))
            if missing:
                raise DatasetError(f"{ids_file}: {len(missing)} id(s) have no image in {self.root}/images, e.g. {missing[:3]}")
            keep = set(wanted)
            ids = [i for i in ids if i in keep]
        if not ids:
            raise DatasetError(f"{self.root}: no image id matches the split (pattern {pattern!r}, ids file {ids_file})")
        return ids

    def image(self, image_id: str) -> npt.NDArray[np.uint8]:
        """uint8 [H, W, 3] RGB (gray images replicated)."""
        with Image.open(self._images[image_id]) as img:
            return np.asarray(img.convert("RGB"))

    def mask(self, image_id: str, masks_dir: Path | None = None) -> npt.NDArray[np.uint8]:
        """uint8 [H, W] label map from ``masks_dir`` (default: the folder's masks/)."""
        path = (Path(masks_dir) if masks_dir is not None else self.root / "masks") / f"{image_id}.png"
        if not path.is_file():
            raise DatasetError(f"no mask {path}")
        with Image.open(path) as img:
            if img.mode not in ("L", "P"):
                raise DatasetError(f"{path}: a label map must be single-channel (mode L or P), not {img.mode}")
            return np.asarray(img)

    def weak_labels(self, image_id: str) -> WeakLabels:
        """The image's weak labels from labels.json (empty when it has no entry)."""
        labels = _weak_labels(self._labels.get(image_id, {}), f"{self.root}/labels.json[{image_id}]")
        names = set(labels.image_labels) | {x.label for x in labels.boxes + labels.points + labels.scribbles}  # type: ignore[operator]
        unknown = sorted(names - set(self.classes))
        if unknown:
            raise DatasetError(f"{self.root}/labels.json[{image_id}]: class(es) {unknown} are not in labels.txt")
        return labels

    def labelled(self, image_id: str) -> bool:
        """Whether labels.json has an entry for the image (an empty entry means: none of the classes)."""
        return image_id in self._labels

    @cached_property
    def has_background(self) -> bool:
        """False when masks exist and no pixel of any is 0 (every pixel belongs to a class or is void, as in MSRC)."""
        if not self.has_masks:
            return True
        return any(bool((self.mask(i) == 0).any()) for i in self.ids)


def letterbox(
    image: npt.NDArray[np.uint8], mask: npt.NDArray[np.uint8] | None, size: int
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Long side to ``size`` (bilinear image, nearest mask), padded bottom/right to size x size.

    Returns image uint8 [size, size, 3] (padding = ImageNet mean colour) and mask uint8 [size, size]
    (padding = 255; all 255 when ``mask`` is None).
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    img = np.empty((size, size, 3), np.uint8)
    img[:] = IMAGENET_MEAN.round().astype(np.uint8)
    img[:nh, :nw] = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.BILINEAR))
    lab = np.full((size, size), IGNORE, np.uint8)
    if mask is not None:
        lab[:nh, :nw] = np.asarray(Image.fromarray(mask).resize((nw, nh), Image.Resampling.NEAREST))
    return img, lab


def instances_of(mask: npt.NDArray[np.uint8], min_pixels: int = 4) -> tuple[npt.NDArray[np.int32], tuple[int, ...]]:
    """8-connected components of every class as instances: (instance map int32 [H, W] 0 = none, class id of each)."""
    out = np.zeros(mask.shape, np.int32)
    found = components(mask, min_pixels)
    for n, (_, region) in enumerate(found, start=1):
        out[region] = n
    return out, tuple(k for k, _ in found)


def training_set(folder: DatasetFolder, ids: Sequence[str], size: int, masks_dir: Path | None = None, need_masks: bool = True) -> TrainingSet:
    """Letterboxed images, masks (from ``masks_dir`` or the folder's), instances and labels.json's image-level labels."""
    c = len(folder.classes)
    images = np.empty((len(ids), size, size, 3), np.uint8)
    masks = np.full((len(ids), size, size), IGNORE, np.uint8)
    instances = np.zeros((len(ids), size, size), np.int32)
    instance_classes: list[tuple[int, ...]] = []
    labels = np.zeros((len(ids), c), np.float32)
    for n, image_id in enumerate(ids):
        mask = folder.mask(image_id, masks_dir) if need_masks else None
        image = folder.image(image_id)
        if mask is not None and mask.shape != image.shape[:2]:
            raise DatasetError(f"{image_id}: mask is {mask.shape[1]}x{mask.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}")
        images[n], masks[n] = letterbox(image, mask, size)
        cls: tuple[int, ...] = ()
        if need_masks:
            instances[n], cls = instances_of(masks[n])
        instance_classes.append(cls)
        for name in folder.weak_labels(image_id).image_labels:
            labels[n, folder.classes.index(name)] = 1.0
    log.info("loaded %d images of %s at %d px", len(ids), folder.name, size)
    return TrainingSet(images=images, masks=masks, instances=instances, instance_classes=instance_classes, num_classes=c, labels=labels)


def concatenate(sets: Sequence[TrainingSet]) -> TrainingSet:
    """One class-agnostic set of instance masks from several (image-level labels dropped)."""
    if len({s.images.shape[1:] for s in sets}) != 1:
        raise DatasetError("training sets of different image sizes cannot be concatenated")
    return TrainingSet(
        images=np.concatenate([s.images for s in sets]),
        masks=np.concatenate([s.masks for s in sets]),
        instances=np.concatenate([s.instances for s in sets]),
        instance_classes=[c for s in sets for c in s.instance_classes],
        num_classes=max(s.num_classes for s in sets),
    )
