"""Meta against the fake Graph API: the webhook (handshake, signatures, batches, Instagram mention look-ups),
the sender (Messenger windows, private replies, public comment replies, Instagram mentions), Graph errors and
rate limits, `check()`, and the real bot from a Messenger message to the reply the customer receives.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from adapters.meta.client import GraphClient, appsecret_proof, graph_error, usage_pause
from adapters.meta.parse import MENTION_UNREADABLE
from adapters.meta.source import MetaSender, make
from adapters.source import SourceParts
from app import Runtime, build
from bot.config import ConfigError, MetaSource, Settings, config_from_mapping
from bot.core.errors import CredentialsError, SendError
from bot.core.model import Item, Kind
from bot.services.ingest import Accepted
from tests.fakes.meta import WEBHOOK_PATH, FakeMeta, sign
from tests.fakes.slack_api import FakeSlack
from tests.kit.slack import SIGNING_SECRET, SlackUser, find_action, shown

Json = dict[str, Any]
FIXTURES = Path(__file__).parent / "fixtures" / "meta"
WORLD = "Grüße aus Köln 👋🏽 — Hyvää päivää! سلام، سفارش من کجاست؟ e\u0301 n\u0303 👩‍👩‍👧"
WINDOW_NOTICE = ("The customer last wrote more than 24 hours ago: Messenger allows a reply tagged HUMAN_AGENT "
                 "up to 7 days")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


class Intake:
    """Records what the webhook hands over; `gate` (when set) holds ingest until the test opens it."""

    def __init__(self) -> None:
        self.batches: list[list[Item]] = []
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def accept(self, item: Item) -> Accepted:
        return (await self.ingest([item]))[0]

    async def ingest(self, items: list[Item], *, cursor: tuple[str, str] | None = None) -> list[Accepted]:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("database is down")
        self.batches.append(items)
        return [Accepted(platform_id=i.platform_id, case_id=n + 1, duplicate=False) for n, i in enumerate(items)]

    @property
    def items(self) -> list[Item]:
        return [i for batch in self.batches for i in batch]


def env_for(fake: FakeMeta, **overrides: str) -> dict[str, str]:
    return {"META_APP_SECRET": fake.app_secret, "META_VERIFY_TOKEN": fake.verify_token,
            "META_PAGE_TOKEN": fake.page_token, **overrides}


def config_for(fake: FakeMeta, **overrides: Any) -> MetaSource:
    values = {"graph_url": fake.graph_url, "page_id": fake.page["id"], "instagram_id": fake.instagram["id"],
              **overrides}
    return MetaSource(**values)


@pytest.fixture
def meta() -> Iterator[FakeMeta]:
    with FakeMeta() as fake:
        yield fake


@pytest.fixture
def parts(meta: FakeMeta, http: httpx.AsyncClient) -> SourceParts:
    return make(config=config_for(meta), env=env_for(meta), http=http)


@pytest.fixture
def sender(parts: SourceParts) -> MetaSender:
    found = parts.senders["meta"]
    assert isinstance(found, MetaSender)
    return found


@pytest.fixture
def intake() -> Intake:
    return Intake()


@pytest.fixture
async def bot_http(parts: SourceParts, intake: Intake) -> AsyncIterator[httpx.AsyncClient]:
    assert parts.webhook is not None
    app = Starlette(routes=[Route(WEBHOOK_PATH, parts.webhook(intake), methods=["GET", "POST"])])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://bot.test") as client:
        yield client


async def post(client: httpx.AsyncClient, delivery: tuple[str, bytes, dict[str, str]]) -> httpx.Response:
    path, body, headers = delivery
    return await client.post(path, content=body, headers=headers)


def graph_posts(meta: FakeMeta) -> list[Json]:
    return [r for r in meta.requests() if r["method"] == "POST"]


# ------------------------------------------------------------------------------------------ handshake

async def test_the_documented_handshake_echoes_the_challenge_as_plain_text(meta: FakeMeta,
                                                                           http: httpx.AsyncClient) -> None:
    documented = fixture("verification_get_handshake.json")
    parts = make(config=config_for(meta), env=env_for(meta, META_VERIFY_TOKEN="meatyhamhock"), http=http)
    assert parts.webhook is not None
    app = Starlette(routes=[Route(WEBHOOK_PATH, parts.webhook(Intake()), methods=["GET", "POST"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://bot.test") as client:
        answer = await client.get(WEBHOOK_PATH, params=documented["request"]["query"])
        assert answer.status_code == documented["expected_response"]["status"] == 200
        assert answer.text == documented["expected_response"]["body"] == "1158201444"
        assert answer.headers["content-type"].startswith("text/plain")

        for query in ({**documented["request"]["query"], "hub.verify_token": "meatyhamhocks"},
                      {**documented["request"]["query"], "hub.verify_token": ""},
                      {**documented["request"]["query"], "hub.mode": "unsubscribe"},
                      {"hub.mode": "subscribe", "hub.challenge": "1158201444"}):
            refused = await client.get(WEBHOOK_PATH, params=query)
            assert refused.status_code == 403 and "1158201444" not in refused.text


# ------------------------------------------------------------------------------------------ deliveries

async def test_a_signed_messenger_message_is_ingested_with_the_customers_name(
        meta: FakeMeta, bot_http: httpx.AsyncClient, intake: Intake) -> None:
    answer = await post(bot_http, meta.customer_says(WORLD, name="Jane Doe", handle="@jane"))
    assert answer.status_code == 200 and answer.text == "EVENT_RECEIVED"
    (item,) = intake.items
    psid = meta.user_id("@jane")
    assert (item.platform, item.kind, item.conversation) == ("facebook", Kind.DM, f"dm:{psid}")
    assert item.text == WORLD
    assert item.author.id == psid and item.author.name == "Jane Doe" and item.author.first_name == "Jane"
    assert item.reply_to["recipient_id"] == psid and item.reply_to["via"] == "meta"
    (lookup,) = [r for r in meta.requests() if r["path"] == f"/{psid}"]
    assert lookup["query"]["fields"] == "first_name,last_name"

    await post(bot_http, meta.customer_says("second message", name="Jane Doe", handle="@jane"))
    assert len([r for r in meta.requests() if r["path"] == f"/{psid}"]) == 1  # the name is remembered


async def test_a_forged_or_unsigned_delivery_is_refused_and_nothing_is_stored(
        meta: FakeMeta, bot_http: httpx.AsyncClient, intake: Intake) -> None:
    path, body, headers = meta.customer_says("I am not Meta")
    flipped = bytearray(body)
    flipped[body.index(b"I am")] ^= 0x20
    unsigned = {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}
    other_secret = {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}
    sha1 = {**headers, "X-Hub-Signature": headers["X-Hub-Signature-256"].replace("sha256", "sha1")}
    del sha1["X-Hub-Signature-256"]
    for content, sent_headers in ((bytes(flipped), headers), (body, unsigned), (body, other_secret), (body, sha1)):
        answer = await bot_http.post(path, content=content, headers=sent_headers)
        assert answer.status_code == 403
    assert intake.batches == []
    assert meta.requests() == []  # not even a profile look-up for a forged delivery


async def test_a_body_over_one_mebibyte_is_refused_and_malformed_json_is_a_400(
        meta: FakeMeta, bot_http: httpx.AsyncClient, intake: Intake) -> None:
    _, small, _ = meta.customer_says("hi")
    huge = small[:-2] + b',"pad":"' + b"x" * (1024 * 1024) + b'"}]}'
    path, _, headers = meta.deliver("page")
    headers["X-Hub-Signature-256"] = sign(meta.app_secret, huge)
    answer = await bot_http.post(path, content=huge, headers=headers)
    assert answer.status_code == 413

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: refused while reading
        for start in range(0, len(huge), 65536):
            yield huge[start:start + 65536]

    answer = await bot_http.post(path, content=streamed(), headers=headers)
    assert answer.status_code == 413

    for broken in (b'{"object":"page","entry":[', b"\xff\xfe{}", b'"just a string"'):
        answer = await bot_http.post(path, content=broken,
                                     headers={"X-Hub-Signature-256": sign(meta.app_secret, broken)})
        assert answer.status_code == 400
    assert intake.batches == []


async def test_several_entries_and_events_make_one_ingest_call_without_echoes(
        meta: FakeMeta, bot_http: httpx.AsyncClient, intake: Intake) -> None:
    jane = meta.messenger_entry("my parcel is late", name="Jane Doe", handle="@jane")
    sam = meta.messenger_entry("wrong size", name="Sam Roe", handle="@sam")
    sam["messaging"].append(meta.messenger_entry("order 4711", name="Sam Roe", handle="@sam")["messaging"][0])
    echo = meta.echo_entry("Hi Jane, we are on it", to=meta.user_id("@jane"))
    comment = meta.comment_entry("Does this come in blue?", name="Kim Lee")
    own_comment = meta.comment_entry("Yes it does!", from_page=True)
    answer = await post(bot_http, meta.deliver("page", jane, sam, echo, comment, own_comment))
    assert answer.status_code == 200
    (batch,) = intake.batches
    assert [(i.kind, i.text, i.author.name) for i in batch] == [
        (Kind.DM, "my parcel is late", "Jane Doe"), (Kind.DM, "wrong size", "Sam Roe"),
        (Kind.DM, "order 4711", "Sam Roe"), (Kind.COMMENT, "Does this come in blue?", "Kim Lee")]


async def test_instagram_messages_comments_and_mentions_arrive_with_their_text(
        meta: FakeMeta, bot_http: httpx.AsyncClient, intake: Intake) -> None:
    dm = meta.messenger_entry(WORLD, name="Jane Doe", handle="@jane.doe", platform="instagram")
    comment = meta.ig_comment_entry("Is this vegan? 🌱", username="kim")
    mention = meta.ig_mention_entry(f"@acme {WORLD}", username="sam")
    caption = meta.ig_mention_entry("Unboxing my @acme order", username="lee", in_caption=True)
    hidden = meta.ig_mention_entry("you will never read me", username="ghost", readable=False)
    answer = await post(bot_http, meta.deliver("instagram", dm, comment, mention, caption, hidden))
    assert answer.status_code == 200
    (batch,) = intake.batches
    assert [(i.platform, i.kind, i.text) for i in batch] == [
        ("instagram", Kind.DM, WORLD), ("instagram", Kind.COMMENT, "Is this vegan? 🌱"),
        ("instagram", Kind.MENTION, f"@acme {WORLD}"), ("instagram", Kind.MENTION, "Unboxing my @acme order"),
        ("instagram", Kind.MENTION, MENTION_UNREADABLE)]
    dm_item, comment_item, mention_item, caption_item, hidden_item = batch
    assert dm_item.author.name == "Jane Doe" and dm_item.author.handle == "@jane.doe"
    assert comment_item.author.handle == "@kim"
    assert mention_item.author.handle == "@sam" and mention_item.platform_id == mention["changes"][0]["value"][
        "comment_id"]
    assert caption_item.url is not None and caption_item.url.startswith("https://www.instagram.com/p/")
    assert hidden_item.reply_to["media_id"] == hidden["changes"][0]["value"]["media_id"]
    lookups = [r["query"]["fields"] for r in meta.requests() if r["path"] == f"/{meta.instagram['id']}"]
    comment_id = mention["changes"][0]["value"]["comment_id"]
    assert f"mentioned_comment.comment_id({comment_id}){{id,text,username,timestamp}}" in lookups
    assert len(lookups) == 3


async def test_when_graph_is_down_items_are_kept_without_name_or_with_a_placeholder(
        meta: FakeMeta, bot_http: httpx.AsyncClient, intake: Intake) -> None:
    meta.fail_next("", status=503, times=10)
    dm = meta.messenger_entry("anyone there?", name="Jane Doe", handle="@jane", platform="instagram")
    mention = meta.ig_mention_entry("@acme help", username="sam")
    answer = await post(bot_http, meta.deliver("instagram", dm, mention))
    assert answer.status_code == 200
    dm_item, mention_item = intake.items
    assert dm_item.text == "anyone there?" and dm_item.author.name == "" and dm_item.author.id
    assert mention_item.text == MENTION_UNREADABLE


async def test_a_slow_look_up_gives_up_in_time_and_keeps_the_item(
        meta: FakeMeta, bot_http: httpx.AsyncClient, intake: Intake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("adapters.meta.source.LOOKUP_TIMEOUT_S", 0.3)
    meta.delay_next(f"/{meta.instagram['id']}", 2.0)
    started = time.monotonic()
    answer = await post(bot_http, meta.deliver("instagram", meta.ig_mention_entry("@acme hi", username="sam")))
    assert answer.status_code == 200 and time.monotonic() - started < 1.5
    assert [i.text for i in intake.items] == [MENTION_UNREADABLE]


async def test_the_answer_waits_until_ingest_has_committed(
        meta: FakeMeta, bot_http: httpx.AsyncClient, intake: Intake) -> None:
    intake.gate = asyncio.Event()
    pending = asyncio.create_task(post(bot_http, meta.customer_says("hello?")))
    await asyncio.sleep(0.3)
    assert not pending.done()
    intake.gate.set()
    assert (await pending).status_code == 200
    assert [i.text for i in intake.items] == ["hello?"]

    intake.gate, intake.fail = None, True  # not committed: no 2xx, so Meta delivers again
    assert (await post(bot_http, meta.customer_says("again?"))).status_code == 500


async def test_deliveries_without_customer_messages_are_acknowledged_without_ingest(
        meta: FakeMeta, bot_http: httpx.AsyncClient, intake: Intake) -> None:
    echo = meta.echo_entry("Thanks!", to="2400000000000009")
    for delivery in (meta.deliver("page", echo), meta.deliver("permissions"), meta.deliver("page")):
        assert (await post(bot_http, delivery)).status_code == 200
    assert intake.batches == []


# ------------------------------------------------------------------------------------------ replies: DMs

async def inbound(meta: FakeMeta, parts: SourceParts, delivery: tuple[str, bytes, dict[str, str]]) -> list[Item]:
    intake = Intake()
    assert parts.webhook is not None
    app = Starlette(routes=[Route(WEBHOOK_PATH, parts.webhook(intake), methods=["GET", "POST"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://bot.test") as client:
        assert (await post(client, delivery)).status_code == 200
    return intake.items


async def test_a_messenger_reply_within_24_hours_is_a_response_with_every_character(
        meta: FakeMeta, parts: SourceParts, sender: MetaSender) -> None:
    (item,) = await inbound(meta, parts, meta.customer_says("Wo ist mein Paket?"))
    assert sender.rule(reply_to=item.reply_to, last_inbound_at=item.created_at).notice is None
    delivery = await sender.send(reply_to=item.reply_to, text=f"Hallo Jane, {WORLD}", idempotency_key="k1")
    (record,) = meta.sent_records()
    assert record["text"] == f"Hallo Jane, {WORLD}" and meta.sent() == [f"Hallo Jane, {WORLD}"]
    assert record["to"] == item.author.id and record["messaging_type"] == "RESPONSE" and record["tag"] is None
    assert delivery.platform_id == record["id"] and delivery.url is None
    (request,) = graph_posts(meta)
    assert request["path"] == f"/{meta.page['id']}/messages"
    assert request["body"] == {"recipient": {"id": item.author.id}, "message": {"text": f"Hallo Jane, {WORLD}"},
                               "messaging_type": "RESPONSE"}
    assert request["authorization"] == f"Bearer {meta.page_token}"
    assert request["query"] == {"appsecret_proof": appsecret_proof(meta.app_secret, meta.page_token)}


async def test_after_24_hours_the_reply_is_tagged_human_agent_and_after_7_days_refused(
        meta: FakeMeta, parts: SourceParts, http: httpx.AsyncClient) -> None:
    (item,) = await inbound(meta, parts, meta.customer_says("hello?"))
    wrote = item.created_at

    def sender_at(later: timedelta) -> MetaSender:
        found = make(config=config_for(meta), env=env_for(meta), http=http, now=lambda: wrote + later).senders["meta"]
        assert isinstance(found, MetaSender)
        return found

    late = sender_at(timedelta(hours=30))
    rule = late.rule(reply_to=item.reply_to, last_inbound_at=wrote)
    assert rule.notice == WINDOW_NOTICE and rule.refusal is None
    meta.last_wrote(item.author.id, time.time() - 30 * 3600)
    await late.send(reply_to=item.reply_to, text="Sorry for the wait!", idempotency_key="k2")
    (record,) = meta.sent_records()
    assert (record["messaging_type"], record["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")

    too_late = sender_at(timedelta(days=8))
    rule = too_late.rule(reply_to=item.reply_to, last_inbound_at=wrote)
    assert rule.refusal == ("The customer last wrote more than 7 days ago: Messenger allows no message until they "
                            "write again.")
    with pytest.raises(SendError) as refused:
        await too_late.send(reply_to=item.reply_to, text="Still there?", idempotency_key="k3")
    assert refused.value.permanent and "7 days" in refused.value.message
    assert len(graph_posts(meta)) == 1  # nothing more reached Meta

    # The rule follows the case's last inbound time when the core gives one.
    assert too_late.rule(reply_to=item.reply_to, last_inbound_at=wrote + timedelta(days=7, hours=1)).notice is None


async def test_when_meta_says_the_window_is_closed_the_failure_is_permanent_and_clear(
        meta: FakeMeta, parts: SourceParts, sender: MetaSender) -> None:
    (item,) = await inbound(meta, parts, meta.customer_says("hello?"))
    meta.last_wrote(item.author.id, time.time() - 2 * 86400)  # Meta knows better than our clock
    with pytest.raises(SendError) as failed:
        await sender.send(reply_to=item.reply_to, text="Hi!", idempotency_key="k4")
    assert failed.value.permanent and not isinstance(failed.value, CredentialsError)
    assert "outside the messaging window" in failed.value.message and "code 10/2018278" in failed.value.message
    assert meta.sent() == []


async def test_text_limits_per_kind_are_checked_before_sending(meta: FakeMeta, parts: SourceParts,
                                                               sender: MetaSender) -> None:
    (fb,) = await inbound(meta, parts, meta.customer_says("hi"))
    (ig,) = await inbound(meta, parts, meta.deliver("instagram", meta.messenger_entry(
        "hi", name="Kim", handle="@kim", platform="instagram")))
    assert sender.check_text(reply_to=fb.reply_to, text="x" * 2000) is None
    assert sender.check_text(reply_to=fb.reply_to, text="x" * 2001) == \
        "Messenger messages take up to 2000 characters; this reply has 2001."
    assert sender.check_text(reply_to=ig.reply_to, text="ä" * 500) is None  # 1000 bytes
    assert "1000 bytes" in (sender.check_text(reply_to=ig.reply_to, text="ä" * 501) or "")
    assert sender.check_text(reply_to=fb.reply_to, text="   ") == "The reply is empty."
    comment = {"via": "meta", "kind": "comment", "platform": "facebook", "comment_id": "1_2"}
    assert sender.check_text(reply_to=comment, text="x" * 8000) is None
    assert sender.check_text(reply_to=comment, text="x" * 8001) is not None
    assert sender.check_text(reply_to={**comment, "platform": "instagram"}, text="x" * 2201) is not None
    assert sender.check_text(reply_to={**comment, "mode": "private"}, text="x" * 2001) is not None
    with pytest.raises(SendError) as refused:
        await sender.send(reply_to=fb.reply_to, text="x" * 2001, idempotency_key="k5")
    assert refused.value.permanent and graph_posts(meta) == []


async def test_an_instagram_dm_reply_and_its_window_notice(meta: FakeMeta, parts: SourceParts,
                                                           http: httpx.AsyncClient) -> None:
    (item,) = await inbound(meta, parts, meta.deliver("instagram", meta.messenger_entry(
        "Größe 38 bitte", name="Kim Lee", handle="@kim", platform="instagram")))
    late = make(config=config_for(meta), env=env_for(meta), http=http,
                now=lambda: item.created_at + timedelta(hours=25)).senders["meta"]
    assert isinstance(late, MetaSender)
    assert late.rule(reply_to=item.reply_to, last_inbound_at=None).notice == (
        "The customer last wrote more than 24 hours ago: Instagram allows a reply tagged HUMAN_AGENT up to 7 days")
    sender = make(config=config_for(meta), env=env_for(meta), http=http).senders["meta"]
    await sender.send(reply_to=item.reply_to, text="Größe 38 ist unterwegs 📦", idempotency_key="k6")
    assert meta.sent() == ["Größe 38 ist unterwegs 📦"]
    assert meta.sent_records()[0]["to"] == item.author.id


async def test_without_page_id_the_send_api_is_called_on_me(meta: FakeMeta, http: httpx.AsyncClient) -> None:
    parts = make(config=config_for(meta, page_id=None), env=env_for(meta), http=http)
    (item,) = await inbound(meta, parts, meta.customer_says("hi"))
    await parts.senders["meta"].send(reply_to=item.reply_to, text="Hello!", idempotency_key="k7")
    assert [r["path"] for r in graph_posts(meta)] == ["/me/messages"]


# ------------------------------------------------------------------------------------------ replies: comments

async def test_a_facebook_comment_is_answered_publicly_under_the_comment(meta: FakeMeta, parts: SourceParts,
                                                                          sender: MetaSender) -> None:
    top = meta.comment_entry("Does this come in blue?", name="Kim Lee")
    (item,) = await inbound(meta, parts, meta.deliver("page", top))
    assert sender.rule(reply_to=item.reply_to, last_inbound_at=None).notice is None
    delivery = await sender.send(reply_to=item.reply_to, text=f"Yes! {WORLD}", idempotency_key="k8")
    (request,) = graph_posts(meta)
    assert request["path"] == f"/{item.platform_id}/comments" and request["body"] == {"message": f"Yes! {WORLD}"}
    assert meta.sent() == [f"Yes! {WORLD}"]
    post_id = top["changes"][0]["value"]["post_id"]
    page, _, post = post_id.partition("_")
    assert delivery.platform_id is not None
    assert delivery.url == (f"https://www.facebook.com/{page}/posts/{post}"
                            f"?comment_id={delivery.platform_id.rpartition('_')[2]}")

    # A reply to a reply is answered under the thread's top-level comment.
    reply = meta.comment_entry("and in red?", name="Kim Lee", post_id=post_id, parent_id=item.platform_id)
    (second,) = await inbound(meta, parts, meta.deliver("page", reply))
    assert second.parent_id == item.platform_id
    await sender.send(reply_to=second.reply_to, text="Red too.", idempotency_key="k9")
    assert graph_posts(meta)[-1]["path"] == f"/{item.platform_id}/comments"


async def test_an_instagram_comment_reply_goes_to_the_top_level_comment(meta: FakeMeta, parts: SourceParts,
                                                                         sender: MetaSender) -> None:
    top = meta.ig_comment_entry("Is this vegan?", username="kim")
    (item,) = await inbound(meta, parts, meta.deliver("instagram", top))
    await sender.send(reply_to=item.reply_to, text="It is 🌱", idempotency_key="k10")
    reply = meta.ig_comment_entry("thanks! and gluten free?", username="kim", parent_id=item.platform_id,
                                  media_id=top["changes"][0]["value"]["media"]["id"])
    (second,) = await inbound(meta, parts, meta.deliver("instagram", reply))
    delivery = await sender.send(reply_to=second.reply_to, text="Yes, that too.", idempotency_key="k11")
    assert [r["path"] for r in graph_posts(meta)] == [f"/{item.platform_id}/replies"] * 2
    assert meta.sent() == ["It is 🌱", "Yes, that too."] and delivery.platform_id


async def test_instagram_mentions_are_answered_through_the_mentions_edge(meta: FakeMeta, parts: SourceParts,
                                                                         sender: MetaSender) -> None:
    in_comment = meta.ig_mention_entry("@acme is the sale still on?", username="sam")
    in_caption = meta.ig_mention_entry("My @acme haul", username="lee", in_caption=True)
    comment_item, caption_item = await inbound(meta, parts, meta.deliver("instagram", in_comment, in_caption))
    await sender.send(reply_to=comment_item.reply_to, text="Until Sunday!", idempotency_key="k12")
    await sender.send(reply_to=caption_item.reply_to, text="Looks great, Lee!", idempotency_key="k13")
    first, second = graph_posts(meta)
    value = in_comment["changes"][0]["value"]
    assert first["path"] == second["path"] == f"/{meta.instagram['id']}/mentions"
    assert first["body"] == {"media_id": value["media_id"], "comment_id": value["comment_id"],
                             "message": "Until Sunday!"}
    assert second["body"] == {"media_id": in_caption["changes"][0]["value"]["media_id"],
                              "message": "Looks great, Lee!"}
    assert meta.sent() == ["Until Sunday!", "Looks great, Lee!"]


async def test_a_private_reply_to_a_comment_goes_through_the_send_api_once(
        meta: FakeMeta, parts: SourceParts, sender: MetaSender, http: httpx.AsyncClient) -> None:
    (item,) = await inbound(meta, parts, meta.deliver("page", meta.comment_entry(
        "My card was charged twice!", name="Jane Doe")))
    private = {**item.reply_to, "mode": "private"}
    rule = sender.rule(reply_to=private, last_inbound_at=None)
    assert rule.refusal is None and rule.notice is not None and "private reply" in rule.notice
    delivery = await sender.send(reply_to=private, text="Hi Jane, please send us your order number.",
                                 idempotency_key="k14")
    (request,) = graph_posts(meta)
    assert request["path"] == f"/{meta.page['id']}/messages"
    assert request["body"] == {"recipient": {"comment_id": item.platform_id},
                               "message": {"text": "Hi Jane, please send us your order number."}}
    assert meta.sent_records()[0]["kind"] == "private_reply" and delivery.platform_id

    with pytest.raises(SendError) as again:  # Meta allows one private reply per comment
        await sender.send(reply_to=private, text="Hello again", idempotency_key="k15")
    assert again.value.permanent and "Activity already replied to" in again.value.message

    old = make(config=config_for(meta), env=env_for(meta), http=http,
               now=lambda: item.created_at + timedelta(days=8)).senders["meta"]
    assert isinstance(old, MetaSender)
    assert "7 days" in (old.rule(reply_to=private, last_inbound_at=None).refusal or "")
    with pytest.raises(SendError):
        await old.send(reply_to=private, text="late", idempotency_key="k16")
    assert len(graph_posts(meta)) == 2


# ------------------------------------------------------------------------------------------ Graph errors

async def test_a_revoked_token_is_a_credentials_error_naming_the_variable(
        meta: FakeMeta, parts: SourceParts, sender: MetaSender) -> None:
    (item,) = await inbound(meta, parts, meta.customer_says("hi"))
    for status in (401, 400):  # Meta answers code 190 with either
        meta.revoke(status=status)
        with pytest.raises(CredentialsError) as refused:
            await sender.send(reply_to=item.reply_to, text="Hello", idempotency_key="k17")
        assert "META_PAGE_TOKEN" in refused.value.message and "code 190/460" in refused.value.message
        assert meta.page_token not in refused.value.message and meta.app_secret not in refused.value.message
        assert refused.value.permanent


async def test_rate_limits_carry_metas_regain_time_and_pause_further_calls(
        meta: FakeMeta, parts: SourceParts, sender: MetaSender) -> None:
    (item,) = await inbound(meta, parts, meta.customer_says("hi"))
    meta.throttle("/", code=613, minutes=3)
    with pytest.raises(SendError) as limited:
        await sender.send(reply_to=item.reply_to, text="Hello", idempotency_key="k18")
    assert not limited.value.permanent and limited.value.retry_after == 180
    posts = len(graph_posts(meta))
    with pytest.raises(SendError) as paused:  # the client stays away without asking Meta
        await sender.send(reply_to=item.reply_to, text="Hello", idempotency_key="k18")
    assert not paused.value.permanent and paused.value.retry_after and 170 < paused.value.retry_after <= 180
    assert len(graph_posts(meta)) == posts


@pytest.mark.parametrize(("status", "code"), [(429, 4), (400, 4), (400, 17), (400, 32), (400, 80001)])
async def test_every_throttling_code_is_retried_later(meta: FakeMeta, http: httpx.AsyncClient, status: int,
                                                      code: int) -> None:
    client = GraphClient(http=http, graph_url=meta.graph_url, token=meta.page_token, app_secret=meta.app_secret)
    meta.throttle("/me", code=code, status=status, minutes=1)
    with pytest.raises(SendError) as limited:
        await client.node("me", "id,name", "Meta Page")
    assert not limited.value.permanent and limited.value.retry_after == 60


async def test_outages_are_retried_and_bad_requests_are_final(meta: FakeMeta, parts: SourceParts,
                                                              sender: MetaSender) -> None:
    (item,) = await inbound(meta, parts, meta.customer_says("hi"))
    meta.fail_next("/", status=500)
    with pytest.raises(SendError) as outage:
        await sender.send(reply_to=item.reply_to, text="Hello", idempotency_key="k19")
    assert not outage.value.permanent and outage.value.retry_after is None
    with pytest.raises(SendError) as unknown:
        await sender.send(reply_to={**item.reply_to, "recipient_id": "999"}, text="Hello", idempotency_key="k20")
    assert unknown.value.permanent and "No matching user found" in unknown.value.message


def graph_response(status: int, error: Json | None, headers: dict[str, str] | None = None) -> httpx.Response:
    body = json.dumps({"error": error}).encode() if error is not None else b"<html>Bad gateway</html>"
    return httpx.Response(status, content=body, headers=headers or {},
                          request=httpx.Request("POST", "https://graph.facebook.com/v21.0/me/messages"))


@pytest.mark.parametrize(("code", "subcode", "expected"), [
    (10, None, "Meta refused the permission: (#10) nope"),
    (200, None, "Meta refused the permission: (#10) nope"),
    (230, None, "Meta refused the permission"),
    (551, 1545041, "Meta cannot deliver this to the customer now"),
    (10, 2018108, "outside the messaging window"),
    (100, None, "Meta refused: (#10) nope (code 100, fbtrace_id Abc)"),
])
def test_permission_and_unreachable_errors_are_final_with_metas_message(code: int, subcode: int | None,
                                                                        expected: str) -> None:
    error = {"message": "(#10) nope", "type": "OAuthException", "code": code, "fbtrace_id": "Abc"}
    if subcode:
        error["error_subcode"] = subcode
    mapped = graph_error(graph_response(400, error), "Meta Send API", token_env="META_PAGE_TOKEN")
    assert mapped.permanent and not isinstance(mapped, CredentialsError) and expected in mapped.message


def test_usage_headers_give_the_pause() -> None:
    buc = {"X-Business-Use-Case-Usage": json.dumps({"104857600000001": [
        {"type": "pages", "call_count": 100, "total_cputime": 10, "total_time": 10,
         "estimated_time_to_regain_access": 7}]})}
    assert usage_pause(graph_response(200, None, buc)) == 420
    assert usage_pause(graph_response(200, None, {"X-App-Usage": '{"call_count": 100, "total_time": 3}'})) == 60
    assert usage_pause(graph_response(200, None, {"X-App-Usage": '{"call_count": 42}'})) is None
    assert usage_pause(graph_response(200, None, {"X-App-Usage": "not json"})) is None
    limited = graph_error(graph_response(429, None, {"Retry-After": "30"}), "x", token_env="T")
    assert not limited.permanent and limited.retry_after == 30
    transient = graph_error(graph_response(400, {"message": "try later", "code": 1, "is_transient": True}), "x",
                            token_env="T")
    assert not transient.permanent


async def test_the_token_never_appears_in_a_url(meta: FakeMeta, parts: SourceParts, sender: MetaSender) -> None:
    (item,) = await inbound(meta, parts, meta.customer_says("hi"))
    await sender.send(reply_to=item.reply_to, text="Hello", idempotency_key="k21")
    assert meta.requests()
    for request in meta.requests():
        assert "access_token" not in request["query"] and meta.page_token not in json.dumps(request["query"])


# ------------------------------------------------------------------------------------------ the fake itself

async def test_the_fake_speaks_the_documented_shapes(meta: FakeMeta, http: httpx.AsyncClient) -> None:
    vector = fixture("x_hub_signature_256_vector.json")
    assert sign(vector["app_secret"], vector["raw_body"].encode()) == vector["headers"]["X-Hub-Signature-256"]
    _, body, _ = meta.customer_says("héllo", name="Jane Doe", handle="@jane")
    assert b"h\\u00e9llo" in body  # escaped like Meta's deliveries

    documented_event = fixture("messenger_message_text_fixture.json")["entry"][0]["messaging"][0]
    event = meta.messenger_entry("hi")["messaging"][0]
    assert set(event) == set(documented_event) and set(event["message"]) <= set(documented_event["message"])
    documented_feed = fixture("page_feed_comment.json")["entry"][0]["changes"][0]["value"]
    assert set(meta.comment_entry("hi")["changes"][0]["value"]) == set(documented_feed)
    documented_ig = fixture("instagram_comment_doc.json")[0]["entry"][0]["changes"][0]["value"]
    assert set(meta.ig_comment_entry("hi")["changes"][0]["value"]) == set(documented_ig)
    documented_mention = fixture("instagram_mention_comment_doc.json")[0]["entry"][0]["changes"][0]["value"]
    assert set(meta.ig_mention_entry("hi")["changes"][0]["value"]) == set(documented_mention)

    proof = {"appsecret_proof": appsecret_proof(meta.app_secret, meta.page_token)}
    auth = {"Authorization": f"Bearer {meta.page_token}"}
    psid = meta.user_id("@jane")
    sent = await http.post(f"{meta.graph_url}/me/messages", params=proof, headers=auth,
                           json=fixture("send_api_request_response.json")["request"]["equivalent_json_body"]
                           | {"recipient": {"id": psid}})
    assert set(sent.json()) == set(fixture("send_api_request_response.json")["response"])
    form = fixture("send_api_request_response.json")["request"]["form"]
    as_form = await http.post(f"{meta.graph_url}/{meta.page['id']}/messages", params=proof, headers=auth, data={
        "recipient": json.dumps({"id": psid}), "messaging_type": form["messaging_type"],
        "message": json.dumps({"text": "hello, world"})})
    assert as_form.status_code == 200 and meta.sent() == ["hello, world", "hello, world"]
    unknown = await http.get(f"{meta.graph_url}/nothing-here", params=proof, headers=auth)
    error = unknown.json()["error"]
    assert unknown.status_code == 400 and set(error) == {"message", "type", "code", "error_subcode", "fbtrace_id"}
    no_proof = await http.get(f"{meta.graph_url}/me", headers=auth)
    assert no_proof.status_code == 400 and "appsecret_proof" in no_proof.json()["error"]["message"]
    assert (await http.get(f"{meta.graph_url}/me", params=proof)).json()["error"]["code"] == 2500


# ------------------------------------------------------------------------------------------ check and make

async def test_check_says_what_works(meta: FakeMeta, parts: SourceParts) -> None:
    assert parts.check is not None
    rows = await parts.check()
    assert all(row.ok for row in rows)
    assert [row.what for row in rows] == ["Meta app secret (META_APP_SECRET)", "Meta verify token (META_VERIFY_TOKEN)",
                                          "Meta Page token (META_PAGE_TOKEN)",
                                          f"Instagram account {meta.instagram['id']}"]
    assert "no call to test it" in rows[0].detail and "Verify and save" in rows[1].detail
    assert rows[2].detail == f"works for Page Acme ({meta.page['id']})"
    assert rows[3].detail == "@acme is reachable with the Page token"
    assert meta.app_secret not in str(rows) and meta.page_token not in str(rows)


async def test_check_says_what_to_fix(meta: FakeMeta, http: httpx.AsyncClient) -> None:
    wrong = make(config=config_for(meta, page_id="999", instagram_id="17841499999999999"), env=env_for(meta),
                 http=http)
    assert wrong.check is not None
    _, _, page_row, ig_row = await wrong.check()
    assert not page_row.ok and f"belongs to Page Acme ({meta.page['id']})" in page_row.detail
    assert f"page_id: '{meta.page['id']}'" in page_row.fix
    assert not ig_row.ok and "instagram_manage_messages" in ig_row.fix

    meta.revoke()
    revoked = make(config=config_for(meta), env=env_for(meta), http=http)
    assert revoked.check is not None
    rows = await revoked.check()
    assert not rows[-1].ok and "META_PAGE_TOKEN" in rows[-1].fix and len(rows) == 3


@pytest.mark.parametrize("missing", ["META_APP_SECRET", "META_VERIFY_TOKEN", "META_PAGE_TOKEN"])
async def test_a_missing_secret_stops_make_with_its_name(meta: FakeMeta, http: httpx.AsyncClient,
                                                         missing: str) -> None:
    env = env_for(meta)
    del env[missing]
    with pytest.raises(ConfigError, match=missing):
        make(config=config_for(meta), env=env, http=http)


# ------------------------------------------------------------------------------------------ the real bot

def bot_config(meta: FakeMeta) -> Json:
    return {
        "slack": {"channel": "C0CASES", "escalation_channel": "C0ESC", "oncall": "U0CAROL"},
        "routes": [{"when": {"platform": "facebook", "kind": "dm"}, "channel": "C0DMS"}],
        "sources": {"meta": {"graph_url": meta.graph_url, "page_id": meta.page["id"],
                             "instagram_id": meta.instagram["id"]}},
    }


@pytest.fixture
async def runtime(database_url: str, fake_slack: FakeSlack, meta: FakeMeta) -> AsyncIterator[Runtime]:
    settings = Settings(database_url=database_url, slack_bot_token="xoxb-test", slack_signing_secret=SIGNING_SECRET,
                        slack_api_url=fake_slack.url)
    built = build(settings, config_from_mapping(bot_config(meta)), env_for(meta), slack_pace=0.02)
    await built.start()
    try:
        yield built
    finally:
        await built.stop()
        built.engine.dispose()


async def card_showing(slack: FakeSlack, text: str, channel: str) -> Json:
    def find() -> Json:
        return next((m for m in slack.messages(channel) if text in shown(m)), {})

    return await slack.wait_for_async(find)


async def test_a_messenger_message_becomes_a_card_and_the_reply_reaches_the_customer_once(
        runtime: Runtime, fake_slack: FakeSlack, meta: FakeMeta) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.web), base_url="https://bot.test") as web:
        assert (await post(web, meta.customer_says(f"Mein Paket fehlt {WORLD}", name="Jane Doe"))).status_code == 200
        card = await card_showing(fake_slack, "Mein Paket fehlt", "C0DMS")
        assert "Facebook DM" in shown(card) and "Jane Doe" in shown(card)

        alice = SlackUser(web, "U0ALICE", "Alice")
        assert (await alice.click(card, "case.reply", channel="C0DMS")).status_code == 200
        await fake_slack.wait_for_async(lambda: fake_slack.calls("views.open"))
        view = next(v for v in fake_slack.views().values() if v.get("callback_id") == "modal.reply")
        block = next(b for b in view["blocks"] if b["type"] == "input")
        assert block["element"]["initial_value"] == "Hi Jane, "
        text = f"Hi Jane, es ist unterwegs 📦 {WORLD}"
        answer = await alice.submit(view, {block["block_id"]: {"reply_text": {"type": "plain_text_input",
                                                                              "value": text}}})
        assert answer.status_code == 200

        await fake_slack.wait_for_async(lambda: meta.sent())
        assert meta.sent() == [text]
        assert meta.sent_records()[0]["messaging_type"] == "RESPONSE"
        await card_showing(fake_slack, "Reply by Alice sent", "C0DMS")

        # Meta echoes the Page's message back: it is not a new case or message.
        echo = meta.echo_entry(text, to=meta.user_id("@jane"))
        assert (await post(web, meta.deliver("page", echo))).status_code == 200
        await asyncio.sleep(0.5)
        assert meta.sent() == [text]
        assert len(fake_slack.messages("C0DMS")) == 1 and fake_slack.messages("C0CASES") == []
        assert find_action(card, "case.claim") is not None


async def test_a_late_messenger_case_shows_the_human_agent_notice_and_refuses_what_messenger_would(
        runtime: Runtime, fake_slack: FakeSlack, meta: FakeMeta) -> None:
    wrote = time.time() - 30 * 3600
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.web), base_url="https://bot.test") as web:
        entry = meta.messenger_entry("Hallo? Niemand da?", name="Jane Doe", handle="@jane", at=wrote)
        assert (await post(web, meta.deliver("page", entry))).status_code == 200
        card = await card_showing(fake_slack, "Niemand da?", "C0DMS")

        alice = SlackUser(web, "U0ALICE", "Alice")
        await alice.click(card, "case.reply", channel="C0DMS")
        await fake_slack.wait_for_async(lambda: fake_slack.calls("views.open"))
        view = next(v for v in fake_slack.views().values() if v.get("callback_id") == "modal.reply")
        assert WINDOW_NOTICE in json.dumps(view["blocks"])
        block = next(b for b in view["blocks"] if b["type"] == "input")

        def typed(value: str) -> dict[str, Any]:
            return {block["block_id"]: {"reply_text": {"type": "plain_text_input", "value": value}}}

        refused = await alice.submit(view, typed("x" * 2001))
        assert refused.json()["errors"] == {
            block["block_id"]: "Messenger messages take up to 2000 characters; this reply has 2001."}
        assert (await alice.submit(view, typed("Hi Jane, sorry for the wait!"))).status_code == 200
        await fake_slack.wait_for_async(lambda: meta.sent())
        (record,) = meta.sent_records()
        assert (record["text"], record["messaging_type"], record["tag"]) == (
            "Hi Jane, sorry for the wait!", "MESSAGE_TAG", "HUMAN_AGENT")
