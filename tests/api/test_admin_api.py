"""The admin service (ModelRepositoryService): admin tokens only; explicit load / unload."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest

from bench.model_rollout import drop_version
from service.api.background import BackgroundServer
from service.settings import REPO_ROOT
from tests.conftest import make_settings
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc

ADMIN, CALLER = "admin-secret", "caller-secret"


def _meta(token: str | None) -> list[tuple[str, str]]:
    return [] if token is None else [("authorization", f"Bearer {token}")]


@pytest.fixture
def explicit(tmp_path: Path) -> BackgroundServer:
    repo = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "model_repo", repo)
    server = BackgroundServer(make_settings(model_repo=repo, model_control_mode="explicit", admin_tokens=ADMIN, auth_tokens=CALLER))
    yield server  # type: ignore[misc]
    server.stop()


def _predict_version(channel: grpc.Channel) -> str:
    image = np.zeros((64, 64, 3), np.uint8)
    req = pb.PredictRequest(image=pb.Image(raw=pb.RawImage(data=image.tobytes(), height=64, width=64, channels=3)))
    return pb_grpc.SegmentationServiceStub(channel).Predict(req, metadata=_meta(CALLER), timeout=30).model_version


def test_admin_calls_need_an_admin_token(explicit: BackgroundServer) -> None:
    with explicit.channel() as channel:
        admin = pb_grpc.ModelRepositoryServiceStub(channel)
        for token, code in ((None, grpc.StatusCode.UNAUTHENTICATED), (CALLER, grpc.StatusCode.PERMISSION_DENIED),
                            ("wrong", grpc.StatusCode.PERMISSION_DENIED)):
            for call, req in ((admin.RepositoryIndex, pb.RepositoryIndexRequest()), (admin.LoadModel, pb.LoadModelRequest(name="deeplab")),
                              (admin.UnloadModel, pb.UnloadModelRequest(name="deeplab"))):
                with pytest.raises(grpc.RpcError) as info:
                    call(req, metadata=_meta(token), timeout=10)
                assert info.value.code() == code, (token, call)
        with pytest.raises(grpc.RpcError) as info:  # and an admin token is not a caller token
            pb_grpc.SegmentationServiceStub(channel).ListModels(pb.ListModelsRequest(), metadata=_meta(ADMIN), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        index = admin.RepositoryIndex(pb.RepositoryIndexRequest(), metadata=_meta(ADMIN), timeout=10)
        assert index.model_control_mode == "explicit"
        assert {m.name: (m.state, m.version_served, list(m.versions_on_disk)) for m in index.models}["deeplab"] == ("READY", "1", ["1"])


def test_explicit_load_and_unload(explicit: BackgroundServer, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with explicit.channel() as channel:
        admin = pb_grpc.ModelRepositoryServiceStub(channel)
        drop_version(repo, 2)
        assert _predict_version(channel) == "1"  # explicit: nothing happens by itself
        assert admin.LoadModel(pb.LoadModelRequest(name="deeplab"), metadata=_meta(ADMIN), timeout=60).version == "2"
        assert _predict_version(channel) == "2"
        drop_version(repo, 3, corrupt=True)
        with pytest.raises(grpc.RpcError) as info:
            admin.LoadModel(pb.LoadModelRequest(name="deeplab"), metadata=_meta(ADMIN), timeout=60)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "3/model.onnx" in info.value.details()
        assert _predict_version(channel) == "2"
        assert admin.UnloadModel(pb.UnloadModelRequest(name="deeplab"), metadata=_meta(ADMIN), timeout=60).name == "deeplab"
        with pytest.raises(grpc.RpcError) as info:
            _predict_version(channel)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        shutil.rmtree(repo / "deeplab" / "3")
        assert admin.LoadModel(pb.LoadModelRequest(name="deeplab"), metadata=_meta(ADMIN), timeout=60).version == "2"
        assert _predict_version(channel) == "2"
        for name, code in (("../etc", grpc.StatusCode.INVALID_ARGUMENT), ("resnet", grpc.StatusCode.INVALID_ARGUMENT)):
            with pytest.raises(grpc.RpcError) as info:
                admin.LoadModel(pb.LoadModelRequest(name=name), metadata=_meta(ADMIN), timeout=10)
            assert info.value.code() == code


def test_load_model_needs_explicit_mode(tmp_path: Path) -> None:
    server = BackgroundServer(make_settings(admin_tokens=ADMIN))
    try:
        with server.channel() as channel:
            admin = pb_grpc.ModelRepositoryServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                admin.LoadModel(pb.LoadModelRequest(name="deeplab"), metadata=_meta(ADMIN), timeout=10)
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "explicit" in info.value.details()
            assert admin.RepositoryIndex(pb.RepositoryIndexRequest(), metadata=_meta(ADMIN), timeout=10).model_control_mode == "none"
    finally:
        server.stop()
