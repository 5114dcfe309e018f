"""The service's exceptions. Each carries the gRPC status code name it maps to.

Code below the API layer raises these; ``service.api.errors`` turns them into gRPC statuses. The
code is a plain name (``"INVALID_ARGUMENT"``) so nothing below the API layer imports grpc.
"""

from __future__ import annotations


class WsssError(Exception):
    """Base class; ``code`` is the gRPC status code name."""

    code = "INTERNAL"


class InvalidInput(WsssError):
    """The request is malformed or inconsistent (the caller's fault)."""

    code = "INVALID_ARGUMENT"


class NotImplementedFeature(WsssError):
    """The request asks for something this version does not do yet."""

    code = "UNIMPLEMENTED"


class ModelNotReady(WsssError):
    """Models are still loading, failed to load, or the backend is unreachable."""

    code = "UNAVAILABLE"


class ModelNotFound(WsssError):
    """A model the request needs is not in the repository."""

    code = "NOT_FOUND"


class Overloaded(WsssError):
    """Too many requests in flight."""

    code = "RESOURCE_EXHAUSTED"


class ModelRepositoryError(WsssError):
    """The model repository is missing, malformed, or a model does not match its config."""

    code = "FAILED_PRECONDITION"


class Cancelled(WsssError):
    """The caller cancelled or its deadline passed; work stopped early."""

    code = "CANCELLED"


class DeadlineExceeded(Cancelled):
    """The caller's deadline passed while its work ran; work stopped early. (The server can see
    it before the caller's own timer fires: the caller then hears DEADLINE_EXCEEDED, as it would
    have from its timer, not CANCELLED.)"""

    code = "DEADLINE_EXCEEDED"
