"""``python -m service.healthcheck [host:port]``: exit 0 when the gRPC health service says SERVING (container HEALTHCHECK).

With TLS on, set ``WSSS_HEALTHCHECK_TLS_CA`` to the CA that signed the server certificate (and
``WSSS_HEALTHCHECK_TLS_CERT`` / ``_KEY`` under mutual TLS); the health service needs no token.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.client import open_channel


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    address = args[0] if args else f"localhost:{os.environ.get('WSSS_PORT', '50051')}"
    ca, cert, key = (os.environ.get(f"WSSS_HEALTHCHECK_TLS_{n}", "") for n in ("CA", "CERT", "KEY"))
    try:
        with open_channel(address, [], ca, cert, key) as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=3).status
    except grpc.RpcError as err:
        print(f"unhealthy: {err.code().name}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1
    print(health_pb2.HealthCheckResponse.ServingStatus.Name(status))
    return 0 if status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
