"""Stage 2: check the weak labels against the image and the model's classes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from service.errors import InvalidInput
from service.pipeline.types import WeakLabels


@dataclass(frozen=True)
class ResolvedBox:
    class_id: int
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class ResolvedClick:
    class_id: int
    x: float
    y: float
    negative: bool


@dataclass(frozen=True)
class ResolvedScribble:
    """One scribble: class id (1..C), polyline [(x, y), ...] in pixels, width in pixels."""

    class_id: int
    points: tuple[tuple[float, float], ...]
    width: float


@dataclass(frozen=True)
class ResolvedLabels:
    """Weak labels with class names resolved to ids (1..C).

    Attributes:
        class_ids: ids named by image-level tags, sorted, unique.
        boxes: boxes in request order.
        clicks: clicks in request order.
        mask_inputs: class id -> a previous round's low-res logits float32 [256, 256].
    """

    class_ids: tuple[int, ...]
    boxes: tuple[ResolvedBox, ...] = ()
    clicks: tuple[ResolvedClick, ...] = ()
    scribbles: tuple[ResolvedScribble, ...] = ()
    mask_inputs: dict[int, npt.NDArray[np.float32]] = field(default_factory=dict, compare=False)

    def prompted_classes(self) -> tuple[int, ...]:
        """Classes with a positive label of any kind (tag, box, positive click, previous mask), sorted."""
        ids = set(self.class_ids) | {b.class_id for b in self.boxes} | {c.class_id for c in self.clicks if not c.negative}
        return tuple(sorted(ids | set(self.mask_inputs) | {s.class_id for s in self.scribbles}))


MAX_ECHO_CHARS = 100
"""A caller's string is echoed in an error message cut to this many characters."""


def echo(text: str) -> str:
    """``text`` as it goes into an error message: repr, cut to ``MAX_ECHO_CHARS`` characters."""
    return repr(text) if len(text) <= MAX_ECHO_CHARS else f"{text[:MAX_ECHO_CHARS]!r}... ({len(text)} characters)"


def _class_id(name: str, classes: tuple[str, ...], where: str) -> int:
    try:
        return classes.index(name) + 1
    except ValueError:
        raise InvalidInput(f"{where}: unknown class {echo(name)}; known classes: {', '.join(classes)}") from None


def _check_xy(x: float, y: float, height: int, width: int, where: str) -> None:
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InvalidInput(f"{where}: coordinates must be finite, got ({x}, {y})")
    if not (0 <= x <= width and 0 <= y <= height):
        raise InvalidInput(f"{where}: ({x}, {y}) is outside the {width}x{height} image")


def resolve(labels: WeakLabels, classes: tuple[str, ...], height: int, width: int, max_prompts: int) -> ResolvedLabels:
    """Validate ``labels`` for an image of ``height`` x ``width`` pixels.

    Raises:
        InvalidInput: unknown class, non-finite or out-of-image coordinates, degenerate boxes or
            scribbles, more than ``max_prompts`` labels.
    """
    count = (
        len(labels.image_labels) + len(labels.boxes) + len(labels.points) + len(labels.mask_inputs) + sum(len(s.points) for s in labels.scribbles)
    )
    if count > max_prompts:
        raise InvalidInput(f"request has {count} weak labels (tags + boxes + points + scribble vertices); at most {max_prompts} are allowed")
    ids = sorted({_class_id(name, classes, f"image_labels[{i}]") for i, name in enumerate(labels.image_labels)})
    boxes = []
    for i, box in enumerate(labels.boxes):
        where = f"boxes[{i}]"
        box_id = _class_id(box.label, classes, where)
        _check_xy(box.x0, box.y0, height, width, where)
        _check_xy(box.x1, box.y1, height, width, where)
        if not (box.x0 < box.x1 and box.y0 < box.y1):
            raise InvalidInput(f"{where}: needs x0 < x1 and y0 < y1, got ({box.x0}, {box.y0}, {box.x1}, {box.y1})")
        boxes.append(ResolvedBox(box_id, box.x0, box.y0, box.x1, box.y1))
    clicks = []
    for i, click in enumerate(labels.points):
        where = f"points[{i}]"
        click_id = _class_id(click.label, classes, where)
        _check_xy(click.x, click.y, height, width, where)
        clicks.append(ResolvedClick(click_id, click.x, click.y, click.negative))
    scribbles = []
    for i, scribble in enumerate(labels.scribbles):
        where = f"scribbles[{i}]"
        scribble_id = _class_id(scribble.label, classes, where)
        if len(scribble.points) < 2:
            raise InvalidInput(f"{where}: a scribble needs at least 2 points, got {len(scribble.points)}")
        if not (math.isfinite(scribble.width) and scribble.width >= 0):
            raise InvalidInput(f"{where}: width must be a finite number >= 0, got {scribble.width}")
        for j, (x, y) in enumerate(scribble.points):
            _check_xy(x, y, height, width, f"{where}.points[{j}]")
        scribbles.append(ResolvedScribble(scribble_id, tuple(scribble.points), scribble.width))
    mask_inputs: dict[int, npt.NDArray[np.float32]] = {}
    for i, m in enumerate(labels.mask_inputs):
        where = f"mask_inputs[{i}]"
        mask_id = _class_id(m.label, classes, where)
        if mask_id in mask_inputs:
            raise InvalidInput(f"{where}: class {echo(m.label)} has a mask input already")
        if m.low_res_logits.shape != (256, 256):
            raise InvalidInput(f"{where}: low_res_logits must be 256x256 float32 (262144 bytes)")
        if not np.isfinite(m.low_res_logits).all():
            raise InvalidInput(f"{where}: low_res_logits must be finite")
        mask_inputs[mask_id] = m.low_res_logits
    return ResolvedLabels(tuple(ids), tuple(boxes), tuple(clicks), tuple(scribbles), mask_inputs)
