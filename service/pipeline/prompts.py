"""Stage 4: CAM peaks and the request's boxes and clicks -> the prompt sets of the mask model.

CAM peaks follow S2C (Kweon & Yoon, CVPR 2024).

Reference behaviour (sangrockEG/S2C, models/model_s2c.py): the global maximum of the normalised
CAM first; then local peaks of ``maximum_filter(cam, size=3, mode='constant')`` found by
``peak_local_max(min_distance=20)`` whose CAM value exceeds tau (0.5), dropping the first of them
(the global maximum again); each is a positive point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi
from skimage.feature import peak_local_max

from service.pipeline.types import Prompt
from service.pipeline.weak_labels import ResolvedBox, ResolvedLabels, ResolvedScribble


def cam_peaks(cam: npt.NDArray[np.float32], threshold: float = 0.5, min_distance: int = 20, max_peaks: int | None = None) -> npt.NDArray[np.float32]:
    """Point prompts of one class.

    Args:
        cam: float32 [H, W] normalised CAM (0..1).
        threshold: tau; local peaks at or below it are dropped (the global maximum is always kept).
        min_distance: ``peak_local_max`` min_distance in pixels.
        max_peaks: keep at most this many points (the global maximum first, then by CAM value).

    Returns:
        float32 [K, 2] (x, y) pixel coordinates, K >= 1, the global maximum first.
    """
    row, col = np.unravel_index(int(np.argmax(cam)), cam.shape)
    filtered = ndi.maximum_filter(cam, size=3, mode="constant")
    peaks = peak_local_max(filtered, min_distance=min_distance)
    valid = peaks[cam[peaks[:, 0], peaks[:, 1]] > threshold] if len(peaks) else peaks.reshape(0, 2)
    rc = np.concatenate([np.array([[row, col]]), valid[1:]], axis=0)
    if max_peaks is not None:
        rc = rc[:max_peaks]
    return rc[:, ::-1].astype(np.float32)


def sample_points(stroke: ResolvedScribble, count: int = 5) -> npt.NDArray[np.float32]:
    """``count`` points evenly spaced along the polyline by arc length, [count, 2] (x, y)."""
    pts = np.array(stroke.points, np.float64)
    seg = np.hypot(*np.diff(pts, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if cum[-1] <= 0:
        return np.repeat(pts[:1], count, axis=0).astype(np.float32)
    targets = np.linspace(0.0, cum[-1], count + 2)[1:-1] if count > 1 else np.array([cum[-1] / 2])
    xs = np.interp(targets, cum, pts[:, 0])
    ys = np.interp(targets, cum, pts[:, 1])
    return np.stack([xs, ys], axis=1).astype(np.float32)



@dataclass(frozen=True)
class PromptSet:
    """The prompts of one decoder call.

    Attributes:
        class_id: 1..C.
        prompts: points in original pixels with SAM labels (1, 0, 2, 3).
        kind: ``cam`` (a class's CAM peaks, with its clicks), ``box`` (one box, one instance),
            ``click`` (a class's clicks alone), ``scribble`` (points along a class's scribbles,
            with its peaks and clicks).
        uses_cam: whether the class's CAM weighs its confidence (it was tagged or predicted);
            masks from user boxes and clicks alone are not gated by the classifier.
        mask_input: a previous round's low-res logits float32 [256, 256] (interactive), or None.
    """

    class_id: int
    prompts: tuple[Prompt, ...]
    kind: str
    uses_cam: bool
    mask_input: npt.NDArray[np.float32] | None = field(default=None, compare=False)


def _inside(p: Prompt, box: ResolvedBox) -> bool:
    return box.x0 <= p.x <= box.x1 and box.y0 <= p.y <= box.y1


def prompt_sets(
    labels: ResolvedLabels,
    tagged: tuple[int, ...],
    cams: npt.NDArray[np.float32],
    threshold: float,
    min_distance: int,
    max_peaks: int | None,
    box_cam_points: bool = True,
    instance_per_peak: bool = False,
) -> list[PromptSet]:
    """Every decoder call a request needs, class by class.

    - A tagged class (``tagged``: image labels, or the classifier's predictions) gives one ``cam``
      set: its CAM peaks (all positive at once, as S2C) and its positive clicks.
    - Each box gives one ``box`` set (one instance): its corners (labels 2, 3), the class's clicks
      inside it and, with ``box_cam_points``, the class's CAM peaks inside it.
    - A class with clicks but no tag gets one ``click`` set.
    - A scribbled class's set (``scribble``) adds 5 points along each of its scribbles; other
      classes' scribble points are its negatives.
    - A previous round's mask of a class (interactive) goes with its ``cam`` or ``click`` set as
      ``mask_input`` (a class with only a mask input gets a ``click`` set of its clicks, if any).
    - Every set also carries negative points: the class's negative clicks and other classes'
      positive clicks.
    Peaks and clicks that fall in a box of their class go to that box's set only; a class with
    boxes drops its CAM peaks outside them (its boxes say where its instances are).
    With ``instance_per_peak`` each CAM peak is a ``cam`` set of its own (one instance each, the
    class's clicks and scribble points in a further set) instead of S2C's all-peaks-at-once.
    """
    out: list[PromptSet] = []
    along = [(s.class_id, sample_points(s)) for s in labels.scribbles]
    for k in sorted(set(tagged) | set(labels.prompted_classes())):
        uses_cam = k in tagged
        clicks = [Prompt(c.x, c.y, 0 if c.negative else 1, "click") for c in labels.clicks if c.class_id == k]
        negatives = [p for p in clicks if p.label == 0] + [
            Prompt(c.x, c.y, 0, "click") for c in labels.clicks if c.class_id != k and not c.negative
        ]
        scribbled = any(c == k for c, _ in along)
        negatives += [Prompt(float(x), float(y), 0, "scribble") for c, pts in along if c != k for x, y in pts]
        positives = [p for p in clicks if p.label == 1]
        positives += [Prompt(float(x), float(y), 1, "scribble") for c, pts in along if c == k for x, y in pts]
        if uses_cam:
            peaks = cam_peaks(cams[k - 1], threshold, min_distance, max_peaks)
            positives = [Prompt(float(x), float(y), 1, "cam_peak") for x, y in peaks] + positives
        boxes = [b for b in labels.boxes if b.class_id == k]
        free = [p for p in positives if not any(_inside(p, b) for b in boxes)]
        for b in boxes:
            extra = [p for p in positives if _inside(p, b) and (p.source == "click" or box_cam_points)]
            corners = [Prompt(b.x0, b.y0, 2, "box"), Prompt(b.x1, b.y1, 3, "box")]
            out.append(PromptSet(k, tuple(corners + extra + negatives), "box", uses_cam))
        previous = labels.mask_inputs.get(k)
        has_peak_or_click = any(p.source in ("click", "scribble") for p in free) or (uses_cam and not boxes)
        if instance_per_peak and uses_cam and not boxes and previous is None:
            peak_prompts = [p for p in free if p.source == "cam_peak"]
            rest = [p for p in free if p.source != "cam_peak"]
            out.extend(PromptSet(k, (p, *negatives), "cam", uses_cam) for p in peak_prompts)
            if rest:
                out.append(PromptSet(k, tuple(rest + negatives), "scribble" if scribbled else "click", uses_cam))
        elif (free and has_peak_or_click) or previous is not None:
            kind = "scribble" if scribbled else "cam" if uses_cam else "click"
            out.append(PromptSet(k, tuple(free + negatives), kind, uses_cam, previous))
    return out
