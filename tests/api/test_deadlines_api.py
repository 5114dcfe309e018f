"""Client deadlines stop the work: later pipeline stages do not run once the deadline has passed."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest

from service.api.background import BackgroundServer
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc


def test_deadline_stops_the_pipeline(server: BackgroundServer, stub: pb_grpc.SegmentationServiceStub) -> None:
    img = np.random.default_rng(0).integers(0, 255, (1200, 1200, 3), dtype=np.uint8)
    req = pb.SegmentRequest(image=pb.Image(raw=pb.RawImage(data=img.tobytes(), height=1200, width=1200, channels=3)),
                            labels=pb.WeakLabels(image_labels=["stain"]))
    cancelled = server.metric("wsss_requests_total", {"rpc": "Segment", "code": "CANCELLED"})
    encoder = {"model": "sam_encoder", "provider": "CPUExecutionProvider"}
    encoder_runs = server.metric("wsss_model_inference_seconds_count", encoder)
    with pytest.raises(grpc.RpcError) as info:
        stub.Segment(req, timeout=0.3)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 30
    while server.metric("wsss_requests_total", {"rpc": "Segment", "code": "CANCELLED"}) == cancelled:
        assert time.monotonic() < deadline, "the server never gave up on the expired request"
        time.sleep(0.1)
    while server.metric("wsss_in_flight_requests") != 0:  # the slot is held until the work has stopped
        assert time.monotonic() < deadline, "the expired request's work never stopped"
        time.sleep(0.05)
    assert server.metric("wsss_model_inference_seconds_count", encoder) == encoder_runs  # stopped before the encoder
