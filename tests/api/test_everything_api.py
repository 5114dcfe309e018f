"""SegmentEverything through a real server: proposals a COCO tool reads, and every caller error
with its status (the same guards as the other RPCs)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from pycocotools import mask as coco_mask

from service.api.background import BackgroundServer
from tests.conftest import make_settings, png_bytes
from training.synthetic import HELD_OUT_SEED, generate
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc

METHOD = "/wsss.v1.SegmentationService/SegmentEverything"
OPEN = dict(points_per_side=6, pred_iou_thresh=0.0, stability_score_thresh=0.0)


def _request(image: np.ndarray, **options: float) -> pb.SegmentEverythingRequest:
    return pb.SegmentEverythingRequest(id="e1", image=pb.Image(encoded=png_bytes(image)), options=pb.EverythingOptions(**options))


def test_proposals_are_coco_masks_with_their_scores(stub: pb_grpc.SegmentationServiceStub, server: BackgroundServer) -> None:
    image = generate(HELD_OUT_SEED, 0).image[:200, :150]
    before = server.metric("wsss_requests_total", {"rpc": "SegmentEverything", "code": "OK"})
    resp = stub.SegmentEverything(_request(image, **OPEN, max_masks=20), timeout=120)
    assert resp.id == "e1" and resp.points == 36
    assert 0 < len(resp.proposals) <= 20
    assert set(resp.model_versions) == {"sam_encoder", "sam_decoder"}
    assert [t.stage for t in resp.timings] == ["sam_encoder", "everything", "encode"]
    ious = [p.predicted_iou for p in resp.proposals]
    assert ious == sorted(ious, reverse=True)
    for p in resp.proposals:
        rle = {"size": list(p.rle.size), "counts": p.rle.counts.encode()}
        mask = coco_mask.decode(rle)
        assert mask.shape == (200, 150) and int(mask.sum()) == p.area == int(coco_mask.area(rle))
        ys, xs = np.nonzero(mask)
        assert list(p.bbox) == [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]
        assert 0 <= p.point.x < 150 and 0 <= p.point.y < 200
    assert server.metric("wsss_requests_total", {"rpc": "SegmentEverything", "code": "OK"}) == before + 1


def test_default_filters_apply(stub: pb_grpc.SegmentationServiceStub) -> None:
    image = generate(HELD_OUT_SEED, 1).image[:96, :96]
    loose = stub.SegmentEverything(_request(image, **OPEN), timeout=120)
    strict = stub.SegmentEverything(_request(image, points_per_side=6, pred_iou_thresh=0.99), timeout=120)
    assert len(strict.proposals) < len(loose.proposals)
    assert all(p.predicted_iou > 0.99 for p in strict.proposals)


@pytest.mark.parametrize(
    "options, words",
    [
        (dict(points_per_side=65), "options.points_per_side must be 1..64"),
        (dict(points_per_batch=1000), "options.points_per_batch"),
        (dict(pred_iou_thresh=float("nan")), "options.pred_iou_thresh must be a finite number"),
        (dict(box_nms_thresh=1.5), "options.box_nms_thresh must be 0..1"),
        (dict(stability_score_offset=-1.0), "options.stability_score_offset"),
    ],
)
def test_bad_options_are_invalid_argument(stub: pb_grpc.SegmentationServiceStub, options: dict[str, float], words: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.SegmentEverything(_request(np.zeros((32, 32, 3), np.uint8), **options), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in info.value.details()


def test_missing_or_undecodable_image_is_invalid_argument(stub: pb_grpc.SegmentationServiceStub, server: BackgroundServer) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.SegmentEverything(pb.SegmentEverythingRequest(id="x"), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "image is required" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.SegmentEverything(pb.SegmentEverythingRequest(image=pb.Image(encoded=b"not an image")), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with server.channel() as channel:
        call = channel.unary_unary(METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as info:
            call(b"\xff\xff\xff\xff", timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not a valid wsss.v1.SegmentEverythingRequest" in info.value.details()


def test_deadline_stops_the_work(stub: pb_grpc.SegmentationServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.SegmentEverything(_request(np.zeros((256, 256, 3), np.uint8), points_per_side=64, points_per_batch=4), timeout=0.5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert stub.SegmentEverything(_request(np.zeros((32, 32, 3), np.uint8), points_per_side=2), timeout=60).points == 4


def test_over_budget_is_resource_exhausted_before_decoding() -> None:
    running = BackgroundServer(make_settings(max_request_bytes=128 * 1024 * 1024))
    try:
        with running.channel() as channel:
            stub = pb_grpc.SegmentationServiceStub(channel)
            header_only = png_bytes(np.zeros((2048, 2048, 3), np.uint8))[:200]
            with pytest.raises(grpc.RpcError) as info:
                stub.SegmentEverything(pb.SegmentEverythingRequest(image=pb.Image(encoded=header_only)), timeout=30)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "WSSS_MAX_REQUEST_BYTES" in info.value.details()
            assert stub.SegmentEverything(_request(np.zeros((48, 48, 3), np.uint8), points_per_side=2), timeout=60).points == 4
    finally:
        running.stop()
