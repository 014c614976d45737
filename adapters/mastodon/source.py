"""Mastodon as a source: a polled feed of mentions with a stored cursor, and a sender for replies and public
statements."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx

from adapters.mastodon.client import MastodonClient
from adapters.mastodon.parse import id_key, parse_notification
from adapters.source import SourceParts, secret
from bot.config import MastodonSource
from bot.core.errors import SendError
from bot.core.model import Delivery, Item
from bot.core.ports import Check, Page, TokenStore

log = logging.getLogger("socialops.mastodon")
CURSOR = "mastodon:notifications"


class MastodonSender:
    platform = "mastodon"

    def __init__(self, *, client: MastodonClient, max_length: int) -> None:
        self._client = client
        self.max_length = max_length
        self.announce_limit = max_length

    def compose(self, *, reply_to: dict[str, Any], text: str) -> str:
        """A reply must name the customer itself, or Mastodon does not thread or notify it."""
        acct = str(reply_to.get("acct") or "")
        prefix = f"@{acct} " if acct and not text.startswith(f"@{acct}") else ""
        return prefix + text

    async def send(self, *, reply_to: dict[str, Any], text: str, idempotency_key: str) -> Delivery:
        status_id = reply_to.get("status_id")
        if not status_id:
            raise SendError("the customer's status id is unknown", permanent=True)
        visibility = str(reply_to.get("visibility") or "public")
        status = await self._client.post_status(
            status=self.compose(reply_to=reply_to, text=text), in_reply_to_id=str(status_id),
            visibility="direct" if visibility == "direct" else visibility, idempotency_key=idempotency_key)
        return Delivery(platform_id=str(status.get("id")), url=status.get("url") or status.get("uri"))

    async def announce(self, *, text: str, idempotency_key: str) -> Delivery:
        """A public status of the brand's own (no reply target, no @acct prefix), with the same
        Idempotency-Key protection as a reply."""
        status = await self._client.post_status(status=text, in_reply_to_id=None, visibility="public",
                                                idempotency_key=idempotency_key)
        return Delivery(platform_id=str(status.get("id")), url=status.get("url") or status.get("uri"))


class MastodonFeed:
    """Mention notifications newer than the stored cursor, oldest first. The first run takes the newest page
    (not the account's whole history)."""

    key = CURSOR

    def __init__(self, *, client: MastodonClient, brand_acct: str = "") -> None:
        self._client = client
        self._brand = brand_acct

    async def fetch(self, cursor: str | None) -> Page:
        page = await self._client.notifications(min_id=cursor)
        if not page:
            return Page(items=[], cursor=None)
        page.sort(key=lambda n: id_key(str(n.get("id", ""))))
        items: list[Item] = [i for n in page if (i := parse_notification(n, brand_acct=self._brand))]
        return Page(items=items, cursor=str(page[-1]["id"]), more=cursor is not None)


def make(*, config: MastodonSource, env: Mapping[str, str], http: httpx.AsyncClient,
         store: TokenStore | None = None) -> SourceParts:
    token = secret(env, config.token_env, "sources.mastodon.token_env")
    client = MastodonClient(http=http, base_url=config.base_url, token=token)

    async def check() -> list[Check]:
        try:
            account = await client.verify_credentials()
        except SendError as error:
            return [Check("Mastodon token", False, error.message, f"set {config.token_env} to a token with "
                          "read:notifications and write:statuses")]
        return [Check("Mastodon token", True, f"@{account.get('acct', '?')} on {config.base_url}")]

    return SourceParts(name="mastodon", senders={"mastodon": MastodonSender(client=client,
                                                                             max_length=config.max_length)},
                       feeds=[MastodonFeed(client=client)], every=config.poll_every, check=check)
