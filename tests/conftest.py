"""Fixtures: a fresh database (SQLite and PostgreSQL), local fakes on loopback, and the real bot wired to them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from app import Runtime, build
from bot.config import Settings, config_from_mapping
from storage.db import transaction
from storage.tables import EventRow
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.receiver import FakeReceiver
from tests.fakes.slack_api import FakeSlack
from tests.fakes.teams_connector import FakeBotConnector
from tests.kit.db import fresh_database, postgres_url
from tests.kit.slack import SIGNING_SECRET, SlackUser
from tests.kit.webhook import GENERIC_SECRET, signed

DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgresql" and not postgres_url():
        if os.environ.get("SOCIALOPS_REQUIRE_POSTGRES"):
            pytest.fail("TEST_POSTGRES_URL is not set but SOCIALOPS_REQUIRE_POSTGRES is")
        pytest.skip("no PostgreSQL server: set TEST_POSTGRES_URL")
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack(token="xoxb-test") as fake:
        yield fake


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    with FakeReceiver(GENERIC_SECRET) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client for a source under test to talk to its fake platform."""
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


@pytest.fixture
def connector() -> Iterator[FakeBotConnector]:
    """The fake Bot Connector, with the Teams desk in local development mode (no App ID)."""
    with FakeBotConnector(anonymous=True) as fake:
        yield fake


@pytest.fixture
def mastodon() -> Iterator[FakeMastodon]:
    with FakeMastodon(token="mastodon-test-token", brand_acct="acme") as fake:
        yield fake


def bot_config(mastodon_url: str | None = None, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "slack": {"channel": "C0CASES", "escalation_channel": "C0ESC", "oncall": "U0CAROL"},
        "routes": [{"when": {"platform": "mastodon", "kind": "dm"}, "channel": "C0DMS"}],
        "sources": {"generic": {"secret_env": "GENERIC_WEBHOOK_SECRET"}},
        "followups": [{"after": "1s", "text": "Hi {first_name}, checking in: is everything sorted now?"}],
        "saved_replies": [{"title": "Sorry", "text": "Hi {first_name}, sorry about that. Could you DM us your order number?"}],
    }
    if mastodon_url:
        config["sources"]["mastodon"] = {"base_url": mastodon_url, "token_env": "MASTODON_TOKEN", "poll_every": "1s"}
    config.update(overrides)
    return config


ENV = {"GENERIC_WEBHOOK_SECRET": GENERIC_SECRET, "MASTODON_TOKEN": "mastodon-test-token"}


class Bot:
    """The real bot, in-process, wired to the fakes; `http` reaches its web app."""

    def __init__(self, runtime: Runtime, http: httpx.AsyncClient, slack: FakeSlack) -> None:
        self.runtime, self.http, self.slack = runtime, http, slack
        self.alice = SlackUser(http, "U0ALICE", "Alice")
        self.bob = SlackUser(http, "U0BOB", "Bob")
        self.carol = SlackUser(http, "U0CAROL", "Carol")

    async def post_event(self, body: dict[str, Any]) -> httpx.Response:
        raw, headers = signed(body)
        return await self.http.post("/webhooks/generic", content=raw, headers=headers)

    def events(self, action: str) -> list[EventRow]:
        """The audit events of one kind, oldest first."""
        with transaction(self.runtime.engine, write=False) as session:
            return list(session.exec(select(EventRow).where(EventRow.action == action).order_by(col(EventRow.id))))

    async def card(self, text: str, channel: str = "C0CASES", **match: Any) -> dict[str, Any]:
        """The card whose blocks mention `text`, once it is there (and matches `match`)."""

        def find() -> dict[str, Any] | None:
            for message in self.slack.messages(channel):
                blob = str(message.get("blocks"))
                if text in blob and all(str(v) in blob for v in match.values()):
                    return message
            return None

        return await self.slack.wait_for_async(find)


async def start_bot(database_url: str, fake_slack: FakeSlack, config: dict[str, Any], *,
                    slack_pace: float = 0.02, scheduler_look_every: float = 15.0, target_sweep_every: float = 5.0,
                    ) -> tuple[Runtime, httpx.AsyncClient]:
    settings = Settings(database_url=database_url, slack_bot_token="xoxb-test", slack_signing_secret=SIGNING_SECRET,
                        slack_api_url=fake_slack.url)
    runtime = build(settings, config_from_mapping(config), ENV, slack_pace=slack_pace,
                    scheduler_look_every=scheduler_look_every, target_sweep_every=target_sweep_every)
    await runtime.start()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.web), base_url="http://bot.test")
    return runtime, http


@asynccontextmanager
async def running_bot(database_url: str, fake_slack: FakeSlack, config: dict[str, Any], **options: Any
                      ) -> AsyncIterator[Bot]:
    """The bot started with `config` (options as start_bot's), stopped and its engine disposed afterwards."""
    runtime, http = await start_bot(database_url, fake_slack, config, **options)
    try:
        yield Bot(runtime, http, fake_slack)
    finally:
        await http.aclose()
        await runtime.stop()
        runtime.engine.dispose()


@pytest.fixture
async def bot(database_url: str, fake_slack: FakeSlack, mastodon: FakeMastodon) -> AsyncIterator[Bot]:
    async with running_bot(database_url, fake_slack, bot_config(mastodon.url)) as running:
        yield running
