"""Per-class pseudo-label sources: the choice from an evaluate report and the combined label map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.pipeline.types import IGNORE
from training.class_sources import ClassSources, choose, combine, load
from training.datasets import DatasetError

CLASSES = ("blowhole", "fray", "crack", "unseen")


def _report(**per_method: dict[str, float]) -> dict[str, object]:
    return {"methods": {m: {"miou": float(np.mean(list(pc.values()))), "per_class": pc} for m, pc in per_method.items()}}


def test_each_class_takes_the_source_of_its_best_iou() -> None:
    report = _report(
        cam_threshold={"background": 0.97, "blowhole": 0.36, "fray": 0.01, "crack": 0.12},
        cam_crf={"background": 0.97, "blowhole": 0.11, "fray": 0.00, "crack": 0.12},
        s2c={"background": 0.93, "blowhole": 0.04, "fray": 0.42, "crack": 0.06},
        deeplab={"background": 0.99, "blowhole": 0.90, "fray": 0.90, "crack": 0.90, "unseen": 0.9},  # not a source
    )
    got = choose(report, CLASSES, "sel.json")
    assert dict(got.source) == {"blowhole": "cam_threshold", "fray": "pipeline", "crack": "cam_threshold", "unseen": "cam_threshold"}
    assert dict(got.score) == {"blowhole": 0.36, "fray": 0.42, "crack": 0.12, "unseen": 0.0}
    # a tie goes to the first of cam_threshold, cam_crf, s2c; a class never scored takes the best overall method's source
    assert got.as_json()["classes"]["crack"] == {"source": "cam_threshold", "iou": 0.12}  # type: ignore[index]
    s2c_best = _report(cam_threshold={"blowhole": 0.1}, s2c={"blowhole": 0.5})
    assert choose(s2c_best, ("blowhole", "unseen"), "").source["unseen"] == "pipeline"


def test_choose_refuses_what_is_not_an_evaluate_report(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not an evaluate report"):
        choose({"images": 3}, CLASSES, "x.json")
    with pytest.raises(DatasetError, match="evaluates none of cam_threshold, cam_crf, s2c"):
        choose(_report(deeplab={"blowhole": 0.5}), CLASSES, "x.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="--class-sources .*bad.json"):
        load(bad, CLASSES)
    with pytest.raises(DatasetError, match="--class-sources .*missing.json"):
        load(tmp_path / "missing.json", CLASSES)


def test_combine_takes_each_class_from_its_source_and_the_better_scored_class_wins() -> None:
    sources = ClassSources({"blowhole": "cam_threshold", "fray": "pipeline", "crack": "cam_threshold", "unseen": "pipeline"},
                           {"blowhole": 0.36, "fray": 0.42, "crack": 0.12, "unseen": 0.0}, "")
    cam = np.array([[1, 1, 2, 0],
                    [0, 1, 2, 0]], np.uint8)  # blowhole (1) and fray (2) by the CAM
    pipe = np.array([[0, 2, 2, 1],
                     [0, 0, 0, 1]], np.uint8)  # fray (2) and blowhole (1) by the pipeline
    got = combine({"cam_threshold": cam, "pipeline": pipe}, ["blowhole", "fray"], CLASSES, sources, background=True)
    # blowhole from the CAM, fray from the pipeline; at [0, 1] both claim it and fray (0.42 > 0.36) wins;
    # the CAM's fray and the pipeline's blowhole are nobody's claim: background
    np.testing.assert_array_equal(got, [[1, 2, 2, 0],
                                        [0, 1, 0, 0]])
    no_bg = combine({"cam_threshold": cam, "pipeline": pipe}, ["blowhole", "fray"], CLASSES, sources, background=False)
    np.testing.assert_array_equal(no_bg, np.where(got == 0, IGNORE, got))


def test_a_report_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "sel.json"
    path.write_text(json.dumps(_report(cam_threshold={"blowhole": 0.3, "fray": 0.1}, s2c={"blowhole": 0.1, "fray": 0.4})))
    got = load(path, ("blowhole", "fray"))
    assert dict(got.source) == {"blowhole": "cam_threshold", "fray": "pipeline"} and got.chosen_on == str(path)
    assert got.needs(["fray"]) == {"pipeline"} and got.needs(["blowhole", "fray"]) == {"cam_threshold", "pipeline"}
