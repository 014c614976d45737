"""Bot Framework authentication for the Teams desk: the bot's own access token (outbound) and the checks on
the tokens Teams sends with every request (inbound).

Outbound: the OAuth 2.0 client-credentials grant against Microsoft Entra ID, fetched with httpx *before* a call
and handed to botbuilder through `PrefetchedCredentials` (botbuilder's own MicrosoftAppCredentials would fetch
it with MSAL's blocking HTTP inside the event loop).

Inbound: botbuilder's JwtTokenValidation does the work (signature against the published keys, issuer, audience =
our App ID, expiry with 5 minutes' skew, the key's endorsement of the channel, the serviceurl claim). Before it,
only Bot Framework-issued tokens are let through (botbuilder would also take Emulator tokens, e.g. the bot's
own outbound token replayed at it), and the signing keys are fetched in a worker thread at start and twice a day
(botbuilder fetches them with blocking HTTP inside the event loop otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from botframework.connector.auth import (
    AppCredentials,
    ChannelValidation,
    JwtTokenExtractor,
)
from botframework.connector.auth.authentication_constants import AuthenticationConstants

log = logging.getLogger("socialops.teams")

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
SCOPE = "https://api.botframework.com/.default"
MULTI_TENANT = "botframework.com"
EARLY = 300.0
"""Renew the token this many seconds before it expires."""


class AuthError(Exception):
    """The bot cannot get an access token (wrong App ID or password, or the login service is unreachable)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class PrefetchedCredentials(AppCredentials):  # type: ignore[misc]
    """What botbuilder's connector signs its requests with: a token the desk fetched asynchronously beforehand.

    `get_access_token` never does I/O; `BotToken.fresh()` must run before each batch of calls."""

    def __init__(self, app_id: str, token: BotToken | None) -> None:
        super().__init__(app_id=app_id, oauth_scope=BOT_FRAMEWORK_ISSUER)
        self._token = token

    def get_access_token(self, force_refresh: bool = False) -> str:
        if self._token is None:
            return ""
        return self._token.current()


class BotToken:
    """The bot's access token for the Bot Connector, cached until five minutes before it expires."""

    def __init__(self, *, http: httpx.AsyncClient, login_url: str, app_id: str, password: str,
                 tenant: str | None) -> None:
        self._http = http
        self._url = f"{login_url.rstrip('/')}/{tenant or MULTI_TENANT}/oauth2/v2.0/token"
        self._app_id = app_id
        self._password = password
        self._token = ""
        self._expires = 0.0
        self._lock = asyncio.Lock()

    def current(self) -> str:
        return self._token

    async def fresh(self) -> str:
        if self._token and time.monotonic() < self._expires - EARLY:
            return self._token
        async with self._lock:
            if self._token and time.monotonic() < self._expires - EARLY:
                return self._token
            form = {"grant_type": "client_credentials", "client_id": self._app_id,
                    "client_secret": self._password, "scope": SCOPE}
            try:
                response = await self._http.post(self._url, data=form)
            except httpx.HTTPError as error:
                raise AuthError(f"Microsoft login unreachable: {type(error).__name__}", permanent=False) from None
            body: Any
            try:
                body = response.json()
            except ValueError:
                body = {}
            if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
                code = body.get("error", f"HTTP {response.status_code}") if isinstance(body, dict) else ""
                detail = str(body.get("error_description", "")).splitlines()[0] if isinstance(body, dict) else ""
                permanent = response.status_code in (400, 401)
                raise AuthError(f"Microsoft login refused the bot's credentials: {code} {detail}".strip(),
                                permanent=permanent)
            self._token = str(body["access_token"])
            self._expires = time.monotonic() + float(body.get("expires_in", 3599))
            return self._token


@dataclass(frozen=True)
class InboundAuth:
    """Checks on inbound requests that come before botbuilder's own."""

    metadata_url: str

    def issuer_allowed(self, auth_header: str) -> bool:
        """Only tokens the Bot Framework issued; anything else (no token, another issuer, garbage) is refused
        without fetching anything."""
        scheme, _, token = auth_header.partition(" ")
        if scheme != "Bearer" or not token:
            return False
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return False
        return isinstance(claims, dict) and claims.get("iss") == BOT_FRAMEWORK_ISSUER

    def install(self) -> str | None:
        """Point botbuilder's validation at our metadata URL; returns what was there (for `uninstall`)."""
        previous: str | None = ChannelValidation.__dict__.get("open_id_metadata_endpoint")
        ChannelValidation.open_id_metadata_endpoint = self.metadata_url
        return previous

    @staticmethod
    def uninstall(previous: str | None) -> None:
        ChannelValidation.open_id_metadata_endpoint = previous

    async def warm(self) -> None:
        """Fetch the signing keys in a worker thread (botbuilder's fetch blocks), so requests never wait on it."""
        metadata = JwtTokenExtractor.get_open_id_metadata(self.metadata_url)

        def fetch() -> None:
            asyncio.run(metadata._refresh())

        try:
            await asyncio.to_thread(fetch)
        except Exception as error:
            log.warning("Teams: could not fetch the Bot Framework signing keys from %s: %s", self.metadata_url, error)

    def forget_keys(self) -> None:
        """After a token signed by a key not in the cache: fetch the keys again next time (botbuilder would not
        for a day: its refresh-on-unknown-key path fails first)."""
        metadata = JwtTokenExtractor.get_open_id_metadata(self.metadata_url)
        metadata.last_updated = metadata.last_updated.min


DEFAULT_METADATA_URL = AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL
