"""Teams authentication with an App ID: only Bot Framework tokens for this bot get in (botbuilder's own validation,
against a local fake of the Bot Framework's keys), and the bot's own calls to Teams carry a token it got from a
local fake of Microsoft's login service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.teams_auth import FakeBotFrameworkAuth
from tests.fakes.teams_connector import FakeBotConnector
from tests.kit.teams import TeamsUser, case_cards, invoked_card, text_of
from tests.kit.wait import eventually
from tests.kit.webhook import event, signed
from tests.test_teams import start, teams_only

APP_ID = "5c3f2a1e-8b7d-4e6f-9a0b-1c2d3e4f5a6b"
SECRET = "bot-client-secret"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.fixture
def auth() -> Iterator[FakeBotFrameworkAuth]:
    with FakeBotFrameworkAuth() as fake:
        fake.add_app(APP_ID, SECRET, tenant=TENANT)
        yield fake


@pytest.fixture
def connector(auth: FakeBotFrameworkAuth) -> Iterator[FakeBotConnector]:
    with FakeBotConnector() as fake:
        fake.require_token_from(auth)  # the real connector refuses calls without the bot's token
        yield fake


class Secured:
    def __init__(self, http: httpx.AsyncClient, auth: FakeBotFrameworkAuth, connector: FakeBotConnector) -> None:
        self.http, self.auth, self.connector = http, auth, connector

    def user(self, **token_options: Any) -> TeamsUser:
        token = None if token_options.pop("none", False) else \
            self.auth.channel_token(APP_ID, self.connector.url, **token_options)
        return TeamsUser(self.http, "29:dan", "Dan Teams", service_url=self.connector.url, token=token)

    async def card(self) -> dict[str, Any]:
        return await eventually(lambda: case_cards(self.connector)[0] if case_cards(self.connector) else None)


async def _secured(database_url: str, auth: FakeBotFrameworkAuth, connector: FakeBotConnector, *,
                   password: str = SECRET) -> AsyncIterator[Secured]:
    config = teams_only(connector)
    config["teams"].update(login_url=auth.url, openid_metadata_url=auth.metadata_url)
    env = {"MICROSOFT_APP_ID": APP_ID, "MICROSOFT_APP_PASSWORD": password, "MICROSOFT_APP_TENANT_ID": TENANT}
    runtime, http = await start(database_url, config, connector, env=env)
    try:
        yield Secured(http, auth, connector)
    finally:
        await http.aclose()
        await runtime.stop()
        runtime.engine.dispose()


@pytest.fixture
async def secured(database_url: str, auth: FakeBotFrameworkAuth, connector: FakeBotConnector
                  ) -> AsyncIterator[Secured]:
    async for value in _secured(database_url, auth, connector):
        yield value


async def test_the_bot_posts_with_its_own_token_and_a_valid_click_works(secured: Secured) -> None:
    raw, headers = signed(event("evt-a", "Parcel lost"))
    assert (await secured.http.post("/webhooks/generic", content=raw, headers=headers)).status_code == 202
    posted = await secured.card()
    issued = secured.auth.issued()
    assert issued and issued[0]["app_id"] == APP_ID and issued[0]["tenant"] == TENANT
    assert issued[0]["scope"] == "https://api.botframework.com/.default"
    assert all(call["status"] < 400 for call in secured.connector.calls())

    answer = await secured.user().click(posted["card"], "Claim", posted["id"])
    assert "Dan Teams" in text_of(invoked_card(answer))
    await eventually(lambda: "Dan Teams" in text_of(case_cards(secured.connector)[0]["card"]))
    assert len(secured.auth.issued()) == 1  # cached until it nears expiry


@pytest.mark.parametrize("problem", [
    {"none": True}, {"rogue_key": True}, {"expired": True}, {"not_yet_valid": True},
    {"audience": "someone-elses-app"}, {"issuer": "https://evil.example"}, {"kid": "unknown-key"},
    {"channel_id_endorsed": "somechannel"},
], ids=["missing", "forged", "expired", "not-yet-valid", "wrong-audience", "wrong-issuer", "unknown-key",
        "not-endorsed-for-teams"])
async def test_a_bad_token_is_refused_and_changes_nothing(secured: Secured, problem: dict[str, Any]) -> None:
    raw, headers = signed(event("evt-b", "Parcel lost"))
    await secured.http.post("/webhooks/generic", content=raw, headers=headers)
    posted = await secured.card()
    response = await secured.user(**problem).execute("case.claim", {"case": 1}, posted["id"])
    assert response.status_code == 401
    assert "claimed" not in response.text.lower()
    response = await secured.user(**problem).say("stats")
    assert response.status_code == 401
    assert "Owner\nnobody" in text_of(case_cards(secured.connector)[0]["card"])


async def test_a_token_for_another_service_url_is_refused(secured: Secured) -> None:
    user = secured.user()
    user.token = secured.auth.channel_token(APP_ID, "https://smba.trafficmanager.net/emea/")
    assert (await user.say("stats")).status_code == 401


async def test_the_bots_own_token_replayed_at_it_is_refused(secured: Secured) -> None:
    raw, headers = signed(event("evt-c", "Parcel lost"))
    await secured.http.post("/webhooks/generic", content=raw, headers=headers)
    await secured.card()
    own = secured.auth.issued()[0]["access_token"]
    user = secured.user()
    user.token = own
    assert (await user.execute("case.claim", {"case": 1})).status_code == 401


async def test_a_wrong_password_posts_nothing_and_keeps_the_card_for_later(
        database_url: str, auth: FakeBotFrameworkAuth, connector: FakeBotConnector) -> None:
    async for bot in _secured(database_url, auth, connector, password="wrong"):
        raw, headers = signed(event("evt-d", "Parcel lost"))
        await bot.http.post("/webhooks/generic", content=raw, headers=headers)
        await eventually(lambda: any(c["status"] == 401 for c in auth.calls()))
        assert connector.activities() == [] and auth.issued() == []
