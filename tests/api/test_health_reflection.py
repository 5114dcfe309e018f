"""Standard gRPC health and server reflection."""

from __future__ import annotations

from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from service.api.background import BackgroundServer


def test_health_is_serving_after_warmup(server: BackgroundServer) -> None:
    with server.channel() as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "wsss.v1.SegmentationService"):
            assert stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(server: BackgroundServer) -> None:
    with server.channel() as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"wsss.v1.SegmentationService", "grpc.health.v1.Health"} <= names
