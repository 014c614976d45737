"""Shared HTTP error mapping for platform clients."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

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
