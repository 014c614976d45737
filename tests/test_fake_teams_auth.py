"""The fake Bot Framework auth services, checked against botframework-connector's own validation code.

Sync tests on purpose: botbuilder fetches OpenID metadata with blocking ``requests.get`` inside ``async`` code,
so each validation runs in its own ``asyncio.run`` here, never inside a running test loop.
A guard fails any DNS lookup of a non-loopback host, so every test also proves nothing left the machine.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from botbuilder.schema import Activity
from botframework.connector.auth import (
    AuthenticationConstants,
    ChannelValidation,
    ClaimsIdentity,
    JwtTokenExtractor,
    JwtTokenValidation,
    SimpleCredentialProvider,
)

from tests.fakes.teams_auth import BOT_FRAMEWORK_SCOPE, FakeBotFrameworkAuth, use_fake_metadata

APP_ID = "7a1c0f52-3c1e-4a8e-9d7b-2b5f0c1d9e11"
PASSWORD = "bot-secret~value"
SERVICE_URL = "https://smba.trafficmanager.net/emea/"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class NetGuard:
    attempted: list[str] = field(default_factory=list)  # non-loopback hosts something tried to resolve
    expected: set[str] = field(default_factory=set)  # hosts a test means to see attempted


@pytest.fixture(autouse=True)
def no_internet(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetGuard]:
    """Refuse (and record) name resolution of any non-loopback host; fail the test if one was unexpected."""
    guard = NetGuard()
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK:
            guard.attempted.append(name)
            raise OSError(f"test guard: no internet ({name})")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    yield guard
    escaped = [h for h in guard.attempted if h not in guard.expected]
    assert escaped == [], f"network escaped to {escaped}"


@pytest.fixture(scope="module")
def auth() -> Iterator[FakeBotFrameworkAuth]:
    with FakeBotFrameworkAuth() as fake:  # RSA key generation is slow-ish: one fake for the module
        fake.add_app(APP_ID, PASSWORD)
        yield fake


@pytest.fixture
def installed(auth: FakeBotFrameworkAuth) -> Iterator[FakeBotFrameworkAuth]:
    with use_fake_metadata(auth) as fake:
        yield fake


def teams_activity(channel_id: str = "msteams", service_url: str = SERVICE_URL) -> Activity:
    return Activity(type="message", channel_id=channel_id, service_url=service_url, text="hi")


def authenticate(header: str, activity: Activity | None = None, app_id: str = APP_ID) -> ClaimsIdentity:
    return asyncio.run(JwtTokenValidation.authenticate_request(
        activity or teams_activity(), header, SimpleCredentialProvider(app_id, PASSWORD)))


def refused(header: str, activity: Activity | None = None) -> BaseException:
    with pytest.raises(Exception) as caught:
        authenticate(header, activity)
    return caught.value


# ------------------------------------------------------------------------------------------ inbound, accepted

def test_teams_channel_token_is_accepted(installed: FakeBotFrameworkAuth) -> None:
    identity = authenticate("Bearer " + installed.channel_token(APP_ID, SERVICE_URL))

    assert identity.is_authenticated
    assert identity.get_claim_value("aud") == APP_ID
    assert identity.get_claim_value("iss") == "https://api.botframework.com"
    assert identity.get_claim_value("serviceurl") == SERVICE_URL


def test_botbuilder_fetches_metadata_and_keys_from_the_fake_once() -> None:
    with FakeBotFrameworkAuth() as fake, use_fake_metadata(fake, prefetch=False):
        token = fake.channel_token(APP_ID, SERVICE_URL)
        authenticate("Bearer " + token)
        authenticate("Bearer " + token)

        assert [(c["method"], c["path"], c["status"]) for c in fake.calls()] == [
            ("GET", "/v1/.well-known/openidconfiguration", 200),
            ("GET", "/v1/.well-known/keys", 200),
        ]


def test_key_endorsed_for_another_channel_is_published_and_accepted_there(installed: FakeBotFrameworkAuth) -> None:
    token = installed.channel_token(APP_ID, SERVICE_URL, channel_id_endorsed="line")

    identity = authenticate("Bearer " + token, teams_activity(channel_id="line"))

    assert identity.get_claim_value("aud") == APP_ID
    line_key = [k for k in installed.jwks()["keys"] if k["kid"] == jwt.get_unverified_header(token)["kid"]]
    assert [k["endorsements"] for k in line_key] == [["line"]]


# ------------------------------------------------------------------------------------------ inbound, refused
# What botframework-connector 4.17.1 raises for each refusal (the desk maps all of them to 401).

@pytest.mark.parametrize(("case", "exc_type", "message"), [
    ("no header", PermissionError, "Required Authorization token was not supplied"),
    ("wrong audience", PermissionError, "Invalid AppId passed on token"),
    ("expired", jwt.ExpiredSignatureError, "Signature has expired"),
    ("not yet valid", jwt.ImmatureSignatureError, "The token is not yet valid (nbf)"),
    ("forged with a rogue key", jwt.InvalidSignatureError, "Signature verification failed"),
    ("unknown kid", IndexError, "list index out of range"),
    ("wrong issuer", PermissionError, "Unauthorized. No valid identity."),
    ("issuer look-alike", PermissionError, "Unauthorized. No valid identity."),
    ("serviceurl mismatch", PermissionError, "service_url claim do not match"),
    ("key endorsed for another channel only", Exception, "Could not validate endorsement key"),
    ("activity from a channel the key is not endorsed for", Exception, "Could not validate endorsement key"),
    ("Basic scheme", PermissionError, "Unauthorized. No valid identity."),
    ("not a JWT", jwt.DecodeError, "Not enough segments"),
    ("emulator issuer, Bot Framework key", IndexError, "list index out of range"),
])
def test_bad_tokens_are_refused(installed: FakeBotFrameworkAuth, case: str, exc_type: type[BaseException],
                                message: str) -> None:
    good = installed.channel_token(APP_ID, SERVICE_URL)
    activity = teams_activity()
    header = {
        "no header": "",
        "wrong audience": "Bearer " + installed.channel_token(APP_ID, SERVICE_URL, audience="another-bot-app-id"),
        "expired": "Bearer " + installed.channel_token(APP_ID, SERVICE_URL, expired=True),
        "not yet valid": "Bearer " + installed.channel_token(APP_ID, SERVICE_URL, not_yet_valid=True),
        "forged with a rogue key": "Bearer " + installed.channel_token(APP_ID, SERVICE_URL, rogue_key=True),
        "unknown kid": "Bearer " + installed.channel_token(APP_ID, SERVICE_URL, kid="no-such-kid"),
        "wrong issuer": "Bearer " + installed.channel_token(APP_ID, SERVICE_URL, issuer="https://evil.example"),
        "issuer look-alike": "Bearer " + installed.channel_token(
            APP_ID, SERVICE_URL, issuer="https://api.botframework.com/"),
        "serviceurl mismatch": "Bearer " + good,
        "key endorsed for another channel only": "Bearer " + installed.channel_token(
            APP_ID, SERVICE_URL, channel_id_endorsed="telegram-only"),
        "activity from a channel the key is not endorsed for": "Bearer " + good,
        "Basic scheme": "Basic " + good,
        "not a JWT": "Bearer not-a-jwt",
        "emulator issuer, Bot Framework key": "Bearer " + installed.channel_token(
            APP_ID, SERVICE_URL, issuer="https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/"),
    }[case]
    if case == "serviceurl mismatch":
        activity = teams_activity(service_url="https://attacker.example/")
    if case == "activity from a channel the key is not endorsed for":
        activity = teams_activity(channel_id="some-other-channel")

    error = refused(header, activity)

    assert type(error) is exc_type
    assert message in str(error.args[0] if error.args else error)


def test_key_without_msteams_endorsement_refuses_teams_activity() -> None:
    with FakeBotFrameworkAuth(endorsements=["webchat", "directline"]) as fake, use_fake_metadata(fake):
        token = fake.channel_token(APP_ID, SERVICE_URL, channel_id_endorsed="webchat")

        error = refused("Bearer " + token, teams_activity(channel_id="msteams"))

        assert type(error) is Exception
        assert str(error) == "Could not validate endorsement key"
        assert authenticate("Bearer " + token, teams_activity(channel_id="webchat")).is_authenticated


def test_bots_own_access_token_passes_the_emulator_path(installed: FakeBotFrameworkAuth) -> None:
    """Documents botbuilder behaviour: an Entra token for the bot's own app id (iss sts.windows.net/<botframework
    tenant>/) is validated by EmulatorValidation against login.microsoftonline.com keys, with no endorsement or
    serviceurl check. Under use_fake_metadata that metadata is the fake's, so it stays offline."""
    with httpx.Client(timeout=5) as client:
        token = client.post(installed.token_url(), data={
            "grant_type": "client_credentials", "client_id": APP_ID, "client_secret": PASSWORD,
            "scope": BOT_FRAMEWORK_SCOPE}).json()["access_token"]

    identity = authenticate("Bearer " + token, teams_activity(service_url="https://anything.example/"))

    assert identity.get_claim_value("appid") == APP_ID
    assert identity.get_claim_value("aud") == "https://api.botframework.com"


# ------------------------------------------------------------------------------------------ install / restore

def test_use_fake_metadata_restores_botbuilder(auth: FakeBotFrameworkAuth) -> None:
    with use_fake_metadata(auth):
        assert ChannelValidation.open_id_metadata_endpoint == auth.metadata_url
        assert auth.metadata_url in JwtTokenExtractor.metadataCache
        auth.channel_token(APP_ID, SERVICE_URL, channel_id_endorsed="restore-check")  # a new key: cache re-seeded
        cached = JwtTokenExtractor.metadataCache[auth.metadata_url].keys
        assert "restore-check" in [e for k in cached for e in k["endorsements"]]

    assert ChannelValidation.open_id_metadata_endpoint is None
    assert AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL == (
        "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration")
    assert auth.metadata_url not in JwtTokenExtractor.metadataCache
    assert auth.emulator_metadata_url not in JwtTokenExtractor.metadataCache


def test_without_the_fake_botbuilder_would_call_login_botframework_com(
    auth: FakeBotFrameworkAuth, no_internet: NetGuard
) -> None:
    no_internet.expected.add("login.botframework.com")
    try:
        with pytest.raises(Exception, match="no internet"):
            authenticate("Bearer " + auth.channel_token(APP_ID, SERVICE_URL))
    finally:
        JwtTokenExtractor.metadataCache.pop(AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL, None)

    assert no_internet.attempted == ["login.botframework.com"]


# ------------------------------------------------------------------------------------------ token endpoint

def token_request(auth: FakeBotFrameworkAuth, tenant: str = "botframework.com", **form: str) -> httpx.Response:
    data = {"grant_type": "client_credentials", "client_id": APP_ID, "client_secret": PASSWORD,
            "scope": BOT_FRAMEWORK_SCOPE}
    data.update(form)
    data = {k: v for k, v in data.items() if v != "<omit>"}
    with httpx.Client(timeout=5) as client:
        return client.post(auth.token_url(tenant), data=data)


def test_client_credentials_issue_an_accepted_token() -> None:
    with FakeBotFrameworkAuth() as fake:
        fake.add_app(APP_ID, PASSWORD)

        resp = token_request(fake)

        assert resp.status_code == 200
        body = resp.json()
        assert {k: body[k] for k in ("token_type", "expires_in", "ext_expires_in")} == {
            "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599}
        assert fake.accepts(body["access_token"])
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert (claims["aud"], claims["appid"], claims["ver"]) == ("https://api.botframework.com", APP_ID, "1.0")
        assert claims["iss"] == "https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/"
        assert [(t["app_id"], t["tenant"], t["scope"]) for t in fake.issued()] == [
            (APP_ID, "botframework.com", BOT_FRAMEWORK_SCOPE)]


def test_accepts_refuses_tokens_it_did_not_issue_or_that_expired(auth: FakeBotFrameworkAuth) -> None:
    issued = token_request(auth).json()["access_token"]
    head, payload, signature = issued.split(".")
    with FakeBotFrameworkAuth(token_lifetime=-60) as short:
        short.add_app(APP_ID, PASSWORD)
        expired = token_request(short).json()["access_token"]
        assert not short.accepts(expired)
    other = auth.channel_token(APP_ID, SERVICE_URL)

    assert auth.accepts(issued)
    assert not auth.accepts(other)  # Bot Framework channel token: wrong key and audience
    assert not auth.accepts(f"{head}.{payload}.{signature[:-4]}AAAA")
    assert not auth.accepts("garbage")
    assert not auth.accepts(expired)


@pytest.mark.parametrize(("form", "tenant", "status", "error", "code"), [
    ({"client_secret": "wrong"}, "botframework.com", 401, "invalid_client", 7000215),
    ({"client_secret": "<omit>"}, "botframework.com", 401, "invalid_client", 7000218),
    ({"client_id": "00000000-0000-0000-0000-000000000000"}, "botframework.com", 400, "unauthorized_client", 700016),
    ({"grant_type": "<omit>"}, "botframework.com", 400, "invalid_request", 900144),
    ({"grant_type": "password"}, "botframework.com", 400, "unsupported_grant_type", 70003),
    ({"scope": "https://api.botframework.com"}, "botframework.com", 400, "invalid_scope", 1002012),
    ({}, "contoso.onmicrosoft.com", 400, "unauthorized_client", 700016),
])
def test_token_endpoint_errors(form: dict[str, str], tenant: str, status: int, error: str, code: int) -> None:
    with FakeBotFrameworkAuth() as fake:
        fake.add_app(APP_ID, PASSWORD, tenant="botframework.com")

        resp = token_request(fake, tenant, **form)

        assert resp.status_code == status
        body = resp.json()
        assert body["error"] == error
        assert body["error_codes"] == [code]
        assert body["error_description"].startswith(f"AADSTS{code}: ")
        assert "\r\nTrace ID: " in body["error_description"]
        assert set(body) == {"error", "error_description", "error_codes", "timestamp", "trace_id",
                             "correlation_id", "error_uri"}
        assert fake.issued() == []


def test_entra_metadata_points_at_the_fake(auth: FakeBotFrameworkAuth) -> None:
    with httpx.Client(timeout=5) as client:
        meta = client.get(auth.emulator_metadata_url).json()
        keys = client.get(meta["jwks_uri"]).json()["keys"]
        bf_meta = client.get(auth.metadata_url).json()
        bf_keys = client.get(bf_meta["jwks_uri"]).json()["keys"]

    assert meta["token_endpoint"] == auth.token_url("common")
    assert [k["kty"] for k in keys] == ["RSA"] and "endorsements" not in keys[0]
    assert bf_meta["issuer"] == "https://api.botframework.com"
    assert bf_meta["id_token_signing_alg_values_supported"] == ["RS256"]
    assert bf_keys[0]["kid"] == auth.kid == bf_keys[0]["x5t"]
    assert "msteams" in bf_keys[0]["endorsements"]
