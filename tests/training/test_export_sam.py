"""The real segment-anything decoder (random weights), exported by our exporter, served by our pipeline."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from service.models.cam_classifier import CamClassifier  # noqa: E402
from service.models.sam import SamDecoder, SamEncoder  # noqa: E402
from service.pipeline.segment import PipelineConfig, Segmenter  # noqa: E402
from service.pipeline.types import Box, SegmentInput, WeakLabels  # noqa: E402
from service.runtime import ModelRepository  # noqa: E402
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from tests.conftest import DEFAULT_REPO  # noqa: E402
from tests.random_sam import random_sam  # noqa: E402
from training.export_sam import export_decoder, import_segment_anything  # noqa: E402
from training.synthetic import HELD_OUT_SEED, generate  # noqa: E402

try:
    sa = import_segment_anything()
except ImportError as exc:  # pragma: no cover - only where segment-anything is not installed
    pytest.skip(f"segment-anything cannot be imported: {exc}", allow_module_level=True)


class _ImageEncoderStub(torch.nn.Module):
    img_size = 1024  # SamOnnxModel reads it; the decoder export never runs the image encoder


def _random_sam() -> object:
    return random_sam(_ImageEncoderStub())


def test_real_decoder_export_runs_through_the_service(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for name in ("cam_classifier", "sam_encoder"):
        shutil.copytree(DEFAULT_REPO / name, repo / name)
    export_decoder(_random_sam(), repo)
    backend = OnnxRuntimeBackend(ModelRepository(repo), "CPUExecutionProvider")
    backend.load(["cam_classifier", "sam_encoder", "sam_decoder"])
    decoder = SamDecoder(backend)
    assert not decoder.batched
    seg = Segmenter(CamClassifier(backend), SamEncoder(backend), decoder, PipelineConfig())
    for h, w in ((256, 256), (200, 320), (320, 200)):
        s = generate(HELD_OUT_SEED, 1, h, w)
        labels = WeakLabels(image_labels=tuple(s.labels), boxes=(Box(s.labels[0], 10, 10, w / 2, h / 2),))
        result = seg.segment(SegmentInput(image=s.image, labels=labels))
        assert result.label_map.shape == (h, w)
        for c in result.classes:
            assert len(c.instances) >= 1 and 0.0 <= c.stability_score <= 1.0
    emb = seg.encoder.embed(generate(HELD_OUT_SEED, 2).image)
    out = decoder.predict(emb, np.array([[100.0, 120.0]], np.float32), np.array([1.0], np.float32))
    assert out.low_res_logits.shape == (4, 256, 256) and out.iou_predictions.shape == (4,)


def test_torchvision_stand_in_refuses_to_transform() -> None:
    import torchvision.transforms.functional as tvf  # the stand-in, or a working torchvision

    if getattr(tvf, "__file__", None) is None:
        with pytest.raises(RuntimeError, match="torchvision is not installed"):
            tvf.resize(None, 4)
