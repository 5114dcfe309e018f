"""A hostile caller's requests: extreme geometries, huge images, over-budget work, long strings,
bytes that are not protobuf. Each gets a clear status; the server stays up and healthy."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.api.background import BackgroundServer
from tests.conftest import make_settings, png_bytes
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc

SEGMENT = "/wsss.v1.SegmentationService/Segment"
STREAM = "/wsss.v1.SegmentationService/SegmentStream"
PREDICT = "/wsss.v1.SegmentationService/Predict"


def _request(image: np.ndarray, labels: pb.WeakLabels, **options: object) -> pb.SegmentRequest:
    return pb.SegmentRequest(image=pb.Image(encoded=png_bytes(image)), labels=labels, options=pb.SegmentOptions(**options))  # type: ignore[arg-type]


def _mask(response: pb.SegmentResponse) -> np.ndarray:
    return np.frombuffer(response.mask.raw, np.uint8).reshape(response.mask.height, response.mask.width)


THIN = [(1, 4096), (4096, 1), (2, 8192), (8192, 2), (1, 1), (3, 700)]


@pytest.mark.parametrize(("height", "width"), THIN)
def test_thin_images_with_every_kind_of_label(stub: pb_grpc.SegmentationServiceStub, height: int, width: int) -> None:
    image = np.random.default_rng(height * width).integers(0, 255, (height, width, 3), dtype=np.uint8)
    x1, y1 = float(width), float(height)
    kinds = [
        pb.WeakLabels(image_labels=["stain", "scratch"]),
        pb.WeakLabels(boxes=[pb.BoxLabel(label="stain", x0=0, y0=0, x1=x1, y1=y1)]),
        pb.WeakLabels(points=[pb.PointLabel(label="spot", x=x1 / 2, y=y1 / 2), pb.PointLabel(label="crack", x=0, y=0, negative=True)]),
        pb.WeakLabels(scribbles=[pb.ScribbleLabel(label="crack", points=[pb.Point(x=0, y=0), pb.Point(x=x1, y=y1)], width=2)]),
    ]
    for labels in kinds:
        for refinement in (pb.REFINEMENT_NONE, pb.REFINEMENT_CRF, pb.REFINEMENT_SUPERPIXEL):
            response = stub.Segment(_request(image, labels, refinement=refinement, mask_formats=[pb.MASK_FORMAT_RAW, pb.MASK_FORMAT_COCO_RLE]), timeout=60)
            assert _mask(response).shape == (height, width)
            for c in response.classes:
                assert list(c.rle.size) == [height, width]
                assert all(0 <= p.x <= width and 0 <= p.y <= height for p in c.prompts)
    predicted = stub.Predict(pb.PredictRequest(image=pb.Image(encoded=png_bytes(image)), mask_formats=[pb.MASK_FORMAT_RAW]), timeout=60)
    assert (predicted.mask.height, predicted.mask.width) == (height, width)


def test_large_image_works_at_the_bounded_resolution_and_answers_in_original_pixels(stub: pb_grpc.SegmentationServiceStub) -> None:
    """A 3000 x 2000 image (past the 1024 working side) with a bright square and a box around it:
    the mask comes back at 3000 x 2000, in the box, with prompts and areas in original pixels."""
    image = np.full((2000, 3000, 3), 40, np.uint8)
    image[800:1200, 1800:2200] = 230
    box = pb.BoxLabel(label="stain", x0=1700, y0=700, x1=2300, y1=1300)
    response = stub.Segment(_request(image, pb.WeakLabels(boxes=[box]), mask_formats=[pb.MASK_FORMAT_RAW]), timeout=60)
    mask = _mask(response)
    assert mask.shape == (2000, 3000)
    (stain,) = response.classes
    assert stain.area == int(np.count_nonzero(mask == stain.class_id)) > 0
    ys, xs = np.nonzero(mask == stain.class_id)
    assert xs.min() >= 1690 and xs.max() <= 2310 and ys.min() >= 690 and ys.max() <= 1310
    corners = sorted((p.x, p.y) for p in stain.prompts if p.label in (2, 3))
    assert corners == [(1700.0, 700.0), (2300.0, 1300.0)]
    assert abs(stain.instances[0].area - stain.area) < 0.2 * stain.area


def test_long_unknown_class_name_is_cut_in_the_message(stub: pb_grpc.SegmentationServiceStub) -> None:
    name = "x" * 20_000
    with pytest.raises(grpc.RpcError) as info:
        stub.Segment(_request(np.zeros((32, 32, 3), np.uint8), pb.WeakLabels(image_labels=[name])), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown class 'xxxx" in info.value.details() and "(20000 characters)" in info.value.details()
    assert len(info.value.details()) < 1000


def test_undecodable_bytes_are_invalid_argument(server: BackgroundServer) -> None:
    with server.channel() as channel:
        for method in (SEGMENT, PREDICT):
            call = channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
            with pytest.raises(grpc.RpcError) as info:
                call(b"\xff\xff\xff\xff", timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "is not a valid wsss.v1." in info.value.details()


def test_an_undecodable_stream_item_fails_alone(server: BackgroundServer) -> None:
    good = _request(np.zeros((40, 40, 3), np.uint8), pb.WeakLabels(image_labels=["stain"]))
    items = [pb.SegmentRequest(id="a", image=good.image, labels=good.labels).SerializeToString(), b"\x0a\xff\xff",
             pb.SegmentRequest(id="c", image=good.image, labels=good.labels).SerializeToString()]
    with server.channel() as channel:
        call = channel.stream_stream(STREAM, request_serializer=lambda b: b, response_deserializer=pb.SegmentResponse.FromString)
        responses = list(call(iter(items), timeout=60))
    assert [r.id for r in responses] == ["a", "", "c"]
    assert not responses[0].HasField("error") and not responses[2].HasField("error")
    assert responses[1].error.code_name == "INVALID_ARGUMENT" and "not a valid wsss.v1.SegmentRequest" in responses[1].error.message


def test_over_budget_requests_are_refused_before_decoding() -> None:
    running = BackgroundServer(make_settings(max_request_bytes=16 * 1024 * 1024))
    try:
        with running.channel() as channel:
            stub = pb_grpc.SegmentationServiceStub(channel)
            header_only = png_bytes(np.zeros((512, 512, 3), np.uint8))[:200]  # truncated: decoding would fail, the size is known first
            for call in (
                lambda: stub.Segment(pb.SegmentRequest(image=pb.Image(encoded=header_only), labels=pb.WeakLabels(image_labels=["stain"])), timeout=30),
                lambda: stub.Predict(pb.PredictRequest(image=pb.Image(encoded=png_bytes(np.zeros((2048, 2048, 3), np.uint8)))), timeout=30),
            ):
                with pytest.raises(grpc.RpcError) as info:
                    call()
                assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "MiB of working memory" in info.value.details() and "WSSS_MAX_REQUEST_BYTES" in info.value.details()
            small = _request(np.zeros((48, 48, 3), np.uint8), pb.WeakLabels(image_labels=["stain"]))
            assert stub.Segment(small, timeout=30).mask.png
    finally:
        running.stop()


def test_predict_with_test_time_augmentation_serves_every_geometry() -> None:
    """A server averaging DeepLab over three scales and mirrors (WSSS_PREDICT_SCALES / _FLIP) answers
    thin, tiny and ordinary images at their own size, with the same label map as the wrapper's."""
    from service.models.deeplab import DeepLab
    from service.pipeline.predict import Predictor
    from service.runtime import ModelRepository
    from service.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from tests.conftest import DEFAULT_REPO

    running = BackgroundServer(make_settings(predict_scales=(0.75, 1.0, 1.25), predict_flip=True))
    try:
        with running.channel() as channel:
            stub = pb_grpc.SegmentationServiceStub(channel)
            for height, width in [*THIN, (200, 300)]:
                image = np.random.default_rng(height + width).integers(0, 255, (height, width, 3), dtype=np.uint8)
                out = stub.Predict(pb.PredictRequest(image=pb.Image(encoded=png_bytes(image)), mask_formats=[pb.MASK_FORMAT_RAW]), timeout=60)
                assert (out.mask.height, out.mask.width) == (height, width)
        backend = OnnxRuntimeBackend(ModelRepository(DEFAULT_REPO), "CPUExecutionProvider")
        backend.load(["deeplab"])
        want = Predictor(DeepLab(backend), scales=(0.75, 1.0, 1.25), flip=True).predict(image).label_map
        np.testing.assert_array_equal(np.frombuffer(out.mask.raw, np.uint8).reshape(height, width), want)
    finally:
        running.stop()


def test_a_deeplab_config_sets_predicts_test_time_augmentation_unless_the_server_does(tmp_path: Path) -> None:
    """A DeepLab whose config carries ``predict_scales`` / ``predict_flip`` (as ``export`` writes a
    chain's) is served so with no server setting: ListModels says so and Predict's label map is the
    augmented one; the server's WSSS_PREDICT_SCALES / _FLIP, when set, win."""
    from service.models.deeplab import DeepLab
    from service.pipeline.predict import Predictor
    from service.runtime import ModelRepository
    from service.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from tests.conftest import DEFAULT_REPO
    from training.export import write_deeplab_config

    shutil.copytree(DEFAULT_REPO, tmp_path / "repo")
    classes = (tmp_path / "repo" / "deeplab" / "labels.txt").read_text().split()
    write_deeplab_config(tmp_path / "repo" / "deeplab", "deeplab", classes, predict_scales=(0.75, 1.0, 1.25), predict_flip=True)
    image = np.random.default_rng(5).integers(0, 255, (120, 170, 3), dtype=np.uint8)
    backend = OnnxRuntimeBackend(ModelRepository(DEFAULT_REPO), "CPUExecutionProvider")
    backend.load(["deeplab"])
    wrapper = DeepLab(backend)
    want = {True: Predictor(wrapper, scales=(0.75, 1.0, 1.25), flip=True).predict(image).label_map, False: Predictor(wrapper).predict(image).label_map}
    assert not np.array_equal(want[True], want[False])  # the augmentation changes this image's labels: the check below can fail
    for overrides, augmented in (({}, True), ({"predict_scales": (1.0,), "predict_flip": False}, False)):
        running = BackgroundServer(make_settings(model_repo=tmp_path / "repo", **overrides))
        try:
            with running.channel() as channel:
                stub = pb_grpc.SegmentationServiceStub(channel)
                (info,) = stub.ListModels(pb.ListModelsRequest(), timeout=30).model_sets
                assert (list(info.predict_scales), info.predict_flip) == (([0.75, 1.0, 1.25], True) if augmented else ([1.0], False))
                out = stub.Predict(pb.PredictRequest(image=pb.Image(encoded=png_bytes(image)), mask_formats=[pb.MASK_FORMAT_RAW]), timeout=60)
                np.testing.assert_array_equal(np.frombuffer(out.mask.raw, np.uint8).reshape(image.shape[:2]), want[augmented])
        finally:
            running.stop()


def _becomes_not_serving(channel: grpc.Channel, within: float = 5.0) -> bool:
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + within
    while health.Check(health_pb2.HealthCheckRequest(), timeout=5).status != health_pb2.HealthCheckResponse.NOT_SERVING:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_process_that_cannot_serve_turns_not_serving() -> None:
    running = BackgroundServer(make_settings(unhealthy_after_errors=3))
    try:
        segmenter = running.server.state.segmenter
        assert segmenter is not None
        with running.channel() as channel:
            stub = pb_grpc.SegmentationServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            request = _request(np.zeros((40, 40, 3), np.uint8), pb.WeakLabels(image_labels=["stain"]))

            def broken(*args: object, **kwargs: object) -> None:
                raise RuntimeError("model session is broken")

            segmenter.segment = broken  # type: ignore[method-assign]
            for _ in range(2):
                with pytest.raises(grpc.RpcError) as info:
                    stub.Segment(request, timeout=30)
                assert info.value.code() == grpc.StatusCode.INTERNAL
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.RpcError):
                stub.Segment(request, timeout=30)
            assert _becomes_not_serving(channel)

        fresh = BackgroundServer(make_settings())
        try:
            assert fresh.server.state.segmenter is not None

            def out_of_memory(*args: object, **kwargs: object) -> None:
                raise MemoryError

            fresh.server.state.segmenter.segment = out_of_memory  # type: ignore[method-assign]
            with fresh.channel() as channel:
                with pytest.raises(grpc.RpcError) as info:
                    pb_grpc.SegmentationServiceStub(channel).Segment(request, timeout=30)
                assert info.value.code() == grpc.StatusCode.INTERNAL
                assert _becomes_not_serving(channel)  # on the first MemoryError
        finally:
            fresh.stop()
    finally:
        running.stop()
