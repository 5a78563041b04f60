"""One place that turns every error into OpenAI's JSON error shape."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from luodi.errors import LuodiError

ERROR_KEY = "luodi_error"
"""Where a refusal's message is left in ``request.state`` (read by the RequestGate)."""

__all__ = ["error_response", "install_error_handlers"]

log = logging.getLogger(__name__)

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_response(
    status: int,
    message: str,
    *,
    error_type: str | None = None,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {
        "error": {
            "message": message,
            "type": error_type or _STATUS_TYPES.get(status, "server_error"),
            "param": param,
            "code": code,
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _describe_validation(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request body", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    if first.get("type") == "model_attributes_type" or (
        not loc and first.get("type") == "dict_type"
    ):
        return "the request body must be a JSON object", None
    # Drop pydantic's union-branch markers (e.g. 'str', 'list[...]') from the path.
    param_parts = [p for p in loc if not (p.startswith(("list[", "dict[")) or p in {"str", "int"})]
    param = ".".join(param_parts) or None
    msg = first.get("msg", "invalid value")
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"invalid value for '{param}': {msg}{more}" if param else f"{msg}{more}", param


def _note(request: Request, message: str) -> None:
    """Leave the refusal's message for the audit record the RequestGate writes."""
    setattr(request.state, ERROR_KEY, message)


def install_error_handlers(app: FastAPI) -> None:
    """Map luodi errors, validation errors and HTTP errors to OpenAI-shaped JSON."""

    @app.exception_handler(LuodiError)
    async def _luodi(request: Request, exc: LuodiError) -> JSONResponse:
        _note(request, exc.message)
        if exc.status_code >= 500:
            log.error("request failed: %s", exc.message)
        return JSONResponse(exc.to_openai(), status_code=exc.status_code, headers=exc.headers())

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        if (
            request.method == "POST"
            and "json" not in content_type
            and "multipart" not in content_type
        ):
            return error_response(
                415,
                f"unsupported content type {content_type or '(none)'!r}: send application/json",
                code="unsupported_media_type",
            )
        message, param = _describe_validation(exc)
        _note(request, message)
        return error_response(400, message, param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        _note(request, message)
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(
            500, f"internal error: {type(exc).__name__}", error_type="server_error"
        )
