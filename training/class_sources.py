"""Per-class pseudo-label sources: each class's pixels from the method that scored that class best.

On magnetic_tile the CAMs find blowholes (IoU 0.36 on exp1) where the promptable model's masks do
not (0.04), and the promptable model finds frays (0.42) where the CAMs do not (0.01): no single
source is best for every class. ``choose`` reads an ``evaluate`` report of a part of the
**training** split (methods ``cam_threshold``, ``cam_crf``, ``s2c``) and gives each class the
source of its highest IoU there; a class the report never scored takes the source of the best
overall mIoU. ``combine`` builds one label map from the sources' maps: a pixel takes tagged class
k where the map of k's source says k; where two classes claim a pixel, the one whose source scored
higher wins; pixels no class claims are background (``IGNORE`` on data sets without one, filled
by the caller).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from service.pipeline.types import IGNORE
from training.datasets import DatasetError

METHOD_SOURCES = {"cam_threshold": "cam_threshold", "cam_crf": "cam_crf", "s2c": "pipeline"}
"""``evaluate`` method -> the ``pseudo-label --source`` that makes the same label maps."""


@dataclass(frozen=True)
class ClassSources:
    """Class name -> (pseudo-label source, that source's IoU for the class on the selection images)."""

    source: Mapping[str, str]
    score: Mapping[str, float]
    chosen_on: str

    def needs(self, tags: Sequence[str]) -> set[str]:
        return {self.source[t] for t in tags}

    def as_json(self) -> dict[str, object]:
        return {"chosen_on": self.chosen_on, "classes": {c: {"source": s, "iou": self.score[c]} for c, s in self.source.items()}}


def choose(report: Mapping[str, object], classes: Sequence[str], chosen_on: str = "") -> ClassSources:
    """Each class's best source in an ``evaluate`` report (``methods`` -> name -> ``per_class`` IoU)."""
    methods = report.get("methods")
    if not isinstance(methods, dict):
        raise DatasetError(f"{chosen_on or 'report'}: not an evaluate report (no 'methods')")
    scored = {m: methods[m] for m in METHOD_SOURCES if m in methods}
    if not scored:
        raise DatasetError(f"{chosen_on or 'report'}: evaluates none of {', '.join(METHOD_SOURCES)}; "
                           "run evaluate --methods cam_threshold,cam_crf,s2c on a part of the training split")
    overall = max(scored, key=lambda m: (float(scored[m]["miou"]), -list(METHOD_SOURCES).index(m)))
    source: dict[str, str] = {}
    score: dict[str, float] = {}
    for name in classes:
        ious = [(float(r["per_class"][name]), m) for m, r in scored.items() if name in r["per_class"]]
        best_iou, best = max(ious, key=lambda t: (t[0], -list(METHOD_SOURCES).index(t[1]))) if ious else (0.0, overall)
        source[name], score[name] = METHOD_SOURCES[best], best_iou
    return ClassSources(source, score, chosen_on)


def load(path: Path, classes: Sequence[str]) -> ClassSources:
    """``choose`` over the ``evaluate`` report at ``path`` (DatasetError when unreadable)."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"--class-sources {path}: {exc}") from exc
    return choose(report, classes, str(path))


def combine(
    maps: Mapping[str, npt.NDArray[np.uint8]], tags: Sequence[str], classes: Sequence[str], sources: ClassSources, background: bool
) -> npt.NDArray[np.uint8]:
    """One label map from ``maps`` (source -> label map of the image's ``tags``; each tag's source must be there)."""
    shape = next(iter(maps.values())).shape
    out = np.full(shape, 0 if background else IGNORE, np.uint8)
    for name in sorted(tags, key=lambda t: (sources.score[t], classes.index(t))):
        k = classes.index(name) + 1
        out[maps[sources.source[name]] == k] = k
    return out
