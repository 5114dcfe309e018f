"""Weak-label validation."""

from __future__ import annotations

import math

import pytest

from service.errors import InvalidInput
from service.pipeline.types import Box, Click, Scribble, WeakLabels
from service.pipeline.weak_labels import resolve

CLASSES = ("scratch", "spot", "crack", "stain")


def test_tags_resolve_to_sorted_unique_ids() -> None:
    assert resolve(WeakLabels(image_labels=("stain", "scratch", "stain")), CLASSES, 100, 100, 10).class_ids == (1, 4)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (WeakLabels(image_labels=("dent",)), r"image_labels\[0\]: unknown class 'dent'; known classes: scratch, spot, crack, stain"),
        (WeakLabels(boxes=(Box("spot", 10, 10, 5, 20),)), r"boxes\[0\]: needs x0 < x1 and y0 < y1"),
        (WeakLabels(boxes=(Box("spot", 0, 0, 500, 20),)), r"boxes\[0\]: \(500, 20\) is outside the 100x80 image"),
        (WeakLabels(boxes=(Box("spot", math.nan, 0, 5, 20),)), r"boxes\[0\]: coordinates must be finite"),
        (WeakLabels(points=(Click("spot", -1, 5),)), r"points\[0\]: \(-1, 5\) is outside"),
        (WeakLabels(points=(Click("dent", 1, 5),)), r"points\[0\]: unknown class 'dent'"),
        (WeakLabels(scribbles=(Scribble("crack", ((1.0, 1.0),)),)), r"scribbles\[0\]: a scribble needs at least 2 points"),
        (WeakLabels(scribbles=(Scribble("crack", ((1.0, 1.0), (2.0, math.inf))),)), r"scribbles\[0\].points\[1\]: coordinates must be finite"),
        (WeakLabels(image_labels=("spot",) * 11), "request has 11 weak labels"),
    ],
)
def test_bad_labels(labels: WeakLabels, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        resolve(labels, CLASSES, 80, 100, 10)


def test_boxes_and_clicks_resolve() -> None:
    r = resolve(WeakLabels(boxes=(Box("spot", 1, 2, 5, 6),), points=(Click("crack", 3, 4), Click("stain", 5, 5, negative=True))), CLASSES, 80, 100, 10)
    assert r.class_ids == ()
    assert (r.boxes[0].class_id, r.boxes[0].x1) == (2, 5)
    assert [(c.class_id, c.negative) for c in r.clicks] == [(3, False), (4, True)]
    assert r.prompted_classes() == (2, 3)


def test_scribbles_resolve() -> None:
    labels = WeakLabels(image_labels=("spot",), scribbles=(Scribble("crack", ((1.0, 1.0), (5.0, 5.0)), 4.0),))
    r = resolve(labels, CLASSES, 80, 100, 10)
    assert [(s.class_id, s.points, s.width) for s in r.scribbles] == [(3, ((1.0, 1.0), (5.0, 5.0)), 4.0)]
    assert r.prompted_classes() == (2, 3)
