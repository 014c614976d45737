"""OAuth 2.0 access tokens that renew themselves with a refresh token (RFC 6749 §6).

X's user-context tokens last two hours and Google's one: without renewal a source would stop within the
hour. The newest tokens live in the `TokenStore` (the database), shared by every running copy; a platform
that rotates refresh tokens (X) makes the one in the environment stale after its first use, so the stored
one wins — unless the environment holds a refresh token the stored ones do not descend from (the admin
authorised the app again after a refusal): then the new one from the environment wins. Two copies renewing
at once: the loser's refresh is refused, it reads the winner's from the store (waiting up to `SETTLE_S` for
the winner to write it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx

from adapters.http import network_error
from adapters.source import secret
from bot.core.errors import CredentialsError, SendError
from bot.core.ports import TokenStore

log = logging.getLogger("socialops.oauth")
EARLY_S = 120.0
"""Renew this long before the access token expires."""
SETTLE_S = 2.0
"""After a refused refresh: how long to wait for another copy's renewal to appear in the store."""


def client_secrets(env: Mapping[str, str], *, source: str, refresh_token_env: str, client_id_env: str,
                   client_secret_env: str | None) -> tuple[str, str, str | None]:
    """The refresh token, the client id and (confidential clients only) the client secret, from the
    environment variables `sources.<source>.*_env` name; a ConfigError names a missing one."""
    return (secret(env, refresh_token_env, f"sources.{source}.refresh_token_env"),
            secret(env, client_id_env, f"sources.{source}.client_id_env"),
            secret(env, client_secret_env, f"sources.{source}.client_secret_env") if client_secret_env else None)


class RefreshingToken:
    def __init__(self, *, http: httpx.AsyncClient, name: str, token_url: str, client_id: str,
                 refresh_token: str, client_secret: str | None = None, access_token: str | None = None,
                 store: TokenStore | None = None, basic_auth: bool = True, hint: str = "") -> None:
        """`name`: the store key (e.g. "x:user"). `basic_auth`: send client id and secret as HTTP Basic (X's
        confidential clients); else in the form (Google, public clients). `hint`: what to fix, for errors."""
        self._http = http
        self.name = name
        self._url = token_url
        self._client_id = client_id
        self._secret = client_secret
        self._basic = basic_auth
        self._store = store
        self._hint = hint
        self._refresh = refresh_token
        self._seed = _fingerprint(refresh_token)
        """Which refresh token from the environment the current one descends from (stored with it)."""
        self._access = access_token
        self._expires_at = 0.0 if access_token is None else time.time() + EARLY_S + 1
        self._loaded = False
        self._lock = asyncio.Lock()

    async def _load(self) -> None:
        if self._loaded or self._store is None:
            self._loaded = True
            return
        stored = await self._store.load(self.name)
        self._loaded = True
        if not stored or not stored.get("refresh_token"):
            return
        if stored.get("seed") not in (None, self._seed):
            log.info("%s: a new refresh token in the environment replaces the stored one", self.name)
            return
        self._adopt(stored)

    def _adopt(self, value: dict[str, Any]) -> None:
        self._refresh = str(value.get("refresh_token") or self._refresh)
        self._seed = str(value.get("seed") or self._seed)
        self._access = str(value["access_token"]) if value.get("access_token") else None
        self._expires_at = float(value.get("expires_at") or 0.0)

    async def get(self) -> str:
        """A valid access token, renewed first when it is (nearly) expired."""
        async with self._lock:
            await self._load()
            if self._access is None or time.time() >= self._expires_at - EARLY_S:
                await self._renew()
            assert self._access is not None
            return self._access

    async def refused(self, token: str) -> str:
        """The platform refused `token` (401): renew, unless someone already did; the new token."""
        async with self._lock:
            await self._load()
            if self._access is not None and self._access != token:
                return self._access
            if self._store is not None:  # another copy may have renewed it
                stored = await self._store.load(self.name)
                if (stored and stored.get("access_token") and stored["access_token"] != token
                        and stored.get("seed") in (None, self._seed)
                        and float(stored.get("expires_at") or 0.0) > time.time()):
                    self._adopt(stored)
                    assert self._access is not None
                    return self._access
            await self._renew()
            assert self._access is not None
            return self._access

    async def _renew(self) -> None:
        try:
            answer = await self._post(self._refresh)
        except CredentialsError:
            if self._store is None:
                raise
            stored = await self._rotated()  # lost a race with another copy?
            if stored is None:
                raise
            self._adopt(stored)
            if self._access is not None and time.time() < self._expires_at - EARLY_S:
                return
            answer = await self._post(self._refresh)
        self._access = str(answer["access_token"])
        self._refresh = str(answer.get("refresh_token") or self._refresh)
        self._expires_at = time.time() + float(answer.get("expires_in") or 3600)
        if self._store is not None:
            await self._store.save(self.name, {"access_token": self._access, "refresh_token": self._refresh,
                                               "expires_at": self._expires_at, "seed": self._seed})
        log.info("%s: access token renewed", self.name)

    async def _rotated(self) -> dict[str, Any] | None:
        """The stored tokens once they differ from the refresh token just refused: the copy that won the
        race may still be writing them (its answer from the platform came first), so wait up to SETTLE_S."""
        assert self._store is not None
        deadline = time.monotonic() + SETTLE_S
        while True:
            stored = await self._store.load(self.name)
            if stored and stored.get("refresh_token") not in (None, self._refresh):
                return stored
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(min(0.1, SETTLE_S))

    async def _post(self, refresh_token: str) -> dict[str, Any]:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self._basic and self._secret:
            pair = f"{self._client_id}:{self._secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        else:
            form["client_id"] = self._client_id
            if self._secret:
                form["client_secret"] = self._secret
        try:
            response = await self._http.post(self._url, data=form, headers=headers)
        except httpx.HTTPError as error:
            raise network_error(error, f"{self.name} token renewal") from None
        if response.status_code in (400, 401, 403):  # invalid_grant, invalid_client…
            try:
                body = response.json()
            except ValueError:
                body = None
            said = (str(body.get("error_description") or body.get("error"))[:200] if isinstance(body, dict)
                    else response.text[:200])
            raise CredentialsError(f"{self.name}: the refresh token was refused ({response.status_code} {said})"
                                   + (f": {self._hint}" if self._hint else ""))
        if not response.is_success:
            raise SendError(f"{self.name} token renewal: HTTP {response.status_code}", permanent=False)
        try:
            answer = response.json()
        except ValueError:
            raise SendError(f"{self.name} token renewal: the answer is not JSON", permanent=False) from None
        if not isinstance(answer, dict) or not answer.get("access_token"):
            raise SendError(f"{self.name} token renewal: no access_token in the answer", permanent=False)
        return answer


def _fingerprint(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()[:32]
