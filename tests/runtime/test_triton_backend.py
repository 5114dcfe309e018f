"""The Triton backend against a real Open Inference Protocol server (KServe's Python model server
serving our ONNX files): same outputs as in process, UNAVAILABLE while unreachable, recovery."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

if importlib.util.find_spec("kserve") is None:  # never imported here: its OIP protos clash with tritonclient's in one process
    pytest.skip("kserve is not installed (dev extra)", allow_module_level=True)
pytest.importorskip("tritonclient.grpc")

from service.api.background import BackgroundServer  # noqa: E402
from service.errors import ModelNotReady  # noqa: E402
from service.runtime import ModelRepository  # noqa: E402
from service.runtime.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from service.runtime.triton_backend import TritonBackend  # noqa: E402
from tests.conftest import DEFAULT_REPO, free_port, iou, make_settings, png_bytes  # noqa: E402
from training.synthetic import HELD_OUT_SEED, generate  # noqa: E402
from wsss.v1 import segmentation_pb2 as pb  # noqa: E402
from wsss.v1 import segmentation_pb2_grpc as pb_grpc  # noqa: E402

MODELS = ["cam_classifier", "sam_encoder", "sam_decoder", "deeplab"]
SERVER = Path(__file__).resolve().parent.parent / "oip_server.py"


class OipServer:
    """KServe's model server as a child process on loopback."""

    def __init__(self, grpc_port: int) -> None:
        self.grpc_port = grpc_port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        limit = str(64 << 20)
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--repo", str(DEFAULT_REPO), "--grpc-port", str(self.grpc_port), "--http-port", str(free_port()),
             "--grpc_max_receive_message_length", limit, "--grpc_max_send_message_length", limit],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                TritonBackend(ModelRepository(DEFAULT_REPO), f"127.0.0.1:{self.grpc_port}", timeout=2).load(["deeplab"])
                return
            except ModelNotReady:
                assert self.proc.poll() is None, "the OIP server died"
                assert time.monotonic() < deadline, "the OIP server did not come up in 90 s"
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


@pytest.fixture(scope="module")
def oip() -> Iterator[OipServer]:
    server = OipServer(free_port())
    server.start()
    yield server
    server.stop()


def test_outputs_equal_the_in_process_backend(oip: OipServer) -> None:
    repo = ModelRepository(DEFAULT_REPO)
    remote = TritonBackend(repo, f"127.0.0.1:{oip.grpc_port}")
    local = OnnxRuntimeBackend(repo, "CPUExecutionProvider")
    remote.load(MODELS)
    local.load(MODELS)
    assert remote.models()["cam_classifier"].labels == local.models()["cam_classifier"].labels
    rng = np.random.default_rng(0)
    feeds = {
        "cam_classifier": {"image": rng.standard_normal((2, 3, 96, 128)).astype(np.float32)},
        "deeplab": {"image": rng.integers(0, 256, (1, 64, 80, 3), dtype=np.uint8)},
        "sam_encoder": {"image": rng.integers(0, 256, (1, 768, 1024, 3), dtype=np.uint8)},
        "sam_decoder": {
            "image_embeddings": rng.standard_normal((1, 256, 64, 64)).astype(np.float32),
            "point_coords": np.array([[[100.0, 200.0], [0, 0]]], np.float32),
            "point_labels": np.array([[1.0, -1.0]], np.float32),
            "mask_input": np.zeros((1, 1, 256, 256), np.float32),
            "has_mask_input": np.zeros(1, np.float32),
            "orig_im_size": np.array([300.0, 400.0], np.float32),
        },
    }
    for model, inputs in feeds.items():
        a, b = remote.infer(model, inputs), local.infer(model, inputs)
        assert set(a) == set(b)
        for name in a:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-5)
    # only the outputs asked for come back, with their own dtypes (DeepLab's in-graph labels are uint8)
    wanted = ("labels", "confidence")
    a, b = remote.infer("deeplab", feeds["deeplab"], outputs=wanted), local.infer("deeplab", feeds["deeplab"], outputs=wanted)
    assert set(a) == set(b) == set(wanted)
    assert a["labels"].dtype == b["labels"].dtype == np.uint8 and a["labels"].shape == (1, 64, 80)
    np.testing.assert_array_equal(a["labels"], b["labels"])
    np.testing.assert_allclose(a["confidence"], b["confidence"], rtol=1e-5, atol=1e-6)


def test_service_on_triton_matches_in_process(oip: OipServer) -> None:
    s = generate(HELD_OUT_SEED, 4)
    req = pb.SegmentRequest(image=pb.Image(encoded=png_bytes(s.image)), labels=pb.WeakLabels(image_labels=s.labels),
                            options=pb.SegmentOptions(mask_formats=[pb.MASK_FORMAT_RAW]))
    masks = []
    for settings in (make_settings(backend="triton", triton_url=f"127.0.0.1:{oip.grpc_port}"), make_settings()):
        running = BackgroundServer(settings)
        try:
            with running.channel() as channel:
                stub = pb_grpc.SegmentationServiceStub(channel)
                masks.append(np.frombuffer(stub.Segment(req, timeout=60).mask.raw, np.uint8))
                models = {m.name: m for m in stub.ListModels(pb.ListModelsRequest(), timeout=10).models}
                assert models["sam_decoder"].backend == settings.backend
        finally:
            running.stop()
    assert iou(masks[0] > 0, masks[1] > 0) > 0.99


def test_unreachable_then_recovers() -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    port = free_port()
    running = BackgroundServer(make_settings(backend="triton", triton_url=f"127.0.0.1:{port}", triton_timeout_seconds=2, load_retry_seconds=0.5))
    oip = OipServer(port)
    try:
        with running.channel() as channel:
            health = health_pb2_grpc.HealthStub(channel)
            stub = pb_grpc.SegmentationServiceStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.RpcError) as info:
                stub.ListModels(pb.ListModelsRequest(), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert f"Triton server at 127.0.0.1:{port} is unreachable" in info.value.details()
            oip.start()
            deadline = time.monotonic() + 60
            while health.Check(health_pb2.HealthCheckRequest(), timeout=5).status != health_pb2.HealthCheckResponse.SERVING:
                assert time.monotonic() < deadline, "the service did not recover when the server came up"
                time.sleep(0.3)
            s = generate(HELD_OUT_SEED, 1)
            image = pb.Image(encoded=png_bytes(s.image))
            assert stub.Predict(pb.PredictRequest(image=image), timeout=60).mask.png
            oip.stop()
            with pytest.raises(grpc.RpcError) as info:
                stub.Predict(pb.PredictRequest(image=image), timeout=30)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "is unreachable" in info.value.details()
            oip.start()
            deadline = time.monotonic() + 60
            while True:
                try:
                    assert stub.Predict(pb.PredictRequest(image=image), timeout=30).mask.png
                    break
                except grpc.RpcError as err:
                    assert err.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline
                    time.sleep(0.5)
    finally:
        oip.stop()
        running.stop()


def _client_threads() -> int:
    import threading

    return sum(1 for t in threading.enumerate() if t.name == "triton-client" and t.is_alive())


def test_failed_loads_release_their_client_loop() -> None:
    """Every retry against an unreachable server builds a backend; the failed ones are closed (no thread per retry)."""
    from prometheus_client import CollectorRegistry

    from service.api.state import ServiceState
    from service.metrics import Metrics

    before = _client_threads()
    state = ServiceState(make_settings(backend="triton", triton_url=f"127.0.0.1:{free_port()}", triton_timeout_seconds=0.5), Metrics(CollectorRegistry()))
    for _ in range(3):
        state.load()
        assert not state.ready and state.retryable and "is unreachable" in state.error
    assert _client_threads() == before
    backend = TritonBackend(ModelRepository(DEFAULT_REPO), f"127.0.0.1:{free_port()}", timeout=0.5)
    assert _client_threads() == before + 1
    with pytest.raises(ModelNotReady, match="is unreachable"):
        backend.load(["deeplab"])
    backend.close()
    backend.close()
    assert _client_threads() == before
