"""A thin client of the Google Business Profile reviews API (My Business v4): list reviews, put a reply.

Google answers errors as `{"error": {"code", "message", "status"}}`. 401/UNAUTHENTICATED (an access token
lives one hour) and 403/PERMISSION_DENIED are credential problems; 429/RESOURCE_EXHAUSTED pauses this client
until Retry-After (or a minute) has passed; 5xx and network errors are retried by the caller.

The access token is either fixed (a string) or a `RefreshingToken`: then each call takes it from `get()`
(renewed a little before the hour is up), and a 401 renews it (`refused`) and asks again once. Only a
second 401, or a refused renewal (the refresh token was revoked), is a `TokenRefused`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import Any

import httpx

from adapters.http import json_object, network_error, retry_after
from adapters.oauth import RefreshingToken
from bot.core.errors import CredentialsError, SendError

log = logging.getLogger("socialops.google_reviews")
PAGE_SIZE = 50
"""The API's maximum page size for reviews."""
DEFAULT_PAUSE = 60.0
"""Seconds to wait after a 429 that carries no Retry-After (Google's quotas are per minute)."""
MAX_PAUSE = 900.0


class TokenRefused(CredentialsError):
    """401/UNAUTHENTICATED: the access token expired (after an hour) or was revoked."""


class AccessDenied(CredentialsError):
    """403/PERMISSION_DENIED: the token's Google account may not manage this location (or the API is off)."""


def google_error(response: httpx.Response) -> tuple[str, str]:
    """(status, message) of Google's JSON error body; ("", short body text) when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:300].strip()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", response.text[:300].strip()
    return str(error.get("status") or ""), str(error.get("message") or "")[:300].strip()


class GoogleReviewsClient:
    def __init__(self, *, http: httpx.AsyncClient, base_url: str, token: str | RefreshingToken,
                 token_env: str) -> None:
        """`token_env`: the variable to fix when Google refuses the token (with a `RefreshingToken`, the one
        holding the refresh token)."""
        self._http = http
        self._base = base_url.rstrip("/")
        self._token = token
        self._token_env = token_env
        self._paused_until = 0.0

    def pause_left(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    async def list_reviews(self, *, account: str, location: str, page_size: int = PAGE_SIZE,
                           page_token: str | None = None) -> dict[str, Any]:
        """One page of a location's reviews, most recently updated first (a ListReviewsResponse)."""
        params: dict[str, str | int] = {"pageSize": page_size, "orderBy": "updateTime desc"}
        if page_token:
            params["pageToken"] = page_token
        what = f"Google reviews of {location}"
        response = await self._call("GET", f"{self._base}/{account}/{location}/reviews", what, params=params)
        return self._object(response, what)

    async def update_reply(self, *, review: str, comment: str) -> dict[str, Any]:
        """Create or replace the owner's reply to `review` (accounts/…/locations/…/reviews/…): a ReviewReply."""
        what = "Google review reply"
        response = await self._call("PUT", f"{self._base}/{review}/reply", what, json={"comment": comment})
        return self._object(response, what)

    async def _call(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        if self.pause_left():
            raise SendError(f"{what}: Google quota exhausted, waiting", permanent=False,
                            retry_after=self.pause_left())
        renewing = self._token if isinstance(self._token, RefreshingToken) else None
        token = await self._renewed(renewing.get(), what) if renewing is not None else str(self._token)
        response = await self._send(method, url, token, what, **kwargs)
        if renewing is not None and response.status_code == 401:
            log.info("%s: Google refused the access token (401); renewing it and asking again", what)
            token = await self._renewed(renewing.refused(token), what)
            response = await self._send(method, url, token, what, **kwargs)
        if not response.is_success:
            raise self._error(response, what)
        return response

    async def _send(self, method: str, url: str, token: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs)
        except httpx.HTTPError as error:
            raise network_error(error, what) from None

    async def _renewed(self, token: Awaitable[str], what: str) -> str:
        """A renewal's token; a refused renewal as TokenRefused (the refresh token is what to fix)."""
        try:
            return await token
        except TokenRefused:
            raise
        except CredentialsError as error:
            raise TokenRefused(f"{what}: {error.message}") from None

    def _error(self, response: httpx.Response, what: str) -> SendError:
        status, message = google_error(response)
        code = response.status_code
        said = f"{status}: {message}" if status else message or f"HTTP {code}"
        if (code == 401 or status == "UNAUTHENTICATED") and isinstance(self._token, RefreshingToken):
            return TokenRefused(
                f"{what}: Google refused the access token it had just renewed with the refresh token in "
                f"{self._token_env} ({said}). Authorise the OAuth client again (scope business.manage) and put "
                f"the new refresh token in {self._token_env}.")
        if code == 401 or status == "UNAUTHENTICATED":
            return TokenRefused(
                f"{what}: Google refused the access token in {self._token_env} ({said}). Access tokens expire "
                f"after an hour: put a fresh one (scope business.manage) in {self._token_env} and restart, or "
                "configure client_id_env, client_secret_env and refresh_token_env so that it renews itself.")
        if code == 403 or status == "PERMISSION_DENIED":
            return AccessDenied(
                f"{what}: permission denied ({said}). The Google account behind {self._token_env} needs owner or "
                "manager access to the location, the token the business.manage scope, and the project "
                "access to the My Business API.")
        if code == 429 or status == "RESOURCE_EXHAUSTED":
            wait = retry_after(response)
            wait = DEFAULT_PAUSE if wait is None else min(wait, MAX_PAUSE)
            self._paused_until = time.monotonic() + wait
            log.warning("Google reviews quota exhausted; pausing %.0fs", wait)
            return SendError(f"{what}: quota exhausted ({said})", permanent=False, retry_after=wait)
        permanent = code < 500 and code != 408
        return SendError(f"{what}: HTTP {code} {said}", permanent=permanent)

    @staticmethod
    def _object(response: httpx.Response, what: str) -> dict[str, Any]:
        return json_object(response, f"Google {what}" if not what.startswith("Google") else what)
