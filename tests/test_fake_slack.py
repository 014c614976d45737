"""The Slack fake, driven by the real slack_sdk AsyncWebClient."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import FakeSlack

C = "C0CARE"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as f:
        yield f


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=fake.url, retry_handlers=[])


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


async def test_post_update_reply_history_with_metadata(fake: FakeSlack, client: AsyncWebClient) -> None:
    assert fake.url.startswith("http://127.0.0.1:") and fake.url.endswith("/api/")
    auth = await client.auth_test()
    assert auth["user_id"] == "UBOT"

    meta = {"event_type": "case_card", "event_payload": {"case_id": "42"}}
    r1 = await client.chat_postMessage(
        channel=C, text="new case", blocks=[section("*Case 42*")], metadata=meta
    )
    r2 = await client.chat_postMessage(channel=C, text="plain")
    ts1, ts2 = r1["ts"], r2["ts"]
    assert r1["channel"] == C and r1["message"]["metadata"] == meta
    assert float(ts2) > float(ts1) and ts1.count(".") == 1 and len(ts1.split(".")[1]) == 6

    up = await client.chat_update(channel=C, ts=ts1, text="case claimed", blocks=[section("*Claimed*")])
    assert up["ts"] == ts1
    reply = await client.chat_postMessage(channel=C, thread_ts=ts1, text="note", metadata=meta)

    hist = await client.conversations_history(channel=C, limit=10, include_all_metadata=True)
    assert [m["ts"] for m in hist["messages"]] == [ts2, ts1]  # newest first, no replies
    parent = hist["messages"][1]
    assert parent["text"] == "case claimed" and parent["metadata"] == meta and parent["reply_count"] == 1
    assert "metadata" not in hist["messages"][0]
    plain = await client.conversations_history(channel=C)
    assert all("metadata" not in m for m in plain["messages"])
    newer = await client.conversations_history(channel=C, oldest=ts1)
    assert [m["ts"] for m in newer["messages"]] == [ts2]

    thread = await client.conversations_replies(channel=C, ts=ts1, include_all_metadata=True)
    assert [m["ts"] for m in thread["messages"]] == [ts1, reply["ts"]]
    assert thread["messages"][1]["metadata"] == meta

    link = await client.chat_getPermalink(channel=C, message_ts=ts1)
    assert link["permalink"] == f"https://fake.slack.test/archives/{C}/p{ts1.replace('.', '')}"

    stored = fake.message(C, ts1)
    assert stored is not None
    assert stored["updates"] == 1 and stored["user"] == "UBOT" and stored["blocks"] == [section("*Claimed*")]
    assert [m["ts"] for m in fake.messages(C)] == [ts1, ts2]
    assert [m["text"] for m in fake.replies(C, ts1)] == ["note"]
    assert fake.calls("chat.update")[0]["params"]["ts"] == ts1

    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel=C, ts="1.000001", text="x")
    assert err.value.response["error"] == "message_not_found"
    await client.chat_delete(channel=C, ts=ts2)
    assert [m["ts"] for m in fake.messages(C)] == [ts1]


async def test_form_encoded_body_decodes_json_fields(fake: FakeSlack, client: AsyncWebClient) -> None:
    meta = {"event_type": "t", "event_payload": {"a": 1}}
    data = {"channel": C, "text": "hi", "blocks": json.dumps([section("x")]), "metadata": json.dumps(meta)}
    await client.api_call("chat.postMessage", data=data)
    [msg] = fake.messages(C)
    assert msg["blocks"] == [section("x")] and msg["metadata"] == meta
    assert fake.calls("chat.postMessage")[0]["params"]["blocks"] == [section("x")]


async def test_429_surfaces_with_retry_after_and_changes_nothing(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=C, text="hi")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert err.value.response["error"] == "ratelimited"
    assert fake.messages() == []
    await client.chat_postMessage(channel=C, text="hi")  # only the next call failed
    assert [(c["status"], c["ok"]) for c in fake.calls("chat.postMessage")] == [(429, False), (200, True)]
    assert len(fake.messages(C)) == 1


async def test_500_and_error_injection(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.fail_next("chat.postMessage", status=500)
    fake.fail_next("chat.postMessage", error="channel_not_found", times=2)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=C, text="a")
    assert err.value.response.status_code == 500
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel=C, text="a")
        assert err.value.response.status_code == 200 and err.value.response["error"] == "channel_not_found"
    assert fake.messages() == [] and len(fake.calls()) == 3
    with pytest.raises(SlackApiError) as err:
        await client.api_call("chat.nope")
    assert err.value.response["error"] == "unknown_method"


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        ([section("x")] * 51, "/blocks"),
        ([section("x" * 3001)], "/blocks/0/text/text"),
        ([{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}], "/blocks/0/fields"),
        (
            [
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "Go"},
                            "action_id": "a",
                            "value": "v" * 2001,
                        }
                    ],
                }
            ],
            "/blocks/0/elements/0/value",
        ),
        ([{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}], "/blocks/0/text/type"),
        (
            [{"type": "section", "text": {"type": "plain_text", "text": "t", "verbatim": True}}],
            "/blocks/0/text/verbatim",
        ),
        ([{"type": "sektion", "text": {"type": "mrkdwn", "text": "t"}}], "/blocks/0/type"),
    ],
)
async def test_invalid_blocks_are_refused(
    fake: FakeSlack, client: AsyncWebClient, blocks: list[dict[str, Any]], pointer: str
) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=C, text="fallback", blocks=blocks)
    assert err.value.response["error"] == "invalid_blocks"
    assert any(f"[json-pointer:{pointer}]" in e for e in err.value.response["errors"])
    assert fake.messages() == [] and fake.calls()[0]["error"] == "invalid_blocks"


async def test_text_too_long_and_bad_token(fake: FakeSlack, client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=C, text="x" * 40_001)
    assert err.value.response["error"] == "msg_too_long"
    bad = AsyncWebClient(token="xoxb-wrong", base_url=fake.url, retry_handlers=[])
    with pytest.raises(SlackApiError) as err:
        await bad.chat_postMessage(channel=C, text="hi")
    assert err.value.response.status_code == 200 and err.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as err:
        await AsyncWebClient(base_url=fake.url, retry_handlers=[]).auth_test()
    assert err.value.response["error"] == "not_authed"
    assert fake.messages() == []


async def test_ephemeral_and_views(fake: FakeSlack, client: AsyncWebClient) -> None:
    r = await client.chat_postEphemeral(channel=C, user="U1", text="only you")
    assert fake.ephemerals("U1")[0]["message_ts"] == r["message_ts"] and fake.ephemerals("U2") == []

    title = {"type": "plain_text", "text": "Reply"}
    modal: dict[str, Any] = {
        "type": "modal",
        "title": title,
        "submit": {"type": "plain_text", "text": "Send"},
        "blocks": [
            {
                "type": "input",
                "block_id": "b",
                "label": {"type": "plain_text", "text": "Text"},
                "element": {"type": "plain_text_input", "action_id": "t", "max_length": 500},
            }
        ],
    }
    opened = await client.views_open(trigger_id="123.abc", view=modal)
    view_id, first_hash = opened["view"]["id"], opened["view"]["hash"]
    assert opened["view"]["title"] == title and view_id in fake.views()

    updated = await client.views_update(view_id=view_id, hash=first_hash, view={**modal, "blocks": []})
    assert fake.views()[view_id]["blocks"] == [] and updated["view"]["hash"] != first_hash
    with pytest.raises(SlackApiError) as err:
        await client.views_update(view_id=view_id, hash=first_hash, view=modal)
    assert err.value.response["error"] == "hash_conflict"
    await client.views_push(trigger_id="124.abc", view={**modal, "external_id": "ext-1"})
    await client.views_update(
        external_id="ext-1", view={**modal, "title": {"type": "plain_text", "text": "X"}}
    )
    assert len(fake.views()) == 2

    input_block = modal["blocks"][0]
    too_long_initial = {
        "type": "plain_text_input",
        "action_id": "t",
        "max_length": 10,
        "initial_value": "x" * 11,
    }
    for bad in (
        {**modal, "title": {"type": "plain_text", "text": "t" * 25}},
        {**modal, "blocks": [section("x")] * 101},
        {**modal, "blocks": [{**input_block, "element": too_long_initial}]},
    ):
        with pytest.raises(SlackApiError) as err:
            await client.views_open(trigger_id="125.abc", view=bad)
        assert err.value.response["error"] == "invalid_arguments" and err.value.response["errors"]
    assert len(fake.views()) == 2


async def test_crash_window_delay_stores_before_answering(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.delay("chat.postMessage", 1.0)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.chat_postMessage(channel=C, text="lost ack"), timeout=0.2)
    assert [m["text"] for m in fake.messages(C)] == ["lost ack"]  # Slack has it; the client never heard back
    fake.delay("chat.postMessage", 0)
    assert (await client.chat_postMessage(channel=C, text="fast"))["ok"]


async def test_wait_for(fake: FakeSlack, client: AsyncWebClient) -> None:
    task = asyncio.create_task(client.chat_postMessage(channel=C, text="later"))
    msg = await fake.wait_for_async(lambda: fake.messages(C)[0], timeout=5)
    assert msg["text"] == "later"
    await task
    with pytest.raises(AssertionError, match="recent Slack calls"):
        fake.wait_for(lambda: fake.messages("CNONE"), timeout=0.1)
    fake.reset()
    assert fake.messages() == [] and fake.calls() == []


def test_subprocess_can_reach_the_fake(fake: FakeSlack) -> None:
    code = (
        "import json, sys, urllib.request as u\n"
        "body = json.dumps({'channel': 'C1', 'text': 'hey'}).encode()\n"
        "headers = {'Authorization': 'Bearer xoxb-test', 'Content-Type': 'application/json'}\n"
        "req = u.Request(sys.argv[1] + 'chat.postMessage', data=body, headers=headers)\n"
        "print(json.load(u.urlopen(req))['ok'])"
    )
    out = subprocess.run([sys.executable, "-c", code, fake.url], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    assert fake.wait_for(lambda: fake.messages("C1"))[0]["text"] == "hey"
