"""How an upstream fails: the two errors the router tells apart, and the test between them.

``UpstreamUnavailableError`` means nothing reached the client, so another backend may
be tried; ``UpstreamRejectedError`` means the upstream refused the request itself, so
no other backend would take it either. ``upstream.py``'s docstring says when each is
raised.
"""

from __future__ import annotations

from luodi.errors import InvalidRequestError, LuodiError, UpstreamError

__all__ = ["UpstreamRejectedError", "UpstreamUnavailableError", "describe", "is_retryable"]


class UpstreamUnavailableError(UpstreamError):
    """The upstream could not start the generation (down, 5xx, dropped, timed out).

    Nothing reached the client, so the router may try another backend.
    """

    def __init__(self, message: str, *, backend: str, kind: str) -> None:
        super().__init__(message, code="upstream_unavailable")
        self.backend = backend
        self.kind = kind
        """connect, timeout, http_5xx or stream: the ``kind`` label of the error metric."""


class UpstreamRejectedError(InvalidRequestError):
    """The upstream refused the request with a 4xx; retrying elsewhere would not help."""

    def __init__(self, message: str, *, backend: str, status: int) -> None:
        super().__init__(message, code="upstream_rejected")
        self.backend = backend
        self.upstream_status = status


def is_retryable(exc: BaseException) -> bool:
    """True when a failure before the first token may be retried on another backend."""
    return isinstance(exc, UpstreamUnavailableError) or (
        isinstance(exc, LuodiError) and exc.status_code >= 500
    )


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception (just ``Type`` when the message is empty)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
