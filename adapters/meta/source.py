"""Meta as a source: one webhook for Facebook Page comments, Messenger, Instagram comments, mentions and
messages; one sender ("meta") for every kind of answer; read-only checks.

Replies, by the customer message's `reply_to["kind"]`:
- `dm` (Messenger / Instagram): Send API, `messaging_type RESPONSE` within 24 hours of the customer's last
  message, `MESSAGE_TAG` + `HUMAN_AGENT` up to 7 days, nothing after that.
- `comment`: a public reply (Facebook `/{comment-id}/comments`, Instagram `/{comment-id}/replies`), or, with
  `reply_to["mode"] == "private"`, a private reply to the comment through the Send API
  (`recipient {comment_id}`: one per comment, within 7 days of it).
- `mention` (Instagram): `/{ig-user-id}/mentions` on the comment or caption that mentioned the account.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from adapters.meta.client import GraphClient
from adapters.meta.parse import (
    FACEBOOK,
    INSTAGRAM,
    VIA,
    Batch,
    MentionRef,
    epoch,
    facebook_comment_url,
    mention_item,
    parse_payload,
    with_author,
)
from adapters.meta.webhook import meta_webhook
from adapters.source import SourceParts, secret
from bot.config import MetaSource
from bot.core.errors import CredentialsError, SendError
from bot.core.model import Delivery, Item, Kind
from bot.core.ports import Check, ReplyRule, TokenStore

log = logging.getLogger("socialops.meta")

STANDARD_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
PRIVATE_REPLY_WINDOW = timedelta(days=7)
MESSENGER_CHARS = 2000
INSTAGRAM_DM_BYTES = 1000
FACEBOOK_COMMENT_CHARS = 8000
INSTAGRAM_COMMENT_CHARS = 2200
LOOKUP_TIMEOUT_S = 5.0
"""Graph look-ups made while Meta waits for the webhook's answer (it allows about 20 seconds)."""
PROFILE_CACHE = 2000

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def _app_name(platform: str) -> str:
    return "Instagram" if platform == INSTAGRAM else "Messenger"


class MetaSender:
    """Every Meta reply; what it does depends on the customer message it answers (see the module doc)."""

    platform = "meta"
    max_length = FACEBOOK_COMMENT_CHARS
    """The longest any Meta reply can be; `check_text` applies the stricter limit of each kind."""

    def __init__(self, *, client: GraphClient, now: Clock = _now) -> None:
        self._client = client
        self._now = now

    def compose(self, *, reply_to: dict[str, Any], text: str) -> str:
        return text  # replies thread under the comment / land in the conversation: no prefix needed

    @staticmethod
    def _private(reply_to: dict[str, Any]) -> bool:
        return reply_to.get("kind") == "comment" and reply_to.get("mode") == "private"

    def _age(self, reply_to: dict[str, Any], last_inbound_at: datetime | None = None) -> timedelta | None:
        at = last_inbound_at or epoch(reply_to.get("at"))
        if at is None:
            return None
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        return self._now() - at

    def reply_modes(self, reply_to: dict[str, Any]) -> list[tuple[str, str]]:
        """A comment can be answered under it, or privately (Meta's private reply, once per comment)."""
        if reply_to.get("kind") != "comment":
            return []
        return [("public", "Publicly, under the comment"), ("private", "Privately, as a message")]

    def limit_for(self, reply_to: dict[str, Any]) -> int:
        """The reply box's character limit for this conversation (check_text has the exact rule)."""
        platform = str(reply_to.get("platform") or FACEBOOK)
        if reply_to.get("kind") == "dm" or self._private(reply_to):
            return INSTAGRAM_DM_BYTES if platform == INSTAGRAM else MESSENGER_CHARS
        return INSTAGRAM_COMMENT_CHARS if platform == INSTAGRAM else FACEBOOK_COMMENT_CHARS

    def check_text(self, *, reply_to: dict[str, Any], text: str) -> str | None:
        if not text.strip():
            return "The reply is empty."
        platform = str(reply_to.get("platform") or FACEBOOK)
        if reply_to.get("kind") == "dm" or self._private(reply_to):
            if platform == INSTAGRAM:
                size = len(text.encode())
                if size > INSTAGRAM_DM_BYTES:
                    return (f"Instagram messages take up to {INSTAGRAM_DM_BYTES} bytes of UTF-8 text; this reply "
                            f"has {size} (accented letters take 2 bytes, emoji 4).")
                return None
            if len(text) > MESSENGER_CHARS:
                return f"Messenger messages take up to {MESSENGER_CHARS} characters; this reply has {len(text)}."
            return None
        limit = INSTAGRAM_COMMENT_CHARS if platform == INSTAGRAM else FACEBOOK_COMMENT_CHARS
        if len(text) > limit:
            where = "Instagram" if platform == INSTAGRAM else "Facebook"
            return f"{where} comments take up to {limit} characters; this reply has {len(text)}."
        return None

    def rule(self, *, reply_to: dict[str, Any], last_inbound_at: datetime | None) -> ReplyRule:
        app = _app_name(str(reply_to.get("platform") or FACEBOOK))
        if self._private(reply_to):
            age = self._age(reply_to)
            if age is not None and age > PRIVATE_REPLY_WINDOW:
                return ReplyRule(refusal="The comment is more than 7 days old: Meta allows a private reply only "
                                         "within 7 days of it. Answer it publicly instead.")
            return ReplyRule(notice=f"A private reply goes to the customer's {app} inbox, once per comment. "
                                    f"The conversation continues only if they answer.")
        if reply_to.get("kind") != "dm":
            return ReplyRule()
        age = self._age(reply_to, last_inbound_at)
        if age is None or age <= STANDARD_WINDOW:
            return ReplyRule()
        if age <= HUMAN_AGENT_WINDOW:
            return ReplyRule(notice=f"The customer last wrote more than 24 hours ago: {app} allows a reply tagged "
                                    "HUMAN_AGENT up to 7 days")
        return ReplyRule(refusal=f"The customer last wrote more than 7 days ago: {app} allows no message until "
                                 "they write again.")

    async def send(self, *, reply_to: dict[str, Any], text: str, idempotency_key: str) -> Delivery:
        """Graph takes no idempotency key: the outbox makes a single attempt per key."""
        problem = self.check_text(reply_to=reply_to, text=text)
        if problem:
            raise SendError(problem, permanent=True)
        kind = reply_to.get("kind")
        if kind == "dm":
            return await self._send_dm(reply_to, text)
        if kind == "comment" and self._private(reply_to):
            return await self._send_private(reply_to, text)
        if kind == "comment":
            return await self._send_comment(reply_to, text)
        if kind == "mention":
            return await self._send_mention(reply_to, text)
        raise SendError(f"Meta: cannot answer a message of kind {kind!r}", permanent=True)

    async def _send_dm(self, reply_to: dict[str, Any], text: str) -> Delivery:
        recipient = str(reply_to.get("recipient_id") or "")
        if not recipient:
            raise SendError("Meta: the customer's id is unknown", permanent=True)
        rule = self.rule(reply_to=reply_to, last_inbound_at=None)
        if rule.refusal:
            raise SendError(rule.refusal, permanent=True)
        if rule.notice:  # 24 hours to 7 days: a human agent answering late
            answer = await self._client.send_message(recipient={"id": recipient}, text=text,
                                                     messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
        else:
            answer = await self._client.send_message(recipient={"id": recipient}, text=text,
                                                     messaging_type="RESPONSE")
        return Delivery(platform_id=str(answer.get("message_id") or "") or None, url=None)

    async def _send_private(self, reply_to: dict[str, Any], text: str) -> Delivery:
        rule = self.rule(reply_to=reply_to, last_inbound_at=None)
        if rule.refusal:
            raise SendError(rule.refusal, permanent=True)
        answer = await self._client.send_message(recipient={"comment_id": str(reply_to["comment_id"])}, text=text,
                                                 messaging_type=None)
        return Delivery(platform_id=str(answer.get("message_id") or "") or None, url=None)

    async def _send_comment(self, reply_to: dict[str, Any], text: str) -> Delivery:
        target = str(reply_to.get("reply_comment_id") or reply_to.get("comment_id") or "")
        if not target:
            raise SendError("Meta: the comment's id is unknown", permanent=True)
        if reply_to.get("platform") == INSTAGRAM:
            answer = await self._client.instagram_comment_reply(target, text)
            return Delivery(platform_id=str(answer.get("id") or "") or None, url=None)
        answer = await self._client.facebook_comment_reply(target, text)
        reply_id = str(answer.get("id") or "")
        url = answer.get("permalink_url")
        if not (isinstance(url, str) and url.startswith("https://")):
            url = facebook_comment_url(str(reply_to.get("post_id") or ""), reply_id)
        return Delivery(platform_id=reply_id or None, url=url)

    async def _send_mention(self, reply_to: dict[str, Any], text: str) -> Delivery:
        ig_user_id, media_id = str(reply_to.get("ig_user_id") or ""), str(reply_to.get("media_id") or "")
        if not ig_user_id or not media_id:
            raise SendError("Meta: the mention's media id is unknown", permanent=True)
        comment_id = reply_to.get("comment_id")
        answer = await self._client.instagram_mention_reply(
            ig_user_id=ig_user_id, media_id=media_id, comment_id=str(comment_id) if comment_id else None, text=text)
        return Delivery(platform_id=str(answer.get("id") or "") or None, url=None)


class MetaInbound:
    """A delivery's payload → the items to ingest: parsed, Instagram mentions fetched, DM senders named.

    Look-ups that fail leave the item in place (a placeholder text, an id instead of a name) and are logged:
    a customer message is never dropped because Graph was slow.
    """

    def __init__(self, *, client: GraphClient, page_id: str | None, instagram_id: str | None,
                 now: Clock = _now) -> None:
        self._client = client
        self._page_id = page_id
        self._instagram_id = instagram_id
        self._now = now
        self._profiles: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()

    async def collect(self, payload: Any) -> list[Item]:
        batch: Batch = parse_payload(payload, page_id=self._page_id, instagram_id=self._instagram_id,
                                     now=self._now())
        senders = sorted({(i.platform, i.author.id) for i in batch.items if i.kind == Kind.DM})
        mentions, profiles = await asyncio.gather(
            asyncio.gather(*(self._mention(ref) for ref in batch.mentions)),
            asyncio.gather(*(self._profile(platform, user) for platform, user in senders)))
        names = dict(zip(senders, profiles, strict=True))
        items = [i if i.kind != Kind.DM else with_author(i, name=names[i.platform, i.author.id][0],
                                                          handle=names[i.platform, i.author.id][1])
                 for i in batch.items]
        return items + list(mentions)

    async def _mention(self, ref: MentionRef) -> Item:
        found: dict[str, Any] | None = None
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT_S):
                if ref.comment_id:
                    found = await self._client.mentioned_comment(ref.ig_user_id, ref.comment_id)
                else:
                    found = await self._client.mentioned_media(ref.ig_user_id, ref.media_id)
        except (SendError, TimeoutError) as error:
            log.warning("Instagram mention %s: could not fetch its text (%s); kept with a placeholder",
                        ref.comment_id or ref.media_id, getattr(error, "message", "timed out"))
        return mention_item(ref, found or None)

    async def _profile(self, platform: str, user_id: str) -> tuple[str, str]:
        """(name, handle) of a Messenger / Instagram sender, remembered for the next messages."""
        key = (platform, user_id)
        if key in self._profiles:
            self._profiles.move_to_end(key)
            return self._profiles[key]
        fields = "name,username" if platform == INSTAGRAM else "first_name,last_name"
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT_S):
                found = await self._client.node(user_id, fields, f"{_app_name(platform)} profile")
        except (SendError, TimeoutError) as error:
            log.info("%s profile of %s not available (%s)", _app_name(platform), user_id,
                     getattr(error, "message", "timed out"))
            return "", ""
        if platform == INSTAGRAM:
            username = str(found.get("username") or "")
            profile = (str(found.get("name") or ""), f"@{username}" if username else "")
        else:
            name = " ".join(str(found.get(k) or "") for k in ("first_name", "last_name")).strip()
            profile = (name or str(found.get("name") or ""), "")
        self._profiles[key] = profile
        while len(self._profiles) > PROFILE_CACHE:
            self._profiles.popitem(last=False)
        return profile


async def check(*, client: GraphClient, config: MetaSource) -> list[Check]:
    rows = [
        Check(what=f"Meta app secret ({config.app_secret_env})", ok=True,
              detail="set. Meta offers no call to test it: a wrong one shows as refused (403) webhook deliveries",
              fix="if deliveries are refused, copy App secret from the app's Settings > Basic again"),
        Check(what=f"Meta verify token ({config.verify_token_env})", ok=True,
              detail="set. Meta checks it when you click 'Verify and save' on the app's Webhooks page",
              fix="use the same value on the Webhooks page, callback URL https://<your host>/webhooks/meta"),
    ]
    try:
        page = await client.node("me", "id,name", "Meta Page")
    except CredentialsError as error:
        rows.append(Check(what=f"Meta Page token ({config.page_token_env})", ok=False, detail=error.message,
                          fix=f"create a Page access token with pages_messaging, pages_manage_engagement and "
                              f"pages_read_engagement and put it in {config.page_token_env}"))
        return rows
    except SendError as error:
        rows.append(Check(what=f"Meta Page token ({config.page_token_env})", ok=False, detail=error.message,
                          fix="try again later; if it persists check the graph_url and the token"))
        return rows
    page_id, name = str(page.get("id") or ""), str(page.get("name") or "")
    if config.page_id and config.page_id != page_id:
        rows.append(Check(what=f"Meta Page token ({config.page_token_env})", ok=False,
                          detail=f"the token belongs to Page {name} ({page_id}), not to page_id {config.page_id}",
                          fix=f"use the Page access token of Page {config.page_id}, or set page_id: '{page_id}'"))
    else:
        rows.append(Check(what=f"Meta Page token ({config.page_token_env})", ok=True,
                          detail=f"works for Page {name} ({page_id})",
                          fix="" if config.page_id else f"set page_id: '{page_id}' so replies use /{page_id}/messages"))
    if config.instagram_id:
        try:
            account = await client.node(config.instagram_id, "id,username", "Instagram account")
        except SendError as error:
            rows.append(Check(what=f"Instagram account {config.instagram_id}", ok=False, detail=error.message,
                              fix="connect the Instagram professional account to the Page and grant instagram_basic, "
                                  "instagram_manage_comments and instagram_manage_messages"))
        else:
            rows.append(Check(what=f"Instagram account {config.instagram_id}", ok=True,
                              detail=f"@{account.get('username') or '?'} is reachable with the Page token"))
    return rows


def make(*, config: MetaSource, env: Mapping[str, str], http: httpx.AsyncClient,
         now: Clock = _now,
         store: TokenStore | None = None) -> SourceParts:
    app_secret = secret(env, config.app_secret_env, "sources.meta.app_secret_env")
    verify_token = secret(env, config.verify_token_env, "sources.meta.verify_token_env")
    token = secret(env, config.page_token_env, "sources.meta.page_token_env")
    client = GraphClient(http=http, graph_url=config.graph_url, token=token, app_secret=app_secret,
                         token_env=config.page_token_env, page_id=config.page_id)
    inbound = MetaInbound(client=client, page_id=config.page_id, instagram_id=config.instagram_id, now=now)

    async def run_check() -> list[Check]:
        return await check(client=client, config=config)

    return SourceParts(
        name="meta", senders={VIA: MetaSender(client=client, now=now)},
        webhook=meta_webhook(app_secret=app_secret, verify_token=verify_token, collect=inbound.collect),
        check=run_check,
    )


__all__ = ["MetaInbound", "MetaSender", "check", "make"]
