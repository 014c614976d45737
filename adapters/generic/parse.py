"""The generic webhook event → an Item. Pure: no I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.core.errors import InvalidInput
from bot.core.model import INBOUND_KINDS, Author, Item, Kind

MAX_TEXT = 40_000


def _string(data: dict[str, Any], key: str, *, required: bool = True, where: str = "") -> str | None:
    value = data.get(key)
    name = f"{where}{key}"
    if value is None:
        if required:
            raise InvalidInput(f"missing required field '{name}'")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInput(f"field '{name}' must be a string")
    if required and not value.strip():
        raise InvalidInput(f"field '{name}' must not be empty")
    return value


def parse_event(body: bytes) -> Item:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidInput(f"body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise InvalidInput("body must be a JSON object")
    event_id = _string(data, "id")
    kind = _string(data, "kind")
    if kind not in INBOUND_KINDS:
        raise InvalidInput(f"field 'kind' must be one of {', '.join(sorted(INBOUND_KINDS))}")
    text = _string(data, "text")
    assert event_id is not None and text is not None
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"field 'text' is longer than {MAX_TEXT} characters")
    author_data = data.get("author")
    if not isinstance(author_data, dict):
        raise InvalidInput("missing required field 'author' (an object with id, name, handle, followers)")
    author_id = _string(author_data, "id", where="author.")
    followers = author_data.get("followers")
    if followers is not None and (not isinstance(followers, int) or isinstance(followers, bool) or followers < 0):
        raise InvalidInput("field 'author.followers' must be a non-negative integer")
    author = Author(id=author_id or "", name=_string(author_data, "name", required=False, where="author.") or "",
                    handle=_string(author_data, "handle", required=False, where="author.") or "",
                    followers=followers)
    platform = _string(data, "platform", required=False) or "generic"
    if len(platform) > 40 or not platform.replace("_", "").replace("-", "").isalnum():
        raise InvalidInput("field 'platform' must be a short name of letters, digits, - or _")
    conversation = _string(data, "conversation", required=False) or f"{kind}:{event_id}"
    if kind == Kind.DM and not data.get("conversation"):
        conversation = f"dm:{author.id}"
    url = _string(data, "url", required=False)
    if url is not None and not url.startswith(("https://", "http://")):
        raise InvalidInput("field 'url' must be an http(s) URL")
    reply_url = _string(data, "reply_url", required=False)
    if reply_url is not None and not reply_url.startswith(("https://", "http://")):
        raise InvalidInput("field 'reply_url' must be an http(s) URL")
    created_at = datetime.now(UTC)
    created_text = _string(data, "created_at", required=False)
    if created_text:
        try:
            created_at = datetime.fromisoformat(created_text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput("field 'created_at' must be an ISO 8601 time") from None
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
    rating = data.get("rating")
    if rating is not None and (not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5):
        raise InvalidInput("field 'rating' must be an integer from 1 to 5")
    reply_to: dict[str, Any] = {"via": "generic", "in_reply_to": event_id, "conversation": conversation}
    if reply_url:
        reply_to["reply_url"] = reply_url
    return Item(platform=platform, platform_id=event_id, kind=Kind(kind), author=author, text=text,
                conversation=conversation, created_at=created_at, url=url, rating=rating, reply_to=reply_to,
                raw=data)
