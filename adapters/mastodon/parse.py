"""Mastodon notifications → Items. Pure: no I/O.

`content` is HTML; ids are strings (compare them as numbers); a direct-visibility mention is a DM.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

from bot.core.model import Author, Item, Kind


class _Text(HTMLParser):
    """Text and line structure only. Mastodon hides parts of long links in `invisible` spans: the
    whole text is kept, so a link reads as the full URL the customer typed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "p" and self.parts:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """Mastodon's HTML as the customer typed it: paragraphs and line breaks kept, entities decoded once."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts).strip()


def id_key(status_id: str) -> tuple[int, str]:
    """Order Mastodon ids: numeric strings by value, anything else after them by text."""
    return (int(status_id), "") if status_id.isdigit() else (1 << 64, status_id)


def _time(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)


def parse_notification(notification: dict[str, Any], *, brand_acct: str = "") -> Item | None:
    """A mention notification → an Item; other types (favourites, follows…) → None."""
    if notification.get("type") != "mention":
        return None
    status = notification.get("status")
    account = notification.get("account") or (status or {}).get("account")
    if not isinstance(status, dict) or not isinstance(account, dict):
        return None
    acct = str(account.get("acct") or account.get("username") or "")
    visibility = str(status.get("visibility") or "public")
    is_dm = visibility == "direct"
    text = html_to_text(str(status.get("content") or ""))
    if status.get("spoiler_text"):
        text = f"[CW: {status['spoiler_text']}]\n{text}"
    status_id = str(status["id"])
    author = Author(id=str(account.get("id") or acct), name=str(account.get("display_name") or ""),
                    handle=f"@{acct}", followers=account.get("followers_count"))
    others = [str(m.get("acct")) for m in status.get("mentions") or []
              if isinstance(m, dict) and m.get("acct") not in (acct, brand_acct)]
    parent = status.get("in_reply_to_id")
    return Item(
        platform="mastodon", platform_id=status_id, kind=Kind.DM if is_dm else Kind.MENTION, author=author,
        text=text, conversation=f"dm:{author.id}" if is_dm else f"thread:{status_id}",
        created_at=_time(status.get("created_at")), url=status.get("url") or status.get("uri"),
        reply_to={"via": "mastodon", "status_id": status_id, "acct": acct, "visibility": visibility,
                  "mentions": others},
        raw=notification, parent_id=str(parent) if parent else None,
    )
