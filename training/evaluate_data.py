"""``evaluate``: every method's mIoU on a data set folder with ground-truth masks.

Methods (each a function of one sample to a label map, scored over the whole split):
- ``cam_threshold``, ``cam_crf``: label maps from the multi-scale CAMs of the tagged classes
  (``training/cam_labels.py``);
- ``s2c``: the service pipeline with the image-level labels (CAM peaks -> SAM-contract masks);
- ``s2c_crf``: the same with the pipeline's CRF refinement;
- ``s2c_no_labels``: the pipeline with no labels (classes from the classifier), as served;
- ``boxes``, ``points``, ``scribbles``: the pipeline with labels derived from the masks
  (``training/derive_labels.py``) when labels.json has none of that kind;
- ``deeplab`` and any extra DeepLab (e.g. trained on ground truth): Predict.

An image whose labels.json entry is empty is known to hold none of the classes, so label-driven
methods return all background for it. On data sets without a background class every 0 / 255
prediction takes the nearest labelled pixel's class (``pseudo_label.fill_unlabelled``).
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image
from tqdm import tqdm

from service.pipeline.predict import Predictor
from service.pipeline.segment import Segmenter
from service.pipeline.types import Refinement, WeakLabels
from service.render import overlay, palette
from training.cam_labels import CamLabels
from training.datasets import DatasetFolder
from training.derive_labels import derive
from training.evaluate import MethodScore
from training.pseudo_label import fill_unlabelled, segment_labels

DERIVED_KINDS = ("boxes", "points", "scribbles")


@dataclass(frozen=True)
class Sample:
    """One evaluation image: pixels uint8 [H, W, 3], ground truth uint8 [H, W], its labels.json weak labels."""

    id: str
    image: npt.NDArray[np.uint8]
    gt: npt.NDArray[np.uint8]
    labels: WeakLabels
    known_empty: bool


SampleMethod = Callable[[Sample], npt.NDArray[np.uint8]]


def pipeline_method(segmenter: Segmenter, background: bool, kind: str, classes: Sequence[str]) -> SampleMethod:
    """The Segment pipeline with the sample's image-level labels (``tags``, ``tags_crf``), none, or labels derived from its mask."""

    def run(s: Sample) -> npt.NDArray[np.uint8]:
        if kind in ("tags", "tags_crf"):
            labels = WeakLabels(image_labels=s.labels.image_labels)
        elif kind == "none":
            labels = WeakLabels()
        else:
            given = {"boxes": s.labels.boxes, "points": s.labels.points, "scribbles": s.labels.scribbles}[kind]
            labels = WeakLabels(**{kind: given}) if given else derive(kind, s.gt, classes)  # type: ignore[arg-type]
        refinement = Refinement.CRF if kind == "tags_crf" else Refinement.NONE
        known_empty = kind in DERIVED_KINDS or (kind != "none" and s.known_empty)
        return segment_labels(segmenter, s.image, labels, known_empty, not background, refinement)[0]

    return run


def deeplab_method(predictor: Predictor) -> SampleMethod:
    return lambda s: predictor.predict(s.image).label_map


def methods_for(segmenter: Segmenter, deeplabs: dict[str, Predictor], cams: CamLabels, classes: Sequence[str]) -> dict[str, SampleMethod]:
    """Every method ``evaluate`` knows for this pipeline and these DeepLabs (``cam_saliency`` and
    ``cam_rw_saliency`` when ``cams`` has a saliency model with its objectness measured; the
    ``cam_rw`` methods when the classifier's features can be had, ``CamLabels.can_walk``)."""
    background = cams.background
    methods: dict[str, SampleMethod] = {
        "cam_threshold": lambda s: cams.threshold(s.id, s.image, s.labels.image_labels),
        "cam_crf": lambda s: cams.crf(s.id, s.image, s.labels.image_labels),
    }
    if cams.objectness is not None:
        methods["cam_saliency"] = lambda s: cams.saliency_crf(s.id, s.image, s.labels.image_labels)
    if cams.can_walk:
        methods["cam_rw"] = lambda s: cams.rw_threshold(s.id, s.image, s.labels.image_labels)
        if cams.objectness is not None:
            methods["cam_rw_saliency"] = lambda s: cams.rw_saliency_crf(s.id, s.image, s.labels.image_labels)
    for name, kind in (("s2c", "tags"), ("s2c_crf", "tags_crf"), ("s2c_no_labels", "none")) + tuple((k, k) for k in DERIVED_KINDS):
        methods[name] = pipeline_method(segmenter, background, kind, classes)
    for name, predictor in deeplabs.items():
        methods[name] = deeplab_method(predictor)
    return methods


def overlay_ids(folder: DatasetFolder, ids: Sequence[str], count: int) -> list[str]:
    """``count`` ids spread over the classes: round robin over the classes (in labels.txt order),
    each time the next image tagged with that class, then untagged images in order."""
    by_class: dict[str, list[str]] = {c: [] for c in folder.classes}
    for i in ids:
        for name in folder.weak_labels(i).image_labels:
            by_class[name].append(i)
    chosen: list[str] = []
    queues = [q for q in by_class.values() if q]
    while len(chosen) < count and any(queues):
        for q in queues:
            while q and q[0] in chosen:
                q.pop(0)
            if q and len(chosen) < count:
                chosen.append(q.pop(0))
    chosen += [i for i in ids if i not in chosen][: count - len(chosen)]
    return chosen


def write_legend(path: Path, classes: Sequence[str]) -> dict[str, list[int]]:
    """A PNG legend of the overlay colours (background, classes, 255 = not confident); returns name -> RGB."""
    from PIL import ImageDraw

    names = ["background (uncoloured)", *classes, "255: not confident / ignore"]
    values = [0, *range(1, len(classes) + 1), 255]
    pal = palette()
    img = Image.new("RGB", (320, 18 * len(names) + 6), "white")
    draw = ImageDraw.Draw(img)
    for row, (name, v) in enumerate(zip(names, values)):
        y = 3 + 18 * row
        draw.rectangle((4, y, 20, y + 14), fill=tuple(int(c) for c in pal[v]), outline="black")
        draw.text((28, y + 2), f"{v}: {name}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return {name: [int(c) for c in pal[v]] for name, v in zip(names, values)}


def evaluate_folder(
    folder: DatasetFolder, ids: Sequence[str], methods: dict[str, SampleMethod], out: Path, overlays: int = 6,
    details: Mapping[str, Mapping[str, object]] | None = None,
) -> dict[str, object]:
    """Score every method on ``ids``; writes ``out`` (JSON), ``out`` with .md (table) and overlay PNGs
    beside it (images spread over the classes, ``legend.png`` naming the colours). ``details``: more
    fields of a method's entry (e.g. a DeepLab's test-time augmentation)."""
    classes = folder.classes
    background = folder.has_background
    scores = {name: MethodScore(len(classes)) for name in methods}
    overlay_dir = out.parent / (out.stem + "_overlays")
    shown_ids = set(overlay_ids(folder, ids, overlays))
    colours = write_legend(overlay_dir / "legend.png", classes) if shown_ids else {}
    for image_id in tqdm(ids, desc=f"evaluate {folder.name}", unit="img"):
        s = Sample(image_id, folder.image(image_id), folder.mask(image_id), folder.weak_labels(image_id), folder.labelled(image_id))
        shown = image_id in shown_ids
        if shown:
            (overlay_dir / image_id).mkdir(parents=True, exist_ok=True)
            Image.fromarray(overlay(s.image, s.gt)).save(overlay_dir / image_id / "ground_truth.png")
        for name, method in methods.items():
            start = time.perf_counter()
            pred = method(s)
            if not background:  # no background class: an image with nothing predicted takes its first tagged class
                tagged = [classes.index(n) + 1 for n in s.labels.image_labels]
                pred = fill_unlabelled(pred, tagged[0] if tagged else 0)
            scores[name].add(pred, s.gt, time.perf_counter() - start)
            if shown:
                Image.fromarray(overlay(s.image, pred)).save(overlay_dir / image_id / f"{name}.png")
    report: dict[str, object] = {
        "dataset": folder.name,
        "split": {"images": len(ids), "first": ids[0], "last": ids[-1]},
        "background_class": background,
        "machine": f"{platform.machine()} x{__import__('os').cpu_count()} cores",
        "methods": {name: {**s.report(classes), **(details or {}).get(name, {})} for name, s in scores.items()},
        "overlays": {"images": sorted(shown_ids), "colours": colours},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    return report


def markdown(report: dict[str, object]) -> str:
    """The report as a Markdown table: one row per method, mIoU, pixel accuracy, seconds per image, per-class IoU."""
    methods: dict[str, dict[str, object]] = report["methods"]  # type: ignore[assignment]
    names = list(dict.fromkeys(c for m in methods.values() for c in m["per_class"]))  # type: ignore[attr-defined]
    lines = [
        f"# {report['dataset']}: {report['split']['images']} images",  # type: ignore[index]
        "",
        "| method | mIoU | pixel acc | s/image | " + " | ".join(names) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(names),
    ]
    for name, m in methods.items():
        per: dict[str, float] = m["per_class"]  # type: ignore[assignment]
        cells = " | ".join(f"{per[c]:.3f}" if c in per else "–" for c in names)
        lines.append(f"| {name} | {m['miou']:.3f} | {m['pixel_acc']:.3f} | {m['seconds_per_image']:.3f} | {cells} |")
    return "\n".join(lines) + "\n"
