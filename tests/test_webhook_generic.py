"""The generic webhook, as a listening tool and a support team live it.

A tool POSTs signed events; only well-formed, correctly signed events become cases (a card in Slack),
a repeated delivery changes nothing, and replies written in Slack reach the tool's `reply_url` exactly
once, with failures shown on the card and a Retry button.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlmodel import Session, func, select

from adapters.http import MAX_BODY
from storage.tables import CaseRow, OutboxRow
from tests.conftest import Bot
from tests.fakes.receiver import FakeReceiver
from tests.kit.slack import SlackUser, find_action, shown
from tests.kit.webhook import event, signed

Json = dict[str, Any]
URL = "/webhooks/generic"


# ------------------------------------------------------------------------------------------ helpers

async def card_showing(bot: Bot, *texts: str, channel: str = "C0CASES", timeout: float = 10.0) -> Json:
    """The card (top-level message) that shows every one of `texts`, once it does."""

    def find() -> Json | None:
        for message in bot.slack.messages(channel):
            if all(text in shown(message) for text in texts):
                return message
        return None

    return await bot.slack.wait_for_async(find, timeout=timeout)


def cards_showing(bot: Bot, text: str, channel: str = "C0CASES") -> list[Json]:
    return [m for m in bot.slack.messages(channel) if text in shown(m)]


async def thread_showing(bot: Bot, card: Json, text: str, channel: str = "C0CASES") -> Json:
    def find() -> Json | None:
        return next((r for r in bot.slack.replies(channel, card["ts"]) if text in shown(r)), None)

    return await bot.slack.wait_for_async(find)


async def stored(bot: Bot) -> tuple[int, int]:
    """(cases, outbox rows) in the database: an accepted event always writes both in one transaction."""

    def count() -> tuple[int, int]:
        with Session(bot.runtime.engine) as session:
            cases = session.exec(select(func.count()).select_from(CaseRow)).one()
            outbox = session.exec(select(func.count()).select_from(OutboxRow)).one()
            return int(cases), int(outbox)

    return await asyncio.to_thread(count)


async def assert_nothing_happened(bot: Bot) -> None:
    """No case, nothing owed to Slack, and (after giving the outbox worker a moment) nothing posted."""
    await asyncio.sleep(0.4)
    assert await stored(bot) == (0, 0)
    assert bot.slack.calls("chat.postMessage") == []


async def post_raw(bot: Bot, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    return await bot.http.post(URL, content=raw, headers=headers)


async def reply_through_modal(bot: Bot, user: SlackUser, card: Json, text: str,
                              channel: str = "C0CASES") -> httpx.Response:
    """`user` clicks Reply on the card and sends `text` from the modal; the modal submission's answer."""
    opened = len(bot.slack.calls("views.open"))
    assert (await user.click(card, "case.reply", channel=channel)).status_code == 200
    await bot.slack.wait_for_async(lambda: len(bot.slack.calls("views.open")) > opened)
    view = [v for v in bot.slack.views().values() if v.get("callback_id") == "modal.reply"][-1]
    block = next(b for b in view["blocks"] if b["type"] == "input")
    return await user.submit(view, {block["block_id"]: {"reply_text": {"type": "plain_text_input", "value": text}}})


# ------------------------------------------------------------------------------------------ bad input

async def test_a_forged_signature_is_refused_and_nothing_is_stored(bot: Bot) -> None:
    raw, headers = signed(event("evt-forged", "Refund me"))
    tampered = raw.replace(b"Refund me", b"Refund me twice")
    answer = await post_raw(bot, tampered, headers)
    assert answer.status_code == 401
    assert "signature" in answer.json()["error"]
    await assert_nothing_happened(bot)


async def test_a_signature_made_with_another_secret_is_refused(bot: Bot) -> None:
    raw, headers = signed(event("evt-wrong-secret"), secret="not-the-secret")
    answer = await post_raw(bot, raw, headers)
    assert answer.status_code == 401 and "signature" in answer.json()["error"]
    await assert_nothing_happened(bot)


async def test_a_stale_timestamp_is_refused(bot: Bot) -> None:
    raw, headers = signed(event("evt-stale"), now=time.time() - 6 * 60)
    answer = await post_raw(bot, raw, headers)
    assert answer.status_code == 401
    assert "5-minute window" in answer.json()["error"]
    await assert_nothing_happened(bot)


@pytest.mark.parametrize("drop", [("X-SocialOps-Timestamp", "X-SocialOps-Signature"), ("X-SocialOps-Signature",),
                                  ("X-SocialOps-Timestamp",)], ids=["both", "signature", "timestamp"])
async def test_missing_signature_headers_are_refused(bot: Bot, drop: tuple[str, ...]) -> None:
    raw, headers = signed(event("evt-unsigned"))
    for name in drop:
        del headers[name]
    answer = await post_raw(bot, raw, headers)
    assert answer.status_code == 401
    assert "missing X-SocialOps-Timestamp or X-SocialOps-Signature" in answer.json()["error"]
    await assert_nothing_happened(bot)


async def test_a_signature_header_with_non_ascii_bytes_is_refused_not_a_crash(bot: Bot) -> None:
    raw, headers = signed(event("evt-latin1"))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=bot.runtime.web, raise_app_exceptions=False),
                             base_url="http://bot.test")
    async with http:
        answer = await http.post(URL, content=raw, headers={**headers, "X-SocialOps-Signature": b"sha256=\xe9"})
    assert answer.status_code == 401
    await assert_nothing_happened(bot)


async def test_malformed_json_is_refused(bot: Bot) -> None:
    raw, headers = signed(b'{"id": "evt-1", "kind": "mention", "text": "My order')
    answer = await post_raw(bot, raw, headers)
    assert answer.status_code == 400
    assert "not valid JSON" in answer.json()["error"]
    await assert_nothing_happened(bot)


async def test_a_json_body_that_is_not_an_object_is_refused(bot: Bot) -> None:
    raw, headers = signed(b'["evt-1", "mention"]')
    answer = await post_raw(bot, raw, headers)
    assert answer.status_code == 400 and "JSON object" in answer.json()["error"]
    await assert_nothing_happened(bot)


def _without(body: Json, path: str) -> Json:
    body = json.loads(json.dumps(body))
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[key]
    del target[last]
    return body


@pytest.mark.parametrize("field", ["id", "text", "kind", "author.id", "author"])
async def test_an_event_missing_a_required_field_is_refused_naming_it(bot: Bot, field: str) -> None:
    raw, headers = signed(_without(event("evt-missing", "Where is my parcel?"), field))
    answer = await post_raw(bot, raw, headers)
    assert answer.status_code == 400
    assert f"missing required field '{field}'" in answer.json()["error"]
    await assert_nothing_happened(bot)


def _with(body: Json, path: str, value: Any) -> Json:
    body = json.loads(json.dumps(body))
    *parents, last = path.split(".")
    (body[parents[0]] if parents else body)[last] = value
    return body


@pytest.mark.parametrize("kind", ["tweet", "reply"])
async def test_an_unknown_kind_is_refused(bot: Bot, kind: str) -> None:
    raw, headers = signed(event("evt-kind", kind=kind))
    answer = await post_raw(bot, raw, headers)
    assert answer.status_code == 400
    assert "field 'kind' must be one of comment, dm, mention, review, tag" in answer.json()["error"]
    await assert_nothing_happened(bot)


INVALID = [
    ("id", "  "), ("text", ""), ("author.id", " "), ("kind", ""), ("kind", "MENTION"), ("id", True),
    ("author.followers", -1), ("author.followers", "many"), ("rating", 6), ("rating", 0),
    ("url", "javascript:alert(1)"), ("reply_url", "ftp://tool.example/replies"), ("created_at", "yesterday"),
    ("platform", "x y"), ("text", "x" * 40_001), ("author", "jane"),
]


async def test_an_empty_or_invalid_field_is_refused_naming_it(bot: Bot) -> None:
    for field, value in INVALID:
        raw, headers = signed(_with(event("evt-invalid", "Where is my parcel?"), field, value))
        answer = await post_raw(bot, raw, headers)
        assert answer.status_code == 400, (field, value)
        assert f"'{field}'" in answer.json()["error"], (field, value, answer.json())
    await assert_nothing_happened(bot)


def _padded(size: int) -> bytes:
    """A valid, signed-able event whose body is exactly `size` bytes (JSON whitespace as padding)."""
    raw = json.dumps(event("evt-big", "A long one")).encode()
    assert len(raw) < size
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


async def test_a_body_over_one_mebibyte_is_refused_by_its_content_length(bot: Bot) -> None:
    raw, headers = signed(_padded(MAX_BODY + 1))
    answer = await post_raw(bot, raw, headers)
    assert answer.status_code == 413
    assert "1 MiB" in answer.json()["error"]
    await assert_nothing_happened(bot)


async def test_a_streamed_body_over_one_mebibyte_is_refused_without_a_content_length(bot: Bot) -> None:
    raw, headers = signed(_padded(MAX_BODY + 1))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 64 * 1024):
            yield raw[start:start + 64 * 1024]

    request = bot.http.build_request("POST", URL, content=chunks(), headers=headers)
    assert "content-length" not in request.headers and request.headers["transfer-encoding"] == "chunked"
    answer = await bot.http.send(request)
    assert answer.status_code == 413
    assert "1 MiB" in answer.json()["error"]
    await assert_nothing_happened(bot)


async def test_a_body_of_exactly_one_mebibyte_is_accepted(bot: Bot) -> None:
    raw, headers = signed(_padded(MAX_BODY))
    answer = await post_raw(bot, raw, headers)
    assert answer.status_code == 202
    await card_showing(bot, "A long one")


# ------------------------------------------------------------------------------------------ deliveries

async def test_a_repeated_delivery_is_acknowledged_and_changes_nothing(bot: Bot) -> None:
    body = event("evt-dup", "Still waiting for my refund")
    first = await bot.post_event(body)
    assert first.status_code == 202 and first.json()["duplicate"] is False
    card = await card_showing(bot, "Still waiting for my refund")
    posted = len(bot.slack.calls("chat.postMessage"))

    again = await bot.post_event(body)  # the tool did not see our 202 and tries again
    assert again.status_code == 200
    assert again.json() == {"case": first.json()["case"], "duplicate": True}

    await asyncio.sleep(0.5)
    assert len(cards_showing(bot, "Still waiting for my refund")) == 1
    assert len(bot.slack.calls("chat.postMessage")) == posted  # no second card, no thread line
    assert "*Messages*\n1" in shown(bot.slack.message("C0CASES", card["ts"]) or {})
    assert (await stored(bot))[0] == 1


async def test_events_in_one_conversation_form_one_case(bot: Bot) -> None:
    first = await bot.post_event(event("evt-c1", "My order never arrived", conversation="thread-9"))
    card = await card_showing(bot, "My order never arrived", "*Messages*\n1")

    second = await bot.post_event(event("evt-c2", "Hello?? Anyone there?", conversation="thread-9"))
    assert second.status_code == 202
    assert second.json()["case"] == first.json()["case"]

    card = await card_showing(bot, "My order never arrived", "*Messages*\n2")
    line = await thread_showing(bot, card, "Hello?? Anyone there?")
    assert "New message from the customer" in shown(line)
    assert len(cards_showing(bot, "My order never arrived")) == 1
    assert not cards_showing(bot, "Anyone there?")  # no card of its own
    assert (await stored(bot))[0] == 1


async def test_the_answer_comes_only_after_the_event_is_stored(bot: Bot) -> None:
    answer = await bot.post_event(event("evt-stored", "Stored before you hear back"))
    assert answer.status_code == 202
    cases, owed = await stored(bot)  # read at once, without waiting for anything
    assert cases == 1 and owed >= 1
    assert answer.json() == {"case": answer.json()["case"], "duplicate": False}


async def test_concurrent_repeats_of_one_event_are_accepted_once(bot: Bot) -> None:
    body = event("evt-race", "Sent twice at the same moment")
    answers = await asyncio.gather(*(bot.post_event(body) for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 202]
    assert len({a.json()["case"] for a in answers}) == 1
    await card_showing(bot, "Sent twice at the same moment")
    await asyncio.sleep(0.5)
    assert len(cards_showing(bot, "Sent twice at the same moment")) == 1
    assert (await stored(bot))[0] == 1


async def test_concurrent_first_events_of_one_conversation_open_one_case(bot: Bot) -> None:
    bodies = [event(f"evt-burst-{i}", f"Burst message {i}", conversation="burst") for i in range(3)]
    answers = await asyncio.gather(*(bot.post_event(b) for b in bodies))
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert len({a.json()["case"] for a in answers}) == 1
    await card_showing(bot, "Burst message", "*Messages*\n3")
    await asyncio.sleep(0.5)
    assert len(cards_showing(bot, "Burst message")) == 1
    assert (await stored(bot))[0] == 1


async def test_events_without_a_conversation_are_one_case_each(bot: Bot) -> None:
    a = await bot.post_event(event("evt-n1", "First complaint"))
    b = await bot.post_event(event("evt-n2", "Second complaint"))
    assert a.json()["case"] != b.json()["case"]
    await card_showing(bot, "First complaint")
    await card_showing(bot, "Second complaint")


async def test_a_dm_joins_the_authors_dm_case(bot: Bot) -> None:
    first = await bot.post_event(event("dm-1", "Can I change my address?", kind="dm"))
    card = await card_showing(bot, "Can I change my address?", "*Messages*\n1")
    assert "Webhook DM" in shown(card)

    other = await bot.post_event(event("dm-x", "Unrelated question", kind="dm", author_id="cust-2", name="Sam Roe"))
    second = await bot.post_event(event("dm-2", "It is 12 Main St", kind="dm"))
    assert second.status_code == 202
    assert second.json()["case"] == first.json()["case"]
    assert other.json()["case"] != first.json()["case"]

    card = await card_showing(bot, "Can I change my address?", "*Messages*\n2")
    await thread_showing(bot, card, "It is 12 Main St")
    await card_showing(bot, "Unrelated question", "*Messages*\n1")


# ------------------------------------------------------------------------------------------ replies

async def test_a_reply_without_a_reply_url_fails_on_the_card_with_retry(bot: Bot) -> None:
    await bot.post_event(event("evt-noreply", "No way to answer me"))
    card = await card_showing(bot, "No way to answer me")

    submitted = await reply_through_modal(bot, bot.alice, card, "Hi Jane, sorry!")
    assert submitted.status_code == 200

    card = await card_showing(bot, "No way to answer me", "Reply by Alice failed")
    assert "without a reply_url" in shown(card)
    assert find_action(card, "reply.retry") is not None


async def test_a_reply_is_retried_after_a_server_error_and_delivered_once(bot: Bot, receiver: FakeReceiver) -> None:
    await bot.post_event(event("evt-500", "Answer me please", reply_url=receiver.url + "/reply"))
    card = await card_showing(bot, "Answer me please")
    receiver.fail_next(500, times=1)

    await reply_through_modal(bot, bot.alice, card, "Hi Jane, we are on it.")

    card = await card_showing(bot, "Answer me please", "Reply by Alice sent", timeout=15)
    delivered = receiver.messages()
    assert [m["text"] for m in delivered] == ["Hi Jane, we are on it."]
    assert delivered[0]["in_reply_to"] == "evt-500"
    attempts = receiver.requests()
    assert [r["status"] for r in attempts] == [500, 200]
    keys = {r["headers"]["idempotency-key"] for r in attempts}
    assert len(keys) == 1 and keys == {delivered[0]["idempotency_key"]}  # the retry repeats the same key
    assert f"<{receiver.url}/messages/1|view>" in shown(card)
    assert find_action(card, "reply.retry") is None


async def test_a_refused_reply_shows_failed_and_retry_sends_it_once(bot: Bot, receiver: FakeReceiver) -> None:
    await bot.post_event(event("evt-400", "Please answer", reply_url=receiver.url + "/reply"))
    card = await card_showing(bot, "Please answer")
    receiver.fail_next(400, times=1)

    await reply_through_modal(bot, bot.alice, card, "Hi Jane, here is the answer.")

    card = await card_showing(bot, "Please answer", "Reply by Alice failed")
    assert "HTTP 400" in shown(card)
    assert receiver.messages() == []
    await asyncio.sleep(2.5)  # a 4xx is final: no retry by itself
    assert [r["status"] for r in receiver.requests()] == [400]

    # The tool is fixed; Alice clicks Retry.
    assert (await bot.alice.click(card, "reply.retry", channel="C0CASES")).status_code == 200
    card = await card_showing(bot, "Please answer", "Reply by Alice sent")
    assert [m["text"] for m in receiver.messages()] == ["Hi Jane, here is the answer."]
    assert find_action(card, "reply.retry") is None
    await asyncio.sleep(0.5)
    assert len(receiver.messages()) == 1 and [r["status"] for r in receiver.requests()] == [400, 200]


async def test_replies_are_signed_for_the_receiver(bot: Bot, receiver: FakeReceiver) -> None:
    await bot.post_event(event("evt-sig", "Check the signature", conversation="conv-7",
                               reply_url=receiver.url + "/reply"))
    card = await card_showing(bot, "Check the signature")
    await reply_through_modal(bot, bot.alice, card, "Hi Jane, signed and sealed.")
    await card_showing(bot, "Check the signature", "Reply by Alice sent")
    (request,) = receiver.requests()
    assert request["path"] == "/reply" and request["status"] == 200
    assert request["json"]["conversation"] == "conv-7" and request["json"]["in_reply_to"] == "evt-sig"
    assert request["headers"]["idempotency-key"] == request["json"]["idempotency_key"]


# ------------------------------------------------------------------------------------------ untrusted text

HOSTILE = "<!channel> @here look at <https://evil.example|https://bank.example> *bold* <@U0ALICE> <!here>"
EVIL_LINK = re.compile(r"<https?://[^|>]*evil\.example[^>]*>")


def assert_inert(text: str) -> None:
    assert "<!channel>" not in text
    assert "<!here>" not in text
    assert "<@U0ALICE>" not in text
    assert not re.search(r"(?<![\w\u2060])@here\b", text)
    assert not EVIL_LINK.search(text), text


async def test_customer_text_cannot_ping_the_channel_or_disguise_a_link(bot: Bot) -> None:
    await bot.post_event(event("evt-evil", HOSTILE, conversation="evil-1"))
    card = await card_showing(bot, "look at")
    assert_inert(json.dumps(card["blocks"], ensure_ascii=False))
    assert "bold" in shown(card) and "bank.example" in shown(card)  # still readable, just not live

    # A second message goes to the card's thread: just as inert there.
    await bot.post_event(event("evt-evil-2", "again " + HOSTILE, conversation="evil-1"))
    line = await thread_showing(bot, card, "again")
    assert_inert(json.dumps(line["blocks"], ensure_ascii=False))
    assert_inert(line["text"])


async def test_a_customer_name_cannot_ping_the_channel(bot: Bot) -> None:
    await bot.post_event(event("evt-name", "Hello from a tricky name", name="<!channel> Mallory",
                               handle="<!here>"))
    card = await card_showing(bot, "Hello from a tricky name")
    assert_inert(json.dumps(card["blocks"], ensure_ascii=False))
    assert "Mallory" in shown(card)


async def test_a_customer_name_cannot_ping_the_channel_through_the_fallback_text(bot: Bot) -> None:
    await bot.post_event(event("evt-name-2", "Hello from a tricky name", name="<!channel> Mallory"))
    card = await card_showing(bot, "Hello from a tricky name")
    assert_inert(card["text"])
