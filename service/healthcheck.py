"""``python -m service.healthcheck [host:port]``: exit 0 when the gRPC health service says SERVING (container HEALTHCHECK)."""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    address = args[0] if args else f"localhost:{os.environ.get('WSSS_PORT', '50051')}"
    try:
        with grpc.insecure_channel(address) as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=3).status
    except grpc.RpcError as err:
        print(f"unhealthy: {err.code().name}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1
    print(health_pb2.HealthCheckResponse.ServingStatus.Name(status))
    return 0 if status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
