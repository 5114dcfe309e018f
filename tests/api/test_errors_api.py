"""Every failure a caller can cause: a clear status and message, and the server stays up."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from service.api.background import BackgroundServer
from tests.conftest import make_settings, png_bytes, repo_copy
from training.synthetic import HELD_OUT_SEED, generate
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc

SAMPLE = generate(HELD_OUT_SEED, 0)
IMAGE = pb.Image(encoded=png_bytes(SAMPLE.image))


def _req(**kw: object) -> pb.SegmentRequest:
    base = {"image": IMAGE, "labels": pb.WeakLabels(image_labels=["scratch"])}
    base.update(kw)
    return pb.SegmentRequest(**base)  # type: ignore[arg-type]


def _with(mutate: Callable[[pb.SegmentRequest], None]) -> pb.SegmentRequest:
    r = _req()
    mutate(r)
    return r


CASES = [
    (pb.SegmentRequest(), grpc.StatusCode.INVALID_ARGUMENT, "image is required"),
    (_req(image=pb.Image(encoded=b"")), grpc.StatusCode.INVALID_ARGUMENT, "image: image bytes are empty"),
    (_req(image=pb.Image(encoded=b"\x89PNG\r\n\x1a\n garbage")), grpc.StatusCode.INVALID_ARGUMENT, "image:"),
    (_req(image=pb.Image(encoded=png_bytes(SAMPLE.image)[:200])), grpc.StatusCode.INVALID_ARGUMENT, "could not be decoded"),
    (_req(image=pb.Image(raw=pb.RawImage(data=b"123", height=2, width=2, channels=3))), grpc.StatusCode.INVALID_ARGUMENT, "needs 12 bytes, got 3"),
    (_req(labels=pb.WeakLabels(image_labels=["dent"])), grpc.StatusCode.INVALID_ARGUMENT, "unknown class 'dent'"),
    (_req(labels=pb.WeakLabels(scribbles=[pb.ScribbleLabel(label="spot", points=[pb.Point(x=1, y=1)])])),
     grpc.StatusCode.INVALID_ARGUMENT, r"scribbles\[0\]: a scribble needs at least 2 points"),
    (_req(labels=pb.WeakLabels(scribbles=[pb.ScribbleLabel(label="spot")])), grpc.StatusCode.INVALID_ARGUMENT, "at least 2 points, got 0"),
    (_req(labels=pb.WeakLabels(points=[pb.PointLabel(label="spot", x=1, y=1e9)])), grpc.StatusCode.INVALID_ARGUMENT, "outside the 256x256 image"),
    (_req(labels=pb.WeakLabels(boxes=[pb.BoxLabel(label="spot", x0=float("nan"), y0=1, x1=20, y1=20)])), grpc.StatusCode.INVALID_ARGUMENT, "must be finite"),
    (_req(labels=pb.WeakLabels(boxes=[pb.BoxLabel(label="spot", x0=30, y0=1, x1=20, y1=20)])), grpc.StatusCode.INVALID_ARGUMENT, "x0 < x1"),
    (_req(options=pb.SegmentOptions(refinement=77)), grpc.StatusCode.INVALID_ARGUMENT, "options.refinement: unknown value 77"),
    (_req(options=pb.SegmentOptions(peak_threshold=2.0)), grpc.StatusCode.INVALID_ARGUMENT, r"options.peak_threshold must be a number in \[0.0, 1.0\]"),
    (_req(options=pb.SegmentOptions(mask_formats=[42])), grpc.StatusCode.INVALID_ARGUMENT, "mask_formats: unknown value 42"),
    (_req(ground_truth=pb.Image(encoded=png_bytes(SAMPLE.mask[:100]))), grpc.StatusCode.INVALID_ARGUMENT, "ground_truth: ground_truth is 256x100 but the image is 256x256"),
    (_req(ground_truth=pb.Image(encoded=png_bytes(SAMPLE.mask + 9))), grpc.StatusCode.INVALID_ARGUMENT, "unknown class ids"),
    (_with(lambda r: r.labels.image_labels.extend(["spot"] * 1000)), grpc.StatusCode.INVALID_ARGUMENT, "at most 1000 are allowed"),
]


@pytest.mark.parametrize(("request_", "code", "message"), CASES)
def test_bad_segment_request(stub: pb_grpc.SegmentationServiceStub, request_: pb.SegmentRequest, code: grpc.StatusCode, message: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.Segment(request_, timeout=30)
    assert info.value.code() == code
    assert re.search(message, info.value.details()), info.value.details()


def test_server_is_unharmed_after_bad_requests(stub: pb_grpc.SegmentationServiceStub) -> None:
    for request_, _, _ in CASES:
        with pytest.raises(grpc.RpcError):
            stub.Segment(request_, timeout=30)
    assert stub.Segment(_req(), timeout=60).mask.png


def test_bad_predict_request(stub: pb_grpc.SegmentationServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(pb.PredictRequest(image=pb.Image(encoded=b"nope")), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_message_over_configured_limit(server: BackgroundServer) -> None:
    with server.channel(max_message=200 * 1024 * 1024) as channel:
        stub = pb_grpc.SegmentationServiceStub(channel)
        big = pb.SegmentRequest(image=pb.Image(encoded=b"\0" * (65 * 1024 * 1024)))
        with pytest.raises(grpc.RpcError) as info:
            stub.Segment(big, timeout=60)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_in_flight_limit_refuses_at_once() -> None:
    running = BackgroundServer(make_settings(max_in_flight=1))
    try:
        with running.channel() as channel:
            stub = pb_grpc.SegmentationServiceStub(channel)

            def call(_: int) -> grpc.StatusCode:
                try:
                    stub.Segment(_req(), timeout=60)
                    return grpc.StatusCode.OK
                except grpc.RpcError as err:
                    assert "limit of 1 requests in flight" in err.details()
                    return err.code()

            with ThreadPoolExecutor(6) as pool:
                codes = list(pool.map(call, range(6)))
        assert grpc.StatusCode.OK in codes and grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    finally:
        running.stop()


def test_corrupt_model_leaves_server_up_but_not_serving(tmp_path: Path) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    repo = repo_copy(tmp_path)
    (repo / "sam_decoder" / "1" / "model.onnx").write_bytes(b"corrupt")
    running = BackgroundServer(make_settings(model_repo=repo))
    try:
        with running.channel() as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == health_pb2.HealthCheckResponse.NOT_SERVING
            stub = pb_grpc.SegmentationServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.Segment(_req(), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "model 'sam_decoder'" in info.value.details() and "cannot load" in info.value.details()
    finally:
        running.stop()
