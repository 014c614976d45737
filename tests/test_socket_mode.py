"""Socket Mode: the real bot opens a websocket (apps.connections.open) and Slack's clicks and commands
arrive over it as envelopes, each acknowledged on the same socket; the web app keeps only webhooks."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from app import Runtime, build, connect_socket_mode
from bot.config import Settings, config_from_mapping
from tests.conftest import ENV, Bot
from tests.conftest import bot_config as bot_config
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_socket import FakeSocketMode
from tests.kit.slack import TEAM, block_action, find_action, signed_headers
from tests.kit.webhook import event

APP_TOKEN = "xapp-test"


@pytest.fixture
def socket_server(fake_slack: FakeSlack) -> Iterator[FakeSocketMode]:
    with FakeSocketMode() as server:
        fake_slack.socket_url = server.url
        yield server


async def start_socket_bot(database_url: str, fake_slack: FakeSlack, config: dict[str, Any]) -> tuple[Runtime, httpx.AsyncClient]:
    """Like conftest.start_bot, but deployed for Socket Mode: an app token and no signing secret."""
    settings = Settings(database_url=database_url, slack_bot_token="xoxb-test", slack_app_token=APP_TOKEN,
                        slack_api_url=fake_slack.url)
    runtime = build(settings, config_from_mapping(config), ENV, slack_pace=0.02)
    await runtime.start()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.web), base_url="http://bot.test")
    return runtime, http


@pytest.fixture
async def socket_bot(database_url: str, fake_slack: FakeSlack, socket_server: FakeSocketMode) -> AsyncIterator[Bot]:
    runtime, http = await start_socket_bot(database_url, fake_slack, bot_config())
    socket = None
    try:
        socket = await connect_socket_mode(runtime, APP_TOKEN)
        yield Bot(runtime, http, fake_slack)
    finally:
        if socket is not None:
            await socket.close_async()
        await http.aclose()
        await runtime.stop()
        runtime.engine.dispose()


def slash_command(text: str, *, user_id: str, name: str, channel: str = "C0CASES") -> dict[str, str]:
    """A slash_commands envelope payload: Slack's slash command fields, as strings."""
    return {
        "token": "legacy", "team_id": TEAM["id"], "team_domain": TEAM["domain"], "channel_id": channel,
        "channel_name": "cases", "user_id": user_id, "user_name": name.lower(), "command": "/social", "text": text,
        "api_app_id": "AFAKE", "is_enterprise_install": "false",
        "response_url": "https://hooks.slack.test/commands/1", "trigger_id": f"trigger-{time.monotonic_ns()}",
    }


async def test_clicks_and_commands_arrive_over_the_socket_and_are_acknowledged_there(
        socket_bot: Bot, fake_slack: FakeSlack, socket_server: FakeSocketMode) -> None:
    opened = fake_slack.calls("apps.connections.open")
    assert [(c["status"], c["ok"]) for c in opened] == [(200, True)]
    socket_server.wait_connected()
    assert socket_server.connections == 1

    # (a) a webhook event still comes in over HTTP and becomes a card
    answer = await socket_bot.post_event(event("evt-socket-1", "Where is my parcel?"))
    assert answer.status_code == 202, answer.text
    card = await socket_bot.card("Where is my parcel?")

    # (b) Alice's Claim click arrives as an `interactive` envelope, is acked at once, and the card shows her
    button = find_action(card, "case.claim")
    assert button is not None
    click = block_action(user_id="U0ALICE", name="Alice", action_id="case.claim", value=button["value"],
                         channel="C0CASES", message=card)
    envelope_id = socket_server.send("interactive", click)
    ack = await socket_server.wait_for_ack_async(envelope_id, timeout=3)
    assert ack["elapsed"] < 2.5, ack  # Slack retries (and shows an error) after 3 seconds
    assert not ack.get("payload")
    card = await socket_bot.card("Where is my parcel?", owner="<@U0ALICE>")
    assert ":large_blue_circle: Open" not in json.dumps(card["blocks"])

    # (c) `/social stats 7d` arrives as a `slash_commands` envelope; the answer rides in the ack's payload
    envelope_id = socket_server.send("slash_commands", slash_command("stats 7d", user_id="U0ALICE", name="Alice"))
    ack = await socket_server.wait_for_ack_async(envelope_id, timeout=3)
    payload = ack["payload"]
    assert payload["response_type"] == "ephemeral"
    text = json.dumps(payload["blocks"], ensure_ascii=False)
    assert "Last 7 days" in text and "1 new" in text, text
    assert "<@U0ALICE>: 1 claimed" in text, text

    bad = socket_server.send("slash_commands", slash_command("stats 1y", user_id="U0ALICE", name="Alice"))
    assert "Unknown period `1y`" in (await socket_server.wait_for_ack_async(bad, timeout=3))["payload"]["text"]

    # nothing else reached Slack over HTTP for the acks: no ephemerals, one connection throughout
    assert fake_slack.ephemerals() == []
    assert socket_server.connections == 1
    assert [a["envelope_id"] for a in socket_server.acks()] == [e["envelope_id"] for e in socket_server.sent()]


async def test_the_socket_mode_web_app_has_no_slack_endpoint(socket_bot: Bot) -> None:
    body = b"payload=%7B%7D"
    refused = await socket_bot.http.post("/slack/events", content=body, headers=signed_headers(body))
    assert refused.status_code == 404
    assert (await socket_bot.http.get("/healthz")).text == "ok"
    accepted = await socket_bot.post_event(event("evt-socket-2", "Still here over HTTP"))
    assert accepted.status_code == 202, accepted.text
    await socket_bot.card("Still here over HTTP")


async def test_apps_connections_open_takes_only_the_app_token(fake_slack: FakeSlack) -> None:
    fake_slack.socket_url = "ws://127.0.0.1:9/link"
    app = AsyncWebClient(token="xoxb-test", base_url=fake_slack.url, retry_handlers=[])
    assert (await app.apps_connections_open(app_token=APP_TOKEN))["url"] == "ws://127.0.0.1:9/link"
    for token, error in [("xoxb-test", "not_allowed_token_type"), ("xapp-wrong", "invalid_auth")]:
        with pytest.raises(SlackApiError) as refused:
            await app.apps_connections_open(app_token=token)
        assert refused.value.response["error"] == error
    with pytest.raises(SlackApiError) as refused:  # and the app token is no bot token
        await AsyncWebClient(token=APP_TOKEN, base_url=fake_slack.url, retry_handlers=[]).auth_test()
    assert refused.value.response["error"] == "not_allowed_token_type"
    fake_slack.socket_url = None
    with pytest.raises(SlackApiError) as refused:
        await app.apps_connections_open(app_token=APP_TOKEN)
    assert refused.value.response["error"] == "socket_mode_not_enabled"


def test_fake_socket_mode_works_from_sync_code() -> None:
    """The fake runs its own loop: a plain (sync) test can drive a client living on another loop."""
    import asyncio
    import threading

    import aiohttp

    with FakeSocketMode(app_id="ATEST") as server:
        got: list[dict[str, Any]] = []

        async def client() -> None:
            async with aiohttp.ClientSession() as session, session.ws_connect(server.url) as ws:
                got.append(json.loads((await ws.receive()).data))
                envelope = json.loads((await ws.receive()).data)
                got.append(envelope)
                await ws.send_str(json.dumps({"envelope_id": envelope["envelope_id"], "payload": {"text": "hi"}}))
                await ws.receive()  # until the server closes

        thread = threading.Thread(target=asyncio.run, args=(client(),), daemon=True)
        thread.start()
        envelope_id = server.send("events_api", {"type": "event_callback", "event": {"type": "app_mention"}})
        ack = server.wait_for_ack(envelope_id, timeout=5)
        assert ack["payload"] == {"text": "hi"} and ack["elapsed"] is not None
        assert got[0]["type"] == "hello" and got[0]["connection_info"] == {"app_id": "ATEST"}
        assert got[1]["type"] == "events_api" and got[1]["accepts_response_payload"] is False
        assert got[1]["retry_attempt"] == 0
        with pytest.raises(AssertionError, match="never sent"):
            server.wait_for_ack("no-such-envelope", timeout=0.1)
    thread.join(timeout=5)
    assert not thread.is_alive()
