"""A local fake of the Microsoft Bot Framework authentication services, for tests of the Teams desk.

Two services in one server (127.0.0.1, ephemeral port; built on the shared ``FakeHTTPServer``):

Inbound (Teams -> bot), the Bot Framework token service
(https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-authentication):

- ``GET  /v1/.well-known/openidconfiguration``  OpenID metadata, ``jwks_uri`` -> this server
- ``GET  /v1/.well-known/keys``                 JWKS: RSA keys with ``endorsements`` (channel ids)

``channel_token(...)`` signs the ``Authorization: Bearer`` JWTs the Bot Connector sends to a bot.

Outbound (bot -> connector), Microsoft Entra ID (Azure AD) client credentials:

- ``POST /{tenant}/oauth2/v2.0/token``                      client credentials grant -> access token
- ``GET  /{tenant}/v2.0/.well-known/openid-configuration``  Entra OpenID metadata (what the Emulator path reads)
- ``GET  /{tenant}/discovery/v2.0/keys``                    Entra JWKS (signs the issued access tokens)

Issued access tokens are v1.0 Entra tokens like the real ones for ``https://api.botframework.com/.default``
(``iss https://sts.windows.net/<tenant id>/``, ``aud https://api.botframework.com``, ``appid``, ``ver 1.0``);
``accepts(token)`` tells whether a token is one this fake issued and still valid. Error bodies follow Entra's
token endpoint shape ``{error, error_description "AADSTSnnn: ...", error_codes, timestamp, trace_id,
correlation_id, error_uri}``.

``use_fake_metadata(auth)`` points botframework-connector's validators at the fake (no request leaves the
machine), and restores everything afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.fakes.mastodon import FakeHTTPServer, Request, Response, _copy

Json = dict[str, Any]

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"  # iss of channel tokens, and aud of the bot's own tokens
BOT_FRAMEWORK_SCOPE = "https://api.botframework.com/.default"
BOTFRAMEWORK_TENANT = "botframework.com"  # multi-tenant bots get their tokens from this tenant
BOTFRAMEWORK_TENANT_ID = "d6d49420-f39b-4df7-a1dc-d59a935871db"  # its directory id (appears in token issuers)
# What real Bot Framework keys carry (abridged); "msteams" must be there for Teams activities.
DEFAULT_ENDORSEMENTS = ("msteams", "webchat", "skype", "directline", "emulator", "slack", "email", "sms")
DEFAULT_TOKEN_LIFETIME = 3599


@dataclass(frozen=True)
class IssuedToken:
    app_id: str
    tenant: str
    scope: str
    access_token: str
    expires_at: int


@dataclass(frozen=True)
class _Key:
    kid: str
    private: rsa.RSAPrivateKey
    endorsements: tuple[str, ...] | None  # None: an Entra key (no endorsements member)

    def jwk(self) -> Json:
        jwk: Json = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        jwk.update({"use": "sig", "kid": self.kid, "x5t": self.kid})
        if self.endorsements is not None:
            jwk["endorsements"] = list(self.endorsements)
        return jwk


def _new_key(endorsements: Sequence[str] | None) -> _Key:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # Real kids/x5t are base64url SHA-1 thumbprints (27 chars); random bytes look the same.
    kid = base64.urlsafe_b64encode(hashlib.sha1(secrets.token_bytes(32)).digest()).rstrip(b"=").decode()
    return _Key(kid, private, None if endorsements is None else tuple(endorsements))


def _tenant_id(tenant: str) -> str:
    return BOTFRAMEWORK_TENANT_ID if tenant.lower() in (BOTFRAMEWORK_TENANT, "common") else tenant


class FakeBotFrameworkAuth(FakeHTTPServer):
    """Fake Bot Framework token service + Entra token endpoint; use as a context manager.

    ``endorsements``: what the main channel key is endorsed for (default includes ``msteams``).
    ``token_lifetime``: ``expires_in`` of issued access tokens, seconds.
    """

    def __init__(self, *, endorsements: Sequence[str] = DEFAULT_ENDORSEMENTS,
                 token_lifetime: int = DEFAULT_TOKEN_LIFETIME) -> None:
        super().__init__()
        self.token_lifetime = token_lifetime
        self._channel_key = _new_key(endorsements)
        self._extra_keys: dict[str, _Key] = {}  # channel id -> key endorsed for that channel only
        self._aad_key = _new_key(None)
        self._rogue: rsa.RSAPrivateKey | None = None
        self._apps: dict[str, tuple[str, str | None]] = {}  # app id -> (secret, tenant or None = any)
        self._issued: list[IssuedToken] = []
        self._calls: list[Json] = []
        self._key_listeners: list[Callable[[], None]] = []

    # ---- addresses ---------------------------------------------------------------------------
    @property
    def metadata_url(self) -> str:
        """Stands in for https://login.botframework.com/v1/.well-known/openidconfiguration."""
        return f"{self.url}/v1/.well-known/openidconfiguration"

    @property
    def emulator_metadata_url(self) -> str:
        """Stands in for https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration."""
        return f"{self.url}/common/v2.0/.well-known/openid-configuration"

    def token_url(self, tenant: str = BOTFRAMEWORK_TENANT) -> str:
        """Stands in for https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token."""
        return f"{self.url}/{tenant}/oauth2/v2.0/token"

    # ---- test-side API -----------------------------------------------------------------------
    def add_app(self, app_id: str, secret: str, *, tenant: str | None = None) -> None:
        """Register a bot's app id and client secret; ``tenant`` None: any tenant (multi-tenant app)."""
        with self._lock:
            self._apps[app_id] = (secret, tenant)

    def issued(self) -> list[Json]:
        """Access tokens issued so far, oldest first: {app_id, tenant, scope, access_token, expires_at}."""
        with self._lock:
            return [{"app_id": t.app_id, "tenant": t.tenant, "scope": t.scope, "access_token": t.access_token,
                     "expires_at": t.expires_at} for t in self._issued]

    def calls(self) -> list[Json]:
        """Every request received: {method, path, status}."""
        with self._lock:
            return _copy(self._calls)

    def jwks(self) -> Json:
        """The Bot Framework JWKS as served at /v1/.well-known/keys."""
        with self._lock:
            return {"keys": [self._channel_key.jwk(), *(k.jwk() for k in self._extra_keys.values())]}

    def aad_jwks(self) -> Json:
        with self._lock:
            return {"keys": [self._aad_key.jwk()]}

    @property
    def kid(self) -> str:
        """Key id of the main channel signing key."""
        return self._channel_key.kid

    def channel_token(
        self,
        app_id: str,
        service_url: str,
        *,
        channel_id_endorsed: str = "msteams",
        expired: bool = False,
        not_yet_valid: bool = False,
        rogue_key: bool = False,
        issuer: str = BOT_FRAMEWORK_ISSUER,
        audience: str | None = None,
        kid: str | None = None,
    ) -> str:
        """A JWT as the Bot Connector sends to a bot (``Authorization: Bearer <this>``).

        Signed with a key whose endorsements include ``channel_id_endorsed``: the main key when it is endorsed
        for it, else an extra key (published in the JWKS) endorsed for that channel only.
        ``expired``/``not_yet_valid`` put exp/nbf an hour away (beyond botbuilder's 5 minute clock skew);
        ``rogue_key`` signs with a key that is not published, under the published kid (a forgery);
        ``kid`` overrides the header's kid (e.g. an unknown one); ``audience`` defaults to ``app_id``.
        """
        key = self._key_endorsed_for(channel_id_endorsed)
        now = int(time.time())
        claims: Json = {
            "serviceurl": service_url,
            "nbf": now - 300,
            "exp": now + 3600,
            "iat": now - 300,
            "iss": issuer,
            "aud": app_id if audience is None else audience,
        }
        if expired:
            claims.update(nbf=now - 7200, iat=now - 7200, exp=now - 3600)
        if not_yet_valid:
            claims.update(nbf=now + 3600, iat=now, exp=now + 7200)
        private = self._rogue_key() if rogue_key else key.private
        header_kid = key.kid if kid is None else kid
        return jwt.encode(claims, private, algorithm="RS256", headers={"kid": header_kid, "x5t": header_kid})

    def accepts(self, token: str) -> bool:
        """True when ``token`` is an access token this fake issued (its signature), for the Bot Framework
        audience, and not expired."""
        try:
            claims = jwt.decode(token, self._aad_key.private.public_key(), algorithms=["RS256"],
                                audience=BOT_FRAMEWORK_ISSUER, options={"require": ["exp", "appid", "iss"]})
        except jwt.PyJWTError:
            return False
        return str(claims["iss"]).startswith("https://sts.windows.net/")

    def on_keys_changed(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` whenever the published JWKS changes; returns a function that unsubscribes."""
        with self._lock:
            self._key_listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._key_listeners:
                    self._key_listeners.remove(listener)

        return unsubscribe

    # ---- keys --------------------------------------------------------------------------------
    def _key_endorsed_for(self, channel_id: str) -> _Key:
        with self._lock:
            endorsements = self._channel_key.endorsements or ()
            if channel_id in endorsements:
                return self._channel_key
            key = self._extra_keys.get(channel_id)
            if key is not None:
                return key
            key = self._extra_keys[channel_id] = _new_key([channel_id])
            listeners = list(self._key_listeners)
        for listener in listeners:
            listener()
        return key

    def _rogue_key(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._rogue is None:
                self._rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._rogue

    # ---- server side -------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        resp = self._route(req)
        self._calls.append({"method": req.method, "path": req.path, "status": resp.status})
        return resp

    def _route(self, req: Request) -> Response:
        path = req.path
        if path == "/v1/.well-known/openidconfiguration":
            return self._only_get(req) or Response(200, {
                "issuer": BOT_FRAMEWORK_ISSUER,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": f"{self.url}/v1/.well-known/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            })
        if path == "/v1/.well-known/keys":
            return self._only_get(req) or Response(200, self.jwks())
        parts = path.split("/")
        if len(parts) == 5 and parts[0] == "" and parts[1] and parts[2:] == ["oauth2", "v2.0", "token"]:
            if req.method != "POST":
                return Response(405, {"error": "invalid_request", "error_description": "POST required"})
            return self._token(req, parts[1])
        if len(parts) == 5 and parts[0] == "" and parts[1] and parts[2:] == ["v2.0", ".well-known",
                                                                              "openid-configuration"]:
            return self._only_get(req) or Response(200, self._aad_metadata(parts[1]))
        if len(parts) == 5 and parts[0] == "" and parts[1] and parts[2:] == ["discovery", "v2.0", "keys"]:
            return self._only_get(req) or Response(200, self.aad_jwks())
        return Response(404, {"error": "not_found", "error_description": f"No route for {req.method} {path}"})

    @staticmethod
    def _only_get(req: Request) -> Response | None:
        return None if req.method == "GET" else Response(405, {"error": "invalid_request"})

    def _aad_metadata(self, tenant: str) -> Json:
        issuer_tenant = "{tenantid}" if tenant.lower() in ("common", "organizations") else _tenant_id(tenant)
        return {
            "issuer": f"https://login.microsoftonline.com/{issuer_tenant}/v2.0",
            "authorization_endpoint": f"{self.url}/{tenant}/oauth2/v2.0/authorize",
            "token_endpoint": self.token_url(tenant),
            "jwks_uri": f"{self.url}/{tenant}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "tenant_region_scope": "WW",
        }

    def _token(self, req: Request, tenant: str) -> Response:
        form = {k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        grant = form.get("grant_type")
        if not grant:
            return _aad_error(400, "invalid_request", 900144,
                              "The request body must contain the following parameter: 'grant_type'.")
        if grant != "client_credentials":
            return _aad_error(400, "unsupported_grant_type", 70003,
                              f"The app requested an unsupported grant type '{grant}'.")
        client_id = form.get("client_id", "")
        if not client_id:
            return _aad_error(400, "invalid_request", 900144,
                              "The request body must contain the following parameter: 'client_id'.")
        app = self._apps.get(client_id)
        if app is None or (app[1] is not None and app[1] != tenant):
            return _aad_error(400, "unauthorized_client", 700016,
                              f"Application with identifier '{client_id}' was not found in the directory "
                              f"'{tenant}'. This can happen if the application has not been installed by the "
                              "administrator of the tenant or consented to by any user in the tenant. You may "
                              "have sent your authentication request to the wrong tenant.")
        secret = form.get("client_secret")
        if not secret:
            return _aad_error(401, "invalid_client", 7000218,
                              "The request body must contain the following parameter: 'client_assertion' or "
                              "'client_secret'.")
        if not secrets.compare_digest(secret.encode(), app[0].encode()):
            return _aad_error(401, "invalid_client", 7000215,
                              "Invalid client secret provided. Ensure the secret being sent in the request is the "
                              f"client secret value, not the client secret ID, for a secret added to app "
                              f"'{client_id}'.")
        scope = form.get("scope", "")
        if not scope:
            return _aad_error(400, "invalid_request", 900144,
                              "The request body must contain the following parameter: 'scope'.")
        if scope != BOT_FRAMEWORK_SCOPE:
            return _aad_error(400, "invalid_scope", 1002012,
                              f"The provided value for scope {scope} is not valid. Client credential flows must "
                              "have a scope value with /.default suffixed to the resource identifier "
                              "(application ID URI).")
        now = int(time.time())
        tid = _tenant_id(tenant)
        claims: Json = {
            "aud": BOT_FRAMEWORK_ISSUER,
            "iss": f"https://sts.windows.net/{tid}/",
            "iat": now - 300,
            "nbf": now - 300,
            "exp": now + self.token_lifetime,
            "appid": client_id,
            "appidacr": "1",
            "idp": f"https://sts.windows.net/{tid}/",
            "tid": tid,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
        }
        token = jwt.encode(claims, self._aad_key.private, algorithm="RS256",
                           headers={"kid": self._aad_key.kid, "x5t": self._aad_key.kid})
        self._issued.append(IssuedToken(client_id, tenant, scope, token, now + self.token_lifetime))
        return Response(200, {"token_type": "Bearer", "expires_in": self.token_lifetime,
                              "ext_expires_in": self.token_lifetime, "access_token": token})


def _aad_error(status: int, error: str, code: int, description: str) -> Response:
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return Response(status, {
        "error": error,
        "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {trace_id}\r\n"
                             f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}",
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    })


@contextmanager
def use_fake_metadata(auth: FakeBotFrameworkAuth, *, prefetch: bool = True) -> Iterator[FakeBotFrameworkAuth]:
    """Point botframework-connector's inbound token validation at ``auth``; restore everything on exit.

    Overrides every metadata URL the validators read at call time: ``ChannelValidation.open_id_metadata_endpoint``
    (public and enterprise channels), ``GovernmentChannelValidation.OPEN_ID_METADATA_ENDPOINT``, and the
    Emulator/skill metadata constants of ``AuthenticationConstants``/``GovernmentConstants`` (-> the fake's Entra
    metadata), so no path of ``JwtTokenValidation.authenticate_request`` reaches the internet.

    ``prefetch`` (default): seed ``JwtTokenExtractor.metadataCache`` with the fake's keys now, so validation does no
    blocking HTTP (botbuilder fetches with ``requests.get`` inside ``async`` code). ``prefetch=False`` lets
    botbuilder fetch metadata and keys from the fake over HTTP itself. Cache entries for the fake's URLs are
    dropped on exit (ports get reused by later fakes).
    """
    from botframework.connector.auth import (
        AuthenticationConstants,
        ChannelValidation,
        GovernmentChannelValidation,
        GovernmentConstants,
        JwtTokenExtractor,
    )
    from botframework.connector.auth.jwt_token_extractor import _OpenIdMetadata

    sources: dict[str, Callable[[], Json]] = {auth.metadata_url: auth.jwks, auth.emulator_metadata_url: auth.aad_jwks}
    patches: list[tuple[Any, str, str]] = [
        (ChannelValidation, "open_id_metadata_endpoint", auth.metadata_url),
        (GovernmentChannelValidation, "OPEN_ID_METADATA_ENDPOINT", auth.metadata_url),
        (AuthenticationConstants, "TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL", auth.emulator_metadata_url),
        (GovernmentConstants, "TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL", auth.emulator_metadata_url),
    ]
    cache: dict[str, Any] = JwtTokenExtractor.metadataCache
    saved = [(owner, name, owner.__dict__.get(name)) for owner, name, _ in patches]
    saved_cache = {url: cache.pop(url) for url in sources if url in cache}

    def refresh_cache() -> None:
        for url, jwks in sources.items():
            if prefetch:
                metadata = _OpenIdMetadata(url)
                metadata.keys = jwks()["keys"]
                metadata.last_updated = datetime.now()  # botbuilder compares with naive local time
                cache[url] = metadata
            else:
                cache.pop(url, None)

    for owner, name, value in patches:
        setattr(owner, name, value)
    refresh_cache()
    unsubscribe = auth.on_keys_changed(refresh_cache)
    try:
        yield auth
    finally:
        unsubscribe()
        for owner, name, old in saved:
            setattr(owner, name, old)
        for url in sources:
            cache.pop(url, None)
        cache.update(saved_cache)
