"""A thin Mastodon REST client: notifications in, statuses out, rate limits honoured."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from adapters.http import error_for, network_error
from bot.core.errors import CredentialsError, SendError

log = logging.getLogger("socialops.mastodon")
_NEXT = re.compile(r'<([^>]+)>;\s*rel="(\w+)"')


class MastodonClient:
    def __init__(self, *, http: httpx.AsyncClient, base_url: str, token: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._paused_until = 0.0

    def pause_left(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    def _note_limits(self, response: httpx.Response) -> None:
        """Stop calling when the budget is spent (X-RateLimit-Remaining 0) or on 429, until the reset time."""
        remaining = response.headers.get("X-RateLimit-Remaining")
        reset = response.headers.get("X-RateLimit-Reset")
        if response.status_code == 429 or (remaining is not None and remaining.strip() == "0"):
            wait = 60.0
            if reset:
                try:
                    wait = (datetime.fromisoformat(reset.replace("Z", "+00:00")) - datetime.now(UTC)).total_seconds()
                except ValueError:
                    pass
            self._paused_until = time.monotonic() + max(1.0, min(wait, 900.0))
            log.warning("Mastodon rate limit reached; pausing %.0fs", self.pause_left())

    async def notifications(self, *, min_id: str | None, limit: int = 40) -> list[dict[str, Any]]:
        """One page of mention notifications newer than `min_id` (or the newest page)."""
        if self.pause_left():
            await asyncio.sleep(self.pause_left())
        params: list[tuple[str, str | int | float | bool | None]] = [("types[]", "mention"), ("limit", limit)]
        if min_id:
            params.append(("min_id", min_id))
        try:
            response = await self._http.get(f"{self._base}/api/v1/notifications", params=params,
                                            headers=self._headers)
        except httpx.HTTPError as error:
            raise network_error(error, "Mastodon notifications") from None
        self._note_limits(response)
        if not response.is_success:
            raise error_for(response, "Mastodon notifications")
        page = response.json()
        if not isinstance(page, list):
            raise SendError("Mastodon notifications: expected a JSON list", permanent=False)
        return [n for n in page if isinstance(n, dict)]

    async def verify_credentials(self) -> dict[str, Any]:
        """The account the token belongs to (a read-only call, for `python app.py check`)."""
        try:
            response = await self._http.get(f"{self._base}/api/v1/accounts/verify_credentials", headers=self._headers)
        except httpx.HTTPError as error:
            raise network_error(error, "Mastodon") from None
        if response.status_code == 401:
            raise CredentialsError("Mastodon refused the token (401): create a new access token")
        if not response.is_success:
            raise error_for(response, "Mastodon")
        answer = response.json()
        return answer if isinstance(answer, dict) else {}

    async def post_status(self, *, status: str, in_reply_to_id: str | None, visibility: str,
                          idempotency_key: str) -> dict[str, Any]:
        """POST /api/v1/statuses: a reply, or (in_reply_to_id None) a status of the brand's own. Mastodon
        answers a repeated Idempotency-Key (within an hour) with the first status instead of a new one."""
        if self.pause_left():
            raise SendError("Mastodon rate limit", permanent=False, retry_after=self.pause_left())
        form = {"status": status, "visibility": visibility}
        if in_reply_to_id is not None:
            form["in_reply_to_id"] = in_reply_to_id
        headers = {**self._headers, "Idempotency-Key": idempotency_key}
        try:
            response = await self._http.post(f"{self._base}/api/v1/statuses", data=form, headers=headers)
        except httpx.HTTPError as error:
            raise network_error(error, "Mastodon") from None
        self._note_limits(response)
        if response.status_code == 429:
            raise SendError("Mastodon rate limit (429)", permanent=False, retry_after=self.pause_left() or None)
        if not response.is_success:
            raise error_for(response, "Mastodon")
        answer = response.json()
        if not isinstance(answer, dict):
            raise SendError("Mastodon: unexpected answer to POST /api/v1/statuses", permanent=False)
        return answer
