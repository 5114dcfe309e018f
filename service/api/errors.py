"""The one place that maps service exceptions to gRPC status codes."""

from __future__ import annotations

import logging

import grpc

from service.errors import WsssError

log = logging.getLogger(__name__)

INTERNAL_MESSAGE = "internal error; the server logged the details"
MAX_MESSAGE_CHARS = 1000
"""Longest status message sent (grpc-message is a header: a long one fails the call itself)."""


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """(code, message) a caller sees for ``exc``.

    Service exceptions keep their code and message; anything else is INTERNAL with a generic
    message, and its traceback is logged here.
    """
    if isinstance(exc, WsssError):
        message = str(exc)
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 20] + " ... (message cut)"
        return grpc.StatusCode[exc.code], message
    log.exception("unexpected error", exc_info=exc)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE
