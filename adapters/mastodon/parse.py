"""Mastodon notifications → Items. Pure: no I/O.

`content` is HTML; ids are strings (compare them as numbers); a direct-visibility mention is a DM.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape
from typing import Any

from bot.core.model import Author, Item, Kind

_TAG = re.compile(r"""<(/?)([a-zA-Z][a-zA-Z0-9-]*)(?:\s(?:[^>"']|"[^"]*"|'[^']*')*)?/?>""")


def html_to_text(html: str) -> str:
    """Mastodon's HTML as the customer typed it: paragraphs and line breaks kept, entities decoded once.

    Mastodon sends sanitised HTML (p, br, a, span): tags are dropped by one regular expression (quoted
    attribute values may hold `>`), <br> becomes a line break and each later <p> a blank line; long links'
    `invisible` spans are kept, so a link reads as the full URL the customer typed."""
    if "<" not in html and "&" not in html:
        return html.strip()
    parts: list[str] = []
    position = 0
    for tag in _TAG.finditer(html):
        if tag.start() > position:
            parts.append(html[position:tag.start()])
        position = tag.end()
        if not tag.group(1):
            name = tag.group(2).lower()
            if name == "br":
                parts.append("\n")
            elif name == "p" and parts:
                parts.append("\n\n")
    parts.append(html[position:])
    return unescape("".join(parts)).strip()


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
