"""The luodi exception tree, mapped to OpenAI-shaped errors in one HTTP handler.

    LuodiError
    ├── ConfigError                  bad settings at start-up (CLI exit 2)
    ├── ModelLoadError               a model file missing, truncated, not GGUF, or undecryptable
    ├── RequestError                 the client's fault (4xx)
    │   ├── InvalidRequestError      400  invalid_request_error
    │   │   └── ContextLengthError   400  context_length_exceeded
    │   ├── AuthenticationError      401  authentication_error
    │   ├── PermissionDeniedError    403  permission_error
    │   ├── NotFoundError            404  not_found_error
    │   └── RateLimitError           429  rate_limit_error (carries Retry-After)
    │       └── QueueFullError       429  the engine's waiting queue is full
    └── ServiceError                 the server's fault (5xx)
        ├── EngineError              500  a generation failed inside the engine
        ├── UpstreamError            502  an upstream engine answered badly
        ├── ServiceUnavailableError  503  a stage cannot serve now (fails closed)
        └── InsufficientMemoryError  507  a model does not fit the memory budget

Every class carries the HTTP status, the OpenAI ``type`` and an optional ``code``
and ``param``, so the handler in ``luodi.api`` needs no table of its own.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "ContextLengthError",
    "EngineError",
    "InsufficientMemoryError",
    "InvalidRequestError",
    "LuodiError",
    "ModelLoadError",
    "NotFoundError",
    "PermissionDeniedError",
    "QueueFullError",
    "RateLimitError",
    "RequestError",
    "ServiceError",
    "ServiceUnavailableError",
    "UpstreamError",
]


class LuodiError(Exception):
    """Base of every error luodi raises on purpose."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code

    def to_openai(self) -> dict[str, Any]:
        """The body OpenAI's API returns for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        """Extra HTTP headers this error needs (Retry-After, WWW-Authenticate)."""
        return {}


class ConfigError(LuodiError):
    """Settings that cannot work together; raised before the server binds."""


class ModelLoadError(LuodiError):
    """A model file that cannot be loaded; the message names the path."""


class RequestError(LuodiError):
    """The request cannot be served as sent."""

    status_code = 400
    error_type = "invalid_request_error"


class InvalidRequestError(RequestError):
    """A malformed or out-of-range request field."""


class ContextLengthError(InvalidRequestError):
    """Prompt plus max_tokens exceeds the model's context; the message states both."""

    default_code = "context_length_exceeded"


class AuthenticationError(RequestError):
    """Missing, unknown, revoked or expired credentials."""

    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class PermissionDeniedError(RequestError):
    """The principal is known but may not do this."""

    status_code = 403
    error_type = "permission_error"
    default_code = "permission_denied"


class NotFoundError(RequestError):
    """An unknown model, knowledge base, key or record."""

    status_code = 404
    error_type = "not_found_error"
    default_code = "not_found"


class RateLimitError(RequestError):
    """A quota or rate limit is exhausted; ``retry_after`` is in seconds."""

    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float = 1.0,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, round(self.retry_after)))}


class QueueFullError(RateLimitError):
    """The engine's waiting queue is at its bound."""

    default_code = "queue_full"


class ServiceError(LuodiError):
    """The server failed to serve a valid request."""

    status_code = 500
    error_type = "server_error"


class EngineError(ServiceError):
    """A generation failed inside the engine; other requests are unaffected."""


class UpstreamError(ServiceError):
    """An upstream engine failed or answered with an error."""

    status_code = 502
    error_type = "upstream_error"


class ServiceUnavailableError(ServiceError):
    """A stage cannot serve right now; the request is refused, never passed through."""

    status_code = 503
    error_type = "service_unavailable"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, round(self.retry_after)))}


class InsufficientMemoryError(ServiceError):
    """Loading a model would exceed the memory budget; the message states the numbers.

    Refused before anything is allocated, so the server is never OOM-killed.
    """

    status_code = 507
    error_type = "insufficient_storage"
    default_code = "model_does_not_fit"
