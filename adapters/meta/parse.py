"""Meta webhook deliveries → Items. Pure: no I/O.

One POST carries several entries (one per Page or Instagram account), each with several events:
`entry[].changes[]` (Page `feed` comments; Instagram `comments` and `mentions`) and `entry[].messaging[]`
(Messenger and Instagram messages). Instagram mentions carry ids only: they come back as `MentionRef`s for
the source to fetch (`mention_item` turns what it found into the Item).

Times: `entry.time` is milliseconds for Pages and seconds for Instagram, `messaging[].timestamp` is
milliseconds, a feed comment's `created_time` is seconds (or ISO 8601 in some versions).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from bot.core.errors import InvalidInput
from bot.core.model import Author, Item, Kind

VIA = "meta"
FACEBOOK = "facebook"
INSTAGRAM = "instagram"
PLATFORMS = {"page": FACEBOOK, "instagram": INSTAGRAM}
MENTION_UNREADABLE = ("(Instagram mention: its text could not be fetched from Instagram. "
                      "Open Instagram to read it.)")

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class MentionRef:
    """An Instagram @mention as the webhook announces it: ids only, the text must be fetched."""

    ig_user_id: str
    media_id: str
    comment_id: str | None
    """None: the mention is in the media's caption."""
    at: datetime


@dataclass(slots=True)
class Batch:
    items: list[Item] = field(default_factory=list)
    mentions: list[MentionRef] = field(default_factory=list)


def load(body: bytes) -> Any:
    """The delivery's JSON, or InvalidInput (→ 400)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidInput(f"body: not valid JSON ({error})") from None
    if not isinstance(payload, dict | list):
        raise InvalidInput("body: expected a JSON object with 'object' and 'entry'")
    return payload


def epoch(value: Any) -> datetime | None:
    """Seconds or milliseconds since 1970 (told apart by size), or an ISO 8601 string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 100_000_000_000 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value:
        if value.isdigit():
            return epoch(int(value))
        text = value.replace("Z", "+00:00")
        if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":  # Graph's "+0000"
            text = f"{text[:-2]}:{text[-2:]}"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _dict(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Json]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _str(value: Any) -> str:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) and value != "" else ""


def parse_payload(payload: Any, *, page_id: str | None = None, instagram_id: str | None = None,
                  now: datetime | None = None) -> Batch:
    """Every customer message in one delivery (a JSON object, or a list of them as in some Meta examples).
    The brand's own messages (echoes; comments by the Page or the Instagram account) are left out."""
    batch = Batch()
    for delivery in payload if isinstance(payload, list) else [payload]:
        delivery = _dict(delivery)
        platform = PLATFORMS.get(str(delivery.get("object") or ""))
        if platform is None:
            continue  # "permissions", "user", ... subscriptions: not customer messages
        for entry in _list(delivery.get("entry")):
            _entry(batch, platform, entry, page_id=page_id, instagram_id=instagram_id, now=now)
    return batch


def _entry(batch: Batch, platform: str, entry: Json, *, page_id: str | None, instagram_id: str | None,
           now: datetime | None) -> None:
    entry_id = _str(entry.get("id"))
    own = {i for i in (entry_id, page_id if platform == FACEBOOK else instagram_id) if i}
    entry_time = epoch(entry.get("time")) or now or datetime.now(UTC)
    for event in _list(entry.get("messaging")):
        item = parse_message(event, platform=platform, own=own, now=now)
        if item is not None:
            batch.items.append(item)
    for change in _list(entry.get("changes")):
        name, value = change.get("field"), _dict(change.get("value"))
        if platform == FACEBOOK and name == "feed":
            item = parse_feed_comment(value, own=own, entry_time=entry_time)
        elif platform == INSTAGRAM and name == "comments":
            item = parse_ig_comment(value, own=own, entry_time=entry_time)
        elif platform == INSTAGRAM and name == "mentions":
            media_id = _str(value.get("media_id"))
            if media_id:
                batch.mentions.append(MentionRef(ig_user_id=entry_id or instagram_id or "", media_id=media_id,
                                                 comment_id=_str(value.get("comment_id")) or None, at=entry_time))
            continue
        else:
            continue
        if item is not None:
            batch.items.append(item)


def _attachments(message: Json) -> list[str]:
    """Attachments as lines the team can open: "[image] https://…"."""
    lines = []
    for attachment in _list(message.get("attachments")):
        kind = _str(attachment.get("type")) or "attachment"
        payload = _dict(attachment.get("payload"))
        url = _str(payload.get("url"))
        title = _str(payload.get("title")) or _str(attachment.get("title"))
        lines.append(" ".join(part for part in (f"[{kind.replace('_', ' ')}]", title, url) if part))
    return lines


def parse_message(event: Json, *, platform: str, own: set[str], now: datetime | None = None) -> Item | None:
    """A Messenger / Instagram message event; echoes, reads, deliveries, deleted messages → None."""
    message = event.get("message")
    if not isinstance(message, dict) or message.get("is_echo"):
        return None
    sender = _str(_dict(event.get("sender")).get("id"))
    mid = _str(message.get("mid"))
    if not sender or not mid or sender in own or message.get("is_deleted") or message.get("is_unsupported"):
        return None
    lines = [str(message["text"])] if isinstance(message.get("text"), str) and message["text"] else []
    lines += _attachments(message)
    replied = _dict(message.get("reply_to"))
    story = _dict(replied.get("story"))
    if story:
        lines.append(" ".join(p for p in ("[reply to your story]", _str(story.get("url"))) if p))
    if not lines:
        return None
    at = epoch(event.get("timestamp")) or now or datetime.now(UTC)
    return Item(
        platform=platform, platform_id=mid, kind=Kind.DM, author=Author(id=sender), text="\n".join(lines),
        conversation=f"dm:{sender}", created_at=at, url=None,
        reply_to={"via": VIA, "kind": "dm", "platform": platform, "recipient_id": sender, "at": iso(at)},
        raw=event, parent_id=_str(replied.get("mid")) or None,
    )


def facebook_comment_url(post_id: str, comment_id: str) -> str | None:
    """The permalink Graph gives comments: /<page>/posts/<post>?comment_id=<comment>."""
    page, _, post = post_id.partition("_")
    comment = comment_id.rpartition("_")[2]
    if not (page.isdigit() and post.isdigit() and comment.isdigit()):
        return None
    return f"https://www.facebook.com/{page}/posts/{post}?comment_id={comment}"


def parse_feed_comment(value: Json, *, own: set[str], entry_time: datetime) -> Item | None:
    """A Page feed change; only comments added or edited by someone other than the Page."""
    if value.get("item") != "comment" or value.get("verb") not in ("add", "edited"):
        return None
    comment_id, post_id = _str(value.get("comment_id")), _str(value.get("post_id"))
    author = _dict(value.get("from"))
    author_id = _str(author.get("id"))
    if not comment_id or not post_id or author_id in own:
        return None
    lines = [str(value["message"])] if isinstance(value.get("message"), str) and value["message"] else []
    for media in ("photo", "video"):
        if _str(value.get(media)):
            lines.append(f"[{media}] {value[media]}")
    if not lines:
        return None
    parent = _str(value.get("parent_id"))
    parent = "" if parent == post_id else parent  # a top-level comment's parent is the post
    edited = value.get("verb") == "edited"
    at = entry_time if edited else epoch(value.get("created_time")) or entry_time
    author_id = author_id or "unknown"
    return Item(
        platform=FACEBOOK, platform_id=f"{comment_id}@{int(entry_time.timestamp())}" if edited else comment_id,
        kind=Kind.COMMENT, author=Author(id=author_id, name=_str(author.get("name"))),
        text=("(edited) " if edited else "") + "\n".join(lines),
        conversation=f"fb-post:{post_id}:{author_id}", created_at=at, url=facebook_comment_url(post_id, comment_id),
        reply_to={"via": VIA, "kind": "comment", "platform": FACEBOOK, "comment_id": comment_id,
                  "reply_comment_id": parent or comment_id, "post_id": post_id, "author_id": author_id,
                  "at": iso(at)},
        raw=value, parent_id=comment_id if edited else parent or None,
    )


def parse_ig_comment(value: Json, *, own: set[str], entry_time: datetime) -> Item | None:
    """An Instagram comment (or reply to one) on the account's media, not written by the account."""
    comment_id = _str(value.get("id"))
    author = _dict(value.get("from"))
    author_id, username = _str(author.get("id")), _str(author.get("username"))
    media_id = _str(_dict(value.get("media")).get("id"))
    text = value.get("text")
    if not comment_id or not isinstance(text, str) or not text or author_id in own:
        return None
    author_id = author_id or username or "unknown"
    parent = _str(value.get("parent_id"))
    return Item(
        platform=INSTAGRAM, platform_id=comment_id, kind=Kind.COMMENT,
        author=Author(id=author_id, handle=f"@{username}" if username else ""), text=text,
        conversation=f"ig-media:{media_id or 'unknown'}:{author_id}", created_at=entry_time, url=None,
        reply_to={"via": VIA, "kind": "comment", "platform": INSTAGRAM, "comment_id": comment_id,
                  "reply_comment_id": parent or comment_id, "media_id": media_id, "author_id": author_id,
                  "at": iso(entry_time)},
        raw=value, parent_id=parent or None,
    )


def mention_item(ref: MentionRef, found: Json | None) -> Item:
    """The mention as fetched from Graph (`mentioned_comment` or `mentioned_media`), or with a placeholder
    text when the fetch failed: the team still sees that someone mentioned the account."""
    found = found or {}
    text = found.get("text") if ref.comment_id else found.get("caption")
    username = _str(found.get("username"))
    at = epoch(found.get("timestamp")) or ref.at
    permalink = _str(found.get("permalink"))
    platform_id = ref.comment_id or ref.media_id
    return Item(
        platform=INSTAGRAM, platform_id=platform_id, kind=Kind.MENTION,
        author=Author(id=username or "unknown", handle=f"@{username}" if username else ""),
        text=text if isinstance(text, str) and text else MENTION_UNREADABLE,
        conversation=f"ig-mention:{ref.media_id}:{username}" if username else f"ig-mention:{ref.media_id}",
        created_at=at, url=permalink if permalink.startswith("https://") else None,
        reply_to={"via": VIA, "kind": "mention", "platform": INSTAGRAM, "ig_user_id": ref.ig_user_id,
                  "media_id": ref.media_id, "comment_id": ref.comment_id, "at": iso(at)},
        raw={"mention": {"media_id": ref.media_id, "comment_id": ref.comment_id}, "found": found},
    )


def with_author(item: Item, *, name: str = "", handle: str = "") -> Item:
    """The item with the profile name / handle the source looked up for a message sender."""
    author = replace(item.author, name=name or item.author.name, handle=handle or item.author.handle)
    return replace(item, author=author)
