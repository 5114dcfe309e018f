"""Tags, boxes and clicks -> the decoder calls (prompt sets)."""

from __future__ import annotations

import numpy as np

from service.pipeline.prompts import prompt_sets
from service.pipeline.weak_labels import ResolvedBox, ResolvedClick, ResolvedLabels


def _cams() -> np.ndarray:
    cams = np.zeros((3, 100, 100), np.float32)
    cams[0, 20, 20] = 1.0  # class 1 peak at (20, 20)
    cams[1, 70, 70] = 1.0  # class 2 peak at (70, 70)
    return cams


def _sets(labels: ResolvedLabels, tagged: tuple[int, ...]) -> list:
    return prompt_sets(labels, tagged, _cams(), 0.5, 20, 8)


def test_tag_gives_one_cam_set_of_positive_peaks() -> None:
    (s,) = _sets(ResolvedLabels((1,)), (1,))
    assert (s.class_id, s.kind, s.uses_cam) == (1, "cam", True)
    assert [(p.x, p.y, p.label, p.source) for p in s.prompts] == [(20.0, 20.0, 1, "cam_peak")]


def test_each_box_is_an_instance_with_corners_and_inside_peaks() -> None:
    boxes = (ResolvedBox(1, 10, 10, 30, 30), ResolvedBox(1, 50, 50, 90, 90))
    sets = _sets(ResolvedLabels((1,), boxes), (1,))
    assert [s.kind for s in sets] == ["box", "box"]
    first = [(p.label, p.source) for p in sets[0].prompts]
    assert first == [(2, "box"), (3, "box"), (1, "cam_peak")]
    assert [p.label for p in sets[1].prompts] == [2, 3]


def test_untagged_box_does_not_use_cam() -> None:
    (s,) = _sets(ResolvedLabels((), (ResolvedBox(2, 1, 1, 9, 9),)), ())
    assert (s.class_id, s.kind, s.uses_cam) == (2, "box", False)


def test_clicks_and_negatives() -> None:
    clicks = (ResolvedClick(1, 5, 5, False), ResolvedClick(1, 8, 8, True), ResolvedClick(2, 60, 60, False))
    sets = {s.class_id: s for s in _sets(ResolvedLabels((), (), clicks), ())}
    assert set(sets) == {1, 2}
    assert [(p.x, p.label) for p in sets[1].prompts] == [(5, 1), (8, 0), (60, 0)]  # own negative + class 2's positive
    assert [(p.x, p.label) for p in sets[2].prompts] == [(60, 1), (5, 0)]
    assert sets[1].kind == "click" and not sets[1].uses_cam


def test_tag_plus_click_is_one_set() -> None:
    (s,) = _sets(ResolvedLabels((1,), (), (ResolvedClick(1, 40, 40, False),)), (1,))
    assert [(p.source, p.label) for p in s.prompts] == [("cam_peak", 1), ("click", 1)]


def test_only_negative_clicks_give_nothing() -> None:
    assert _sets(ResolvedLabels((), (), (ResolvedClick(1, 5, 5, True),)), ()) == []


def test_instance_per_peak_splits_the_cam_set() -> None:
    cams = _cams()
    yy, xx = np.mgrid[0:100, 0:100]
    cams[0] = np.maximum(cams[0], 0.9 * np.exp(-((yy - 60) ** 2 + (xx - 60) ** 2) / 18.0))  # a smooth second peak
    labels = ResolvedLabels((1,), (), (ResolvedClick(1, 50, 50, False),))
    s2c = prompt_sets(labels, (1,), cams, 0.5, 20, 8)
    split = prompt_sets(labels, (1,), cams, 0.5, 20, 8, instance_per_peak=True)
    assert [s.kind for s in s2c] == ["cam"] and len(s2c[0].prompts) == 3
    assert [s.kind for s in split] == ["cam", "cam", "click"]
    assert [(p.x, p.y) for s in split[:2] for p in s.prompts] == [(20.0, 20.0), (59.0, 59.0)]  # the 3x3 max filter moves it 1 px
