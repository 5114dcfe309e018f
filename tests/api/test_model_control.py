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
        assert old.predictor is not None and old.predictor.predict(__import__("numpy").zeros((64, 64, 3), "uint8")).model_version == "1"
        assert new.predictor is not None and new.predictor.deeplab.version == "2"
        old_backend, new_backend = old.backend, new.backend
        assert new_backend._sessions["cam_classifier"] is old_backend._sessions["cam_classifier"]  # type: ignore[attr-defined]
        assert new_backend._sessions["deeplab"] is not old_backend._sessions["deeplab"]  # type: ignore[attr-defined]
        assert "deeplab" in old_backend._sessions  # type: ignore[attr-defined]  # still open while the request runs
    assert old_backend._sessions == {}  # type: ignore[attr-defined]  # closed when the request left
    gone = weakref.ref(old)
    del old, old_backend
    gc.collect()
    assert gone() is None
    assert state.generation is new and repository_fingerprints(repo) == {**new.fingerprints}
    state.close()
