"""Smoke test of the training toolkit: a few steps of each model, export, validation, a pipeline run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.__main__ import main as training_main  # noqa: E402
from training.common import setup, synthetic_set  # noqa: E402
from training.defaults import build_defaults  # noqa: E402
from training.synthetic import CLASSES, generate  # noqa: E402


def test_generator_is_deterministic_and_exact() -> None:
    a, b = generate(5, 17), generate(5, 17)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert not np.array_equal(generate(5, 18).image, a.image)
    for i in range(30):
        s = generate(0, i)
        assert s.image.shape == (256, 256, 3) and s.mask.max() <= len(CLASSES)
        assert set(np.unique(s.mask[s.instances > 0]).tolist()) <= set(range(1, 5))
        assert (s.mask > 0).sum() == (s.instances > 0).sum()


def test_colour_jitter_scales_brightness_contrast_and_saturation() -> None:
    from training.train_classifier import jitter_colours

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 5, 4, 3)).astype(np.uint8)
    np.testing.assert_allclose(jitter_colours(images, 0.0, np.random.default_rng(1)), images, atol=1e-3)
    grey = np.full((2, 4, 4, 3), 100, np.uint8)  # no contrast and no colour: only the brightness acts
    b = np.random.default_rng(7).uniform(0.7, 1.3, (3, 2, 1, 1, 1))[0].ravel()
    np.testing.assert_allclose(jitter_colours(grey, 0.3, np.random.default_rng(7)), np.broadcast_to(100 * b[:, None, None, None], grey.shape),
                               rtol=1e-5)
    out = jitter_colours(np.full((64, 2, 2, 3), 250, np.uint8), 0.3, rng)
    assert out.dtype == np.float32 and out.max() == 255.0 and out.min() >= 0.0  # brightened past white: clipped


def test_generate_command_writes_a_dataset_folder(tmp_path: Path) -> None:
    training_main(["generate", "--out", str(tmp_path / "ds"), "--count", "3", "--height", "96", "--width", "128"])
    labels = json.loads((tmp_path / "ds" / "labels.json").read_text())
    assert len(labels) == 3 and all("image_labels" in v for v in labels.values())
    assert (tmp_path / "ds" / "labels.txt").read_text().split() == list(CLASSES)
    assert len(list((tmp_path / "ds" / "masks").glob("*.png"))) == 3


def test_build_defaults_end_to_end_tiny(tmp_path: Path) -> None:
    setup(0, 2)
    report = build_defaults(
        tmp_path / "repo", tmp_path / "report.json", tmp_path / "work",
        n_train=32, n_pseudo=8, n_eval=4, classifier_steps=3, promptable_steps=3, deeplab_steps=3,
    )
    assert set(report["methods"]) == {"cam_threshold", "s2c_image_labels", "s2c_no_labels", "deeplab"}  # type: ignore[arg-type]
    for m in report["methods"].values():  # type: ignore[union-attr]
        assert 0.0 <= m["miou"] <= 1.0 and m["images"] == 4
    for name in ("cam_classifier", "sam_encoder", "sam_decoder", "deeplab"):
        assert (tmp_path / "repo" / name / "1" / "model.onnx").is_file()
    assert json.loads((tmp_path / "report.json").read_text())["methods"]


def test_synthetic_set_labels() -> None:
    data = synthetic_set(0, 8, size=64, workers=1)
    hot = data.multi_hot()
    for i in range(8):
        present = set(np.unique(data.masks[i]).tolist()) - {0}
        assert set((np.flatnonzero(hot[i]) + 1).tolist()) == present
