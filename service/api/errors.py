"""The one place that maps service exceptions to gRPC status codes."""

from __future__ import annotations

import logging

import grpc

from service.errors import WsssError

log = logging.getLogger(__name__)

INTERNAL_MESSAGE = "internal error; the server logged the details"


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """(code, message) a caller sees for ``exc``.

    Service exceptions keep their code and message; anything else is INTERNAL with a generic
    message, and its traceback is logged here.
    """
    if isinstance(exc, WsssError):
        return grpc.StatusCode[exc.code], str(exc)
    log.exception("unexpected error", exc_info=exc)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE
