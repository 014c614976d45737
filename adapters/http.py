"""Shared HTTP helpers for platform clients and webhooks: error mapping, JSON answers, bounded bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from starlette.requests import Request

from bot.core.errors import SendError


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_for(response: httpx.Response, what: str) -> SendError:
    """429 and 5xx are retried; other 4xx are the platform's final word."""
    detail = response.text[:300].strip()
    message = f"{what}: HTTP {response.status_code}" + (f" {detail}" if detail else "")
    if response.status_code == 429:
        return SendError(message, permanent=False, retry_after=retry_after(response))
    return SendError(message, permanent=response.status_code < 500 and response.status_code != 408)


def network_error(error: httpx.HTTPError, what: str) -> SendError:
    return SendError(f"{what}: {type(error).__name__}: {error}", permanent=False)


def json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    """The answer's JSON object; anything else is a (retryable) SendError naming `what`."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SendError(f"{what}: expected a JSON object", permanent=False)
    return body


MAX_BODY = 1024 * 1024
"""Webhook bodies larger than this are refused (413)."""


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """A webhook's raw bytes (signatures are over them), refused early by Content-Length or while streaming
    once over `limit`."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)
