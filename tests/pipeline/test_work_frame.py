"""The bounded working frame: geometry for any aspect ratio, labels in, masks and prompts out, the memory estimate."""

from __future__ import annotations

import numpy as np
import pytest

from service.errors import Overloaded
from service.pipeline.types import InstanceMask, Prompt
from service.pipeline.weak_labels import ResolvedBox, ResolvedClick, ResolvedLabels, ResolvedScribble
from service.pipeline.work_frame import FULL_SIZE_BYTES_PER_PIXEL, WorkFrame, estimate_bytes, refuse_over_budget


@pytest.mark.parametrize(
    ("h", "w", "expected"),
    [(300, 200, (300, 200)), (1024, 1024, (1024, 1024)), (4096, 4096, (1024, 1024)), (1, 4096, (1, 1024)), (8192, 2, (1024, 1)),
     (2000, 3000, (683, 1024)), (1, 1, (1, 1))],
)
def test_frame_bounds_the_longest_side(h: int, w: int, expected: tuple[int, int]) -> None:
    frame = WorkFrame.of(h, w, 1024)
    assert (frame.work_height, frame.work_width) == expected
    assert frame.identity == (expected == (h, w))


@pytest.mark.parametrize(("h", "w", "expected"), [(300, 200, (256, 171)), (100, 50, (256, 128)), (256, 100, (256, 100)), (1, 600, (1, 256))])
def test_an_upscaling_frame_brings_the_longest_side_to_exactly_the_side(h: int, w: int, expected: tuple[int, int]) -> None:
    frame = WorkFrame.of(h, w, 256, upscale=True)
    assert (frame.work_height, frame.work_width) == expected
    assert frame.identity == (expected == (h, w))


def test_labels_scale_in_and_prompts_scale_out() -> None:
    frame = WorkFrame.of(2000, 4000, 1000)
    labels = ResolvedLabels(
        (1,),
        boxes=(ResolvedBox(1, 400.0, 200.0, 800.0, 1000.0),),
        clicks=(ResolvedClick(2, 4000.0, 2000.0, True),),
        scribbles=(ResolvedScribble(1, ((0.0, 0.0), (40.0, 20.0)), 8.0),),
    )
    work = frame.labels_to_work(labels)
    assert work.boxes[0] == ResolvedBox(1, 100.0, 50.0, 200.0, 250.0)
    assert work.clicks[0] == ResolvedClick(2, 1000.0, 500.0, True)
    assert work.scribbles[0].points == ((0.0, 0.0), (10.0, 5.0)) and work.scribbles[0].width == pytest.approx(2.0)
    assert work.class_ids == (1,)
    back = frame.prompts_to_original((Prompt(100.0, 50.0, 2, "box"),))
    assert back == (Prompt(400.0, 200.0, 2, "box"),)
    (inst,) = frame.instances_to_original((InstanceMask("box", (Prompt(10.0, 5.0, 1, "click"),), 0.9, 0.8, 100),))
    assert inst.area == 1600 and inst.prompts[0].x == 40.0 and inst.prompts[0].y == 20.0


def test_label_map_back_to_the_original_size() -> None:
    frame = WorkFrame.of(10, 3000, 1000)
    work = np.zeros((frame.work_height, frame.work_width), np.uint8)
    work[:, 500:] = 3
    out = frame.label_map_to_original(work)
    assert out.shape == (10, 3000) and out.dtype == np.uint8
    assert (out[:, :1499] == 0).all() and (out[:, 1501:] == 3).all()
    same = WorkFrame.of(10, 30, 1000)
    assert same.label_map_to_original(work) is work


def test_estimate_grows_linearly_past_the_working_side_and_refuses_with_a_reason() -> None:
    small, big, bigger = (estimate_bytes(WorkFrame.of(s, s, 1024), 4, 2.0) for s in (512, 4096, 8192))
    assert small < big < bigger
    assert bigger - big == FULL_SIZE_BYTES_PER_PIXEL * (8192**2 - 4096**2)  # past the working side: only full-size arrays grow
    frame = WorkFrame.of(8192, 8192, 1024)
    refuse_over_budget(frame, 100, 100)
    with pytest.raises(Overloaded, match=r"a 8192x8192 image needs an estimated 1 MiB .* allows 0 MiB per request \(WSSS_MAX_REQUEST_BYTES\)"):
        refuse_over_budget(frame, 1 << 20, 1000)
