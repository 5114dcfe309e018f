"""Transport security and authentication: TLS / mutual TLS credentials, bearer-token interceptor."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from service.settings import Settings

log = logging.getLogger(__name__)

OPEN_SERVICES = ("/grpc.health.v1.Health/",)
"""Methods callable without a token: orchestrators' health probes carry none."""
ADMIN_SERVICES = ("/wsss.v1.ModelRepositoryService/",)
"""Methods that need an admin token (never a caller token)."""


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials from the settings' PEM files, mutual TLS when ``tls_client_ca`` is set; None for plaintext.

    Raises:
        ValueError: a certificate without its key (or the reverse), or a client CA without TLS.
    """
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ValueError("WSSS_TLS_CERT and WSSS_TLS_KEY must be set together")
    if settings.tls_cert is None or settings.tls_key is None:
        if settings.tls_client_ca is not None:
            raise ValueError("WSSS_TLS_CLIENT_CA needs WSSS_TLS_CERT and WSSS_TLS_KEY (mutual TLS runs over TLS)")
        return None
    chain = [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())]
    if settings.tls_client_ca is None:
        return grpc.ssl_server_credentials(chain)
    return grpc.ssl_server_credentials(chain, root_certificates=settings.tls_client_ca.read_bytes(), require_client_auth=True)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED unless the call carries ``authorization: Bearer <one of tokens>``; on the
    admin service the token must be one of ``admin_tokens`` (no token: UNAUTHENTICATED; another
    token, a caller's too: PERMISSION_DENIED). With no caller tokens the caller methods are open.

    The scheme is case-insensitive (RFC 7235). Tokens are compared in constant time and never
    logged; the health service stays open. Refusals are logged at most once per
    ``log_interval`` seconds, with the count since the last line (a flood of bad calls cannot
    flood the log).
    """

    def __init__(self, tokens: frozenset[str], log_interval: float = 10.0, admin_tokens: frozenset[str] = frozenset()) -> None:
        self._tokens = tuple(t.encode() for t in tokens)
        self._admin = tuple(t.encode() for t in admin_tokens)
        self.log_interval = log_interval
        self.refused = 0
        """Refusals not yet logged."""
        self._last_log = -float("inf")

    @staticmethod
    def _token(metadata: tuple[tuple[str, Any], ...]) -> bytes | None:
        """The bearer token of the call (None: no ``authorization: Bearer`` metadata)."""
        for key, value in metadata:
            if key == "authorization" and isinstance(value, str):
                scheme, _, given = value.strip().partition(" ")
                return given.strip().encode() if scheme.lower() == "bearer" and given.strip() else None
        return None

    @staticmethod
    def _one_of(token: bytes | None, accepted: tuple[bytes, ...]) -> bool:
        return token is not None and any(hmac.compare_digest(token, t) for t in accepted)

    def _allowed(self, metadata: tuple[tuple[str, Any], ...]) -> bool:
        return not self._tokens or self._one_of(self._token(metadata), self._tokens)

    def _log_refusal(self, method: str) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._last_log >= self.log_interval:
            log.warning("refused %d call(s) without a valid bearer token in the last %.0f s (the latest: %s)", self.refused, self.log_interval, method[:200])
            self.refused = 0
            self._last_log = now

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        metadata = tuple(handler_call_details.invocation_metadata or ())
        if method.startswith(ADMIN_SERVICES):
            token = self._token(metadata)
            if self._one_of(token, self._admin):
                return await continuation(handler_call_details)
            handler = await continuation(handler_call_details)
            self._log_refusal(method)
            if token is None:
                return _deny(handler, grpc.StatusCode.UNAUTHENTICATED, "admin calls need metadata 'authorization: Bearer <admin token>'")
            return _deny(handler, grpc.StatusCode.PERMISSION_DENIED,
                         "this token may not administer models (admin tokens: WSSS_ADMIN_TOKENS)" if self._admin else
                         "admin calls are disabled: no WSSS_ADMIN_TOKENS")
        if method.startswith(OPEN_SERVICES) or self._allowed(metadata):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        self._log_refusal(method)
        return _deny(handler)


def _deny(handler: grpc.RpcMethodHandler | None, code: grpc.StatusCode = grpc.StatusCode.UNAUTHENTICATED,
          message: str = "missing or invalid bearer token (metadata 'authorization: Bearer <token>')") -> grpc.RpcMethodHandler:
    async def abort_unary(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    async def abort_stream(request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    if handler is not None and handler.request_streaming:
        return grpc.stream_stream_rpc_method_handler(abort_stream) if handler.response_streaming else grpc.stream_unary_rpc_method_handler(abort_stream)
    if handler is not None and handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort_unary)
    return grpc.unary_unary_rpc_method_handler(abort_unary)
