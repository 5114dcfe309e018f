"""Model control: a live repository's new versions are served without a restart or a failed call."""

from __future__ import annotations

import gc
import shutil
import weakref
from pathlib import Path

from prometheus_client import CollectorRegistry

from bench.model_rollout import drop_version, rollout
from service.api.state import ServiceState
from service.metrics import Metrics
from service.runtime.model_repo import repository_fingerprints
from service.settings import REPO_ROOT
from tests.conftest import make_settings


def test_rollout_under_load_with_a_corrupt_version(tmp_path: Path) -> None:
    """A server process polling its repository while workers send Predict: two new DeepLab
    versions switch in with no failed call; a corrupt one is refused (the last good version keeps
    answering, health SERVING, the log names the file)."""
    report = rollout(tmp_path, poll=0.5, swaps=2, workers=2, warm_seconds=2.0)
    print(report)
    assert report["failed"] == 0, report["errors"]
    assert all(p is not None for p in report["poll_periods_from_drop_to_first_answer_of_new_version"]), report  # type: ignore[union-attr]
    assert report["reloads"] == {"switched": 2.0, "refused": 1.0}
    assert report["corrupt_version"] == {"versions_answering_after_it": ["3"], "still_serving_last_good": True, "health_serving": True,
                                         "log_names_the_file": True}


def test_a_request_keeps_its_generation_and_the_old_one_is_freed(tmp_path: Path) -> None:
    """In process: a request that started before a reload runs on the old models to its end; the
    old generation is closed when it leaves and then garbage; unchanged models are taken over
    (the classifier's session is the same object), the changed one is new."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "model_repo", repo)
    state = ServiceState(make_settings(model_repo=repo), Metrics(CollectorRegistry()))
    state.load()
    with state.acquire() as old:
        drop_version(repo, 2)
        assert state.reload()
        new = state.generation
        assert new is not old and old.retired and not new.retired
        old_predictor, new_predictor = old.sets[""].predictor, new.sets[""].predictor
        assert old_predictor is not None and old_predictor.predict(__import__("numpy").zeros((64, 64, 3), "uint8")).model_version == "1"
        assert new_predictor is not None and new_predictor.deeplab.version == "2"
        old_backend, new_backend = old.backend, new.backend
        assert new_backend._sessions["cam_classifier"] is old_backend._sessions["cam_classifier"]  # type: ignore[attr-defined]
        assert new_backend._sessions["deeplab"] is not old_backend._sessions["deeplab"]  # type: ignore[attr-defined]
        assert "deeplab" in old_backend._sessions  # type: ignore[attr-defined]  # still open while the request runs
    assert old_backend._sessions == {}  # type: ignore[attr-defined]  # closed when the request left
    gone = weakref.ref(old)
    del old, old_backend, old_predictor
    gc.collect()
    assert gone() is None
    assert state.generation is new and repository_fingerprints(repo) == {**new.fingerprints}
    state.close()


def _with_policy(repo: Path, model: str, policy: str) -> None:
    config = repo / model / "config.pbtxt"
    config.write_text(config.read_text() + f"version_policy: {policy}\n")


def test_version_policy_parsed_as_triton_does(tmp_path: Path) -> None:
    import pytest

    from service.errors import ModelNotFound, ModelRepositoryError
    from service.runtime import ModelRepository

    repo = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "model_repo", repo)
    for v in (2, 3):
        drop_version(repo, v)
    base = (repo / "deeplab" / "config.pbtxt").read_text()
    cases = {"": ("3",), "{ latest { num_versions: 2 } }": ("3", "2"), "{ all { } }": ("3", "2", "1"),
             "{ specific { versions: [1, 3] } }": ("3", "1"), "{ specific { versions: 2 } }": ("2",)}
    for policy, served in cases.items():
        (repo / "deeplab" / "config.pbtxt").write_text(base + (f"version_policy: {policy}\n" if policy else ""))
        config = ModelRepository(repo).get("deeplab")
        assert (config.versions, config.version) == (served, served[0]), policy
    assert ModelRepository(repo).get("deeplab@2").model_path == repo / "deeplab" / "2" / "model.onnx"
    with pytest.raises(ModelNotFound, match="no version '3' served"):
        ModelRepository(repo).get("deeplab@3")
    for bad, words in (("{ specific { versions: [7] } }", "no model.onnx"), ("{ newest { } }", "latest, specific, all"),
                       ("{ latest { num_versions: 0 } }", "at least 1")):
        (repo / "deeplab" / "config.pbtxt").write_text(base + f"version_policy: {bad}\n")
        with pytest.raises(ModelRepositoryError, match=words):
            ModelRepository(repo)


def test_requests_pin_a_served_version(tmp_path: Path) -> None:
    """version_policy latest 2: both versions are served, the newest by default; a request may
    pin either; an unserved one is NOT_FOUND naming those served; ListModels lists both."""
    import grpc
    import numpy as np
    import pytest

    from service.api.background import BackgroundServer
    from wsss.v1 import segmentation_pb2 as pb
    from wsss.v1 import segmentation_pb2_grpc as pb_grpc

    repo = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "model_repo", repo)
    drop_version(repo, 2)
    _with_policy(repo, "deeplab", "{ latest { num_versions: 2 } }")
    for v in ("2",):
        shutil.copytree(repo / "cam_classifier" / "1", repo / "cam_classifier" / v)
    _with_policy(repo, "cam_classifier", "{ all { } }")
    server = BackgroundServer(make_settings(model_repo=repo))
    try:
        image = np.zeros((64, 64, 3), np.uint8)
        raw = pb.Image(raw=pb.RawImage(data=image.tobytes(), height=64, width=64, channels=3))
        with server.channel() as channel:
            stub = pb_grpc.SegmentationServiceStub(channel)
            assert stub.Predict(pb.PredictRequest(image=raw), timeout=30).model_version == "2"
            assert stub.Predict(pb.PredictRequest(image=raw, model_version="1"), timeout=30).model_version == "1"
            seg = stub.Segment(pb.SegmentRequest(image=raw, labels=pb.WeakLabels(image_labels=["stain"]), model_version="1"), timeout=30)
            assert seg.model_versions["cam_classifier"] == "1"
            assert stub.Segment(pb.SegmentRequest(image=raw, labels=pb.WeakLabels(image_labels=["stain"])), timeout=30).model_versions["cam_classifier"] == "2"
            with pytest.raises(grpc.RpcError) as info:
                stub.Predict(pb.PredictRequest(image=raw, model_version="7"), timeout=30)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND and "served: 2, 1" in info.value.details()
            listed = stub.ListModels(pb.ListModelsRequest(), timeout=30)
            default = next(s for s in listed.model_sets if s.name == "default")
            assert default.versions["deeplab"] == "2,1" and default.versions["cam_classifier"] == "2,1"
    finally:
        server.stop()


def test_the_encoder_run_is_measured_at_load_and_kept_by_a_reload_that_keeps_it(tmp_path: Path) -> None:
    """With no classifier no Segment warm-up runs SAM's encoder: it is run at load all the same,
    so SegmentEverything's budget counts what one run takes; a reload that changes only DeepLab
    takes the encoder over with its measurement, without running it again."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "model_repo", repo)
    shutil.rmtree(repo / "cam_classifier")
    state = ServiceState(make_settings(model_repo=repo), Metrics(CollectorRegistry()))
    state.load()
    first = state.generation
    assert first is not None and first.sets[""].segmenter is None
    everything = first.sets[""].everything
    assert everything is not None and everything.encoder.run_bytes > 4 << 20  # the default encoder: tens of MiB a run
    assert everything.working_bytes(200, 300) == everything.image_bytes(200, 300) + everything.encoder.run_bytes
    drop_version(repo, 2)
    assert state.reload()
    second = state.generation
    assert second is not None and second is not first
    kept = second.sets[""].everything
    assert kept is not None and kept.encoder is not everything.encoder and kept.encoder.run_bytes == everything.encoder.run_bytes
    state.close()
