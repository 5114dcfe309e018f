"""How callers should open channels to a set of WeakSeg replicas (the client CLI uses it).

- Target ``dns:///weakseg-headless.<ns>.svc.cluster.local:50051`` (a headless Service: one
  address per ready pod) with the ``round_robin`` policy: every call goes to the next replica.
- The server closes connections after ``WSSS_MAX_CONNECTION_AGE_SECONDS`` (a GOAWAY): the client
  re-resolves the name and connects to replicas that came up since; DNS re-resolution is allowed
  every second here (gRPC's default is at most every 30 s).
- Client-side health checking (``healthCheckConfig``): a replica is used only while its
  ``grpc.health.v1`` status for the service is SERVING, so one still loading its models or
  shutting down gets no new calls.
- A retry policy for UNAVAILABLE on the idempotent unary methods (all of WeakSeg's: they only
  read), so a call that failed on a replica that went away is sent to another. SegmentStream is
  not retried by the channel (a stream cannot be replayed once answers came; ``weakseg label``
  retries per item). Hedging is not offered: gRPC's C core (Python, C++, Ruby...) does not
  implement hedgingPolicy; a Java or Go caller could hedge Predict with the same method names.
"""

from __future__ import annotations

import json

SERVICE = "wsss.v1.SegmentationService"
IDEMPOTENT_METHODS = ("Segment", "Predict", "SegmentEverything", "ListModels")


def service_config(load_balancing: str = "round_robin", retry: bool = True) -> str:
    """gRPC service config JSON: the load-balancing policy, client-side health checking and, with
    ``retry``, a retry policy."""
    config: dict[str, object] = {"loadBalancingConfig": [{load_balancing: {}}], "healthCheckConfig": {"serviceName": SERVICE}}
    if retry:
        config["methodConfig"] = [{
            "name": [{"service": SERVICE, "method": m} for m in IDEMPOTENT_METHODS],
            "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.1s", "maxBackoff": "2s", "backoffMultiplier": 2,
                            "retryableStatusCodes": ["UNAVAILABLE"]},
        }]
        config["retryThrottling"] = {"maxTokens": 10, "tokenRatio": 0.1}
    return json.dumps(config)


def channel_options(max_message_bytes: int = 64 * 1024 * 1024, load_balancing: str = "round_robin", retry: bool = True) -> list[tuple[str, object]]:
    """Channel arguments for ``grpc.insecure_channel`` / ``secure_channel`` to the replicas."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.service_config", service_config(load_balancing, retry)),
        ("grpc.enable_retries", 1),  # also without a retry policy: gRPC's transparent retry of calls a GOAWAY stopped before the server saw them
        ("grpc.dns_min_time_between_resolutions_ms", 1000),
        ("grpc.keepalive_time_ms", 30_000),      # >= the server's WSSS_MIN_CLIENT_PING_INTERVAL_SECONDS
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", 5_000),
    ]
