"""Calling an operator's webhook: restricted like knowledge sync URLs, with a timeout.

A webhook gets the collected slots as a JSON object and answers with a JSON object. The
URL must resolve to a private or loopback address unless ``support.allow_public_urls``,
and never to a link-local or cloud metadata address unless ``allow_metadata_urls`` (the
same rule, and the same check, as ``luodi.knowledge.sources`` applies to sync URLs).
Redirects are not followed, so an allowed host cannot bounce the call elsewhere.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from luodi.config.support import SupportSettings
from luodi.errors import LuodiError
from luodi.knowledge.sources import SourceListingError, iter_source

__all__ = ["WebhookError", "call_webhook", "check_webhook_url"]


class WebhookError(LuodiError):
    """A webhook that is not allowed, did not answer in time or answered badly."""

    status_code = 502
    error_type = "webhook_error"


def check_webhook_url(url: str, settings: SupportSettings) -> None:
    """Refuse a URL outside the allowed networks (WebhookError naming the host)."""
    try:
        # Listing a URL source checks its host and fetches nothing.
        next(
            iter_source(
                [url],
                (),
                allow_public_urls=settings.allow_public_urls,
                allow_metadata_urls=settings.allow_metadata_urls,
            )
        )
    except SourceListingError as exc:
        raise WebhookError(exc.message.replace("knowledge.", "support.")) from exc


async def call_webhook(
    url: str, payload: dict[str, Any], settings: SupportSettings
) -> dict[str, Any]:
    """POST ``payload``; returns the JSON object answered.

    Raises:
        WebhookError: not allowed, a timeout, a non-2xx status or a body that is not a
            JSON object.
    """
    check_webhook_url(url, settings)
    try:
        async with httpx.AsyncClient(
            timeout=settings.webhook_timeout_s, follow_redirects=False
        ) as client:
            response = await client.post(url, json=payload)
    except httpx.TimeoutException as exc:
        raise WebhookError(f"{url}: no answer within {settings.webhook_timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise WebhookError(f"{url}: {type(exc).__name__}: {exc}") from exc
    if not response.is_success:
        raise WebhookError(f"{url}: HTTP {response.status_code}")
    try:
        body = response.json()
    except json.JSONDecodeError as exc:
        raise WebhookError(f"{url}: the answer is not JSON") from exc
    if not isinstance(body, dict):
        raise WebhookError(f"{url}: the answer is not a JSON object")
    return body
