"""A model repository without SAM: boxes are served by GrabCut, other kinds say what they need."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from service.api.background import BackgroundServer
from tests.conftest import iou, make_settings, png_bytes, repo_copy
from training import derive_labels
from training.synthetic import CLASSES, HELD_OUT_SEED, generate
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc


@pytest.fixture(scope="module")
def no_sam_stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pb_grpc.SegmentationServiceStub]:
    repo = repo_copy(tmp_path_factory.mktemp("nosam"))
    shutil.rmtree(repo / "sam_encoder")
    shutil.rmtree(repo / "sam_decoder")
    running = BackgroundServer(make_settings(model_repo=repo))
    try:
        with running.channel() as channel:
            yield pb_grpc.SegmentationServiceStub(channel)
    finally:
        running.stop()


def test_boxes_use_grabcut(no_sam_stub: pb_grpc.SegmentationServiceStub) -> None:
    ious = []
    for i in range(12):
        s = generate(HELD_OUT_SEED, i)
        boxes = [pb.BoxLabel(label=b.label, x0=b.x0, y0=b.y0, x1=b.x1, y1=b.y1) for b in derive_labels.boxes(s.mask, CLASSES)]
        if not boxes:
            continue
        resp = no_sam_stub.Segment(pb.SegmentRequest(image=pb.Image(encoded=png_bytes(s.image)), labels=pb.WeakLabels(boxes=boxes)), timeout=60)
        assert "grabcut" in [t.stage for t in resp.timings] and "sam_encoder" not in resp.model_versions
        lm = np.asarray(Image.open(io.BytesIO(resp.mask.png)))
        for k in set(np.unique(s.mask).tolist()) - {0}:
            ious.append(iou(lm == k, s.mask == k))
    assert float(np.mean(ious)) > 0.5, ious


def test_tags_need_sam(no_sam_stub: pb_grpc.SegmentationServiceStub, tmp_path: Path) -> None:
    s = generate(HELD_OUT_SEED, 1)
    with pytest.raises(grpc.RpcError) as info:
        no_sam_stub.Segment(pb.SegmentRequest(image=pb.Image(encoded=png_bytes(s.image)), labels=pb.WeakLabels(image_labels=s.labels)), timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "need a SAM model (sam_encoder and sam_decoder)" in info.value.details()


def test_segment_everything_needs_sam(no_sam_stub: pb_grpc.SegmentationServiceStub) -> None:
    request = pb.SegmentEverythingRequest(image=pb.Image(encoded=png_bytes(np.zeros((32, 32, 3), np.uint8))))
    with pytest.raises(grpc.RpcError) as info:
        no_sam_stub.SegmentEverything(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "sam_encoder" in info.value.details() and "sam_decoder" in info.value.details()
