"""Google Business Profile reviews → Items. Pure: no I/O.

A review is one case (conversation = the review's resource name). Its first version is the item
`<reviewId>`; a version the customer edited later is a new item `<reviewId>@<updateTime>` in the same case.
The owner's `reviewReply` is never an item. Timestamps are RFC 3339 with up to nine fractional digits,
so they are compared as (seconds, nanoseconds), never as Python datetimes (microseconds only).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.core.model import Author, Item, Kind

PLATFORM = "google"
VIA = "google_reviews"
STARS = {"ONE": 1, "TWO": 2, "THREE": 3, "FOUR": 4, "FIVE": 5}
"""`starRating` is a string enum; STAR_RATING_UNSPECIFIED (and anything unknown) has no rating."""
EDIT_GRACE = timedelta(seconds=10)
"""An `updateTime` this close to `createTime` (or to the owner's reply) is the first version, not an edit:
Google stamps the two a few milliseconds apart on a review nobody touched."""
EPOCH = "1970-01-01T00:00:00Z"
"""The cursor of a location that had no review at all when polling started: every review is new."""
REVIEW_NAME = re.compile(r"^accounts/[^/?#]+/locations/[^/?#]+/reviews/[^/?#]+$")
MAX_AUTHOR_ID = 200
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\d)[Tt](\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)$")

TimeKey = tuple[int, int]
"""(Unix seconds, nanoseconds): orders RFC 3339 timestamps exactly."""


def time_key(text: object) -> TimeKey | None:
    """An RFC 3339 timestamp as (seconds, nanoseconds) since the epoch; None when it is not one."""
    if not isinstance(text, str):
        return None
    match = _RFC3339.match(text.strip())
    if not match:
        return None
    offset = "+00:00" if match[4] in ("Z", "z") else match[4]
    try:
        moment = datetime.fromisoformat(f"{match[1]}T{match[2]}{offset}")
    except ValueError:
        return None
    return int(moment.timestamp()), int((match[3] or "0").ljust(9, "0"))


def to_datetime(text: object) -> datetime | None:
    """An RFC 3339 timestamp as an aware UTC datetime (nanoseconds cut to microseconds)."""
    key = time_key(text)
    if key is None:
        return None
    return datetime.fromtimestamp(key[0], UTC) + timedelta(microseconds=key[1] // 1000)


def _seconds_between(later: TimeKey, earlier: TimeKey) -> float:
    return (later[0] - earlier[0]) + (later[1] - earlier[1]) / 1e9


def rating_of(star_rating: object) -> int | None:
    return STARS.get(star_rating) if isinstance(star_rating, str) else None


def stars(rating: int | None) -> str:
    """★★☆☆☆ for 2; "no star rating" when Google gave none."""
    if rating is None:
        return "no star rating"
    return "★" * rating + "☆" * (5 - rating)


def is_complaint(rating: int | None) -> bool:
    """One or two stars: a complaint (triage reads `complaint` from reply_to/raw)."""
    return rating is not None and rating <= 2


def is_edited(review: dict[str, Any]) -> bool:
    """The customer changed the review after writing it (not: the owner's reply touched it)."""
    created, updated = time_key(review.get("createTime")), time_key(review.get("updateTime"))
    if created is None or updated is None or _seconds_between(updated, created) <= EDIT_GRACE.total_seconds():
        return False
    reply = review.get("reviewReply")
    replied = time_key(reply.get("updateTime")) if isinstance(reply, dict) else None
    # If Google stamps a review when its owner replies, that stamp is not the customer's edit.
    return replied is None or abs(_seconds_between(updated, replied)) > EDIT_GRACE.total_seconds()


def review_text(comment: str | None, rating: int | None, *, edited: bool) -> str:
    """The comment exactly as written; a rating-only review says so; an edit says it is one."""
    has_text = comment is not None and comment.strip() != ""
    if not edited:
        return comment if has_text and comment is not None else f"(no text, {stars(rating)})"
    if has_text and comment is not None:
        return f"(edited review, {stars(rating)})\n{comment}"
    return f"(edited review: no text, {stars(rating)})"


def _author(reviewer: object, review_id: str) -> Author:
    reviewer = reviewer if isinstance(reviewer, dict) else {}
    anonymous = bool(reviewer.get("isAnonymous"))
    name = str(reviewer.get("displayName") or "").strip()
    photo = str(reviewer.get("profilePhotoUrl") or "")
    if anonymous or not name:
        return Author(id=review_id, name="Anonymous")
    # The API names no reviewer id: the profile photo link is the only per-profile value it gives.
    if not photo:
        author_id = review_id
    elif len(photo) <= MAX_AUTHOR_ID:
        author_id = photo
    else:
        author_id = "profile-sha256:" + hashlib.sha256(photo.encode()).hexdigest()[:40]
    return Author(id=author_id, name=name)


def parse_review(review: object, *, location: str = "") -> Item | None:
    """One Review → an Item (its current version); None for anything without a review name and id."""
    if not isinstance(review, dict):
        return None
    name, review_id = review.get("name"), review.get("reviewId")
    if not isinstance(name, str) or not REVIEW_NAME.match(name):
        return None
    if not isinstance(review_id, str) or not review_id:
        review_id = name.rsplit("/", 1)[-1]
    comment = review.get("comment")
    rating = rating_of(review.get("starRating"))
    edited = is_edited(review)
    update_time = str(review.get("updateTime") or "")
    when = to_datetime(update_time if edited else review.get("createTime")) or to_datetime(update_time)
    complaint = is_complaint(rating)
    location = location or "/".join(name.split("/")[2:4])
    return Item(
        platform=PLATFORM,
        platform_id=f"{review_id}@{update_time}" if edited else review_id,
        kind=Kind.REVIEW,
        author=_author(review.get("reviewer"), review_id),
        text=review_text(comment if isinstance(comment, str) else None, rating, edited=edited),
        conversation=name,
        created_at=when or datetime.now(UTC),
        url=None,  # the API gives no public link to one review
        rating=rating,
        reply_to={"via": VIA, "review": name, "review_id": review_id, "location": location, "rating": rating,
                  "complaint": complaint},
        raw={"review": review, "edited": edited, "complaint": complaint},
    )


def parse_reviews(page: object, *, location: str = "") -> list[Item]:
    """Every review of a ListReviewsResponse that parses (order kept)."""
    reviews = page.get("reviews") if isinstance(page, dict) else None
    if not isinstance(reviews, list):
        return []
    return [item for review in reviews if (item := parse_review(review, location=location))]
